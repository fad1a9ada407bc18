//! `queue`: pynchy's agent containers per group, and each group's last
//! activity.
//!
//! Without a push, from Docker, followed by its event stream (a container
//! started or stopped shows within a second): every running container
//! named `pynchy-<folder>` (a group's interactive session, kept warm) or
//! `pynchy-<folder>-<epoch ms>` (one scheduled-task run), its group read
//! exactly from its mount of `data/ipc/<folder>` at `/workspace/ipc`; never
//! the LiteLLM pair or `pynchy-mcp-*`. `max_concurrent` is pynchy's
//! `[container] max_concurrent`. What only pynchy's memory knows (groups
//! waiting, pending messages and tasks) is null without a push; a push
//! (`PUT /push/queue`) wins while fresh. Every registered group appears,
//! with its latest inbound message and latest task run from the database.
//! A task's container running past pynchy's container timeout plus
//! `[pynchy] agent_slack` raises `agent_overrun`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use diesel::sql_types::{Nullable, Text};
use diesel::QueryableByName;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, CollectError, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::db::Db;
use crate::sources::docker::{self, ContainerInfo, ListError};
use crate::sources::push::QueueState;
use crate::sources::watch::Changes;

/// Observed: Docker's running agent containers and pynchy's config.
pub use super::Source;

/// Whether Docker could be asked for the agent containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DockerView {
    Ok,
    Unreachable,
}

/// What an agent container is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContainerKind {
    /// `pynchy-<folder>`: the group's interactive session, kept warm.
    Session,
    /// `pynchy-<folder>-<epoch ms>`: one scheduled-task run.
    Task,
}

/// One live agent container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ContainerBody {
    pub name: String,
    pub kind: ContainerKind,
    /// Docker's `State.Status`.
    pub state: String,
    /// `State.StartedAt`.
    pub started_at: Option<String>,
}

/// One group of `queue.per_group`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct GroupBody {
    /// A run holds a container (pushed), or an agent container runs (observed).
    pub active: bool,
    /// The active run is a scheduled task's.
    pub is_task: bool,
    /// Messages waiting for the group: null without a push.
    pub pending_messages: Option<bool>,
    /// Tasks waiting for the group: null without a push.
    pub pending_tasks: Option<u64>,
    /// Nothing running and nothing known to be pending.
    pub idle: bool,
    /// The latest inbound message of the workspace (`messages.timestamp`,
    /// `is_from_me = 0`), or null (none, or not a registered group).
    pub last_message_at: Option<String>,
    /// The latest finished run of the group's tasks (`task_run_logs.run_at`), or null.
    pub last_run_at: Option<String>,
    /// Its live agent containers, from Docker.
    pub containers: Vec<ContainerBody>,
}

/// The `queue` body.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct QueueBody {
    /// Runs holding a container (pushed), or running agent containers
    /// (observed: a warm, idle session counts here, not in pynchy's own
    /// count); null when neither is known.
    pub active_containers: Option<u64>,
    pub max_concurrent: u64,
    /// Groups waiting for a container: null without a push.
    pub groups_waiting: Option<u64>,
    pub source: Source,
    pub docker: DockerView,
    pub per_group: BTreeMap<String, GroupBody>,
    /// pynchy's container timeout plus `[pynchy] agent_slack`, in seconds:
    /// a task's container running longer is stuck.
    pub overrun_after_seconds: u64,
}

/// One registered group's last activity, as read.
#[derive(Debug, Clone, QueryableByName)]
struct Activity {
    #[diesel(sql_type = Text)]
    folder: String,
    #[diesel(sql_type = Nullable<Text>)]
    last_message_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_run_at: Option<String>,
}

/// Every registered group's last activity, in one query. Each lookup walks
/// an index backwards and stops at its first row: the latest inbound message
/// by `(chat_jid, timestamp)`, the latest run of each of the group's tasks by
/// `(task_id, run_at)`.
const ACTIVITY: &str = "SELECT g.folder AS folder, \
    (SELECT m.timestamp FROM messages m WHERE m.chat_jid = g.jid AND m.is_from_me = 0 \
     ORDER BY m.timestamp DESC LIMIT 1) AS last_message_at, \
    (SELECT MAX((SELECT l.run_at FROM task_run_logs l WHERE l.task_id = t.id \
     ORDER BY l.run_at DESC LIMIT 1)) FROM scheduled_tasks t WHERE t.group_folder = g.folder) \
     AS last_run_at \
    FROM registered_groups g";

/// The group folder as pynchy writes it into container names: any
/// character other than a letter, digit or `-` becomes `-`.
fn name_part(folder: &str) -> String {
    folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// An agent container's body, or `None` when it is not one of pynchy's
/// agent containers (no IPC mount, another name).
fn agent(c: &ContainerInfo) -> Option<(String, ContainerBody)> {
    let folder = c.ipc_folder.clone()?;
    let base = format!("pynchy-{}", name_part(&folder));
    let kind = if c.name == base {
        ContainerKind::Session
    } else {
        let ms = c.name.strip_prefix(&base)?.strip_prefix('-')?;
        if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        ContainerKind::Task
    };
    let body = ContainerBody {
        name: c.name.clone(),
        kind,
        state: c.state.clone(),
        started_at: c.started_at.clone(),
    };
    Some((folder, body))
}

/// Whether a container name can be one of pynchy's agent containers (the
/// LiteLLM pair and the MCP servers are not).
pub fn agent_name(name: &str, litellm: &[&str]) -> bool {
    name.starts_with("pynchy-") && !name.starts_with(super::mcp::PREFIX) && !litellm.contains(&name)
}

/// Each group: as pushed (if a push is fresh), its agent containers (active
/// while one runs, without a push), its activity; idle when nothing runs or
/// is known to be pending.
fn groups(
    push: Option<&QueueState>,
    agents: &[(String, ContainerBody)],
    activity: &[Activity],
) -> BTreeMap<String, GroupBody> {
    let mut per_group: BTreeMap<String, GroupBody> = BTreeMap::new();
    for (k, g) in push.iter().flat_map(|q| &q.per_group) {
        let pushed = GroupBody {
            active: g.active,
            is_task: g.is_task,
            pending_messages: Some(g.pending_messages),
            pending_tasks: Some(g.pending_tasks),
            ..GroupBody::default()
        };
        per_group.insert(k.clone(), pushed);
    }
    for (folder, c) in agents {
        let g = per_group.entry(folder.clone()).or_default();
        if push.is_none() && c.state == "running" {
            g.active = true;
            g.is_task |= c.kind == ContainerKind::Task;
        }
        g.containers.push(c.clone());
    }
    for a in activity {
        let g = per_group.entry(a.folder.clone()).or_default();
        g.last_message_at.clone_from(&a.last_message_at);
        g.last_run_at.clone_from(&a.last_run_at);
    }
    for g in per_group.values_mut() {
        g.idle = !g.active && g.pending_messages != Some(true) && g.pending_tasks.unwrap_or(0) == 0;
    }
    per_group
}

impl QueueBody {
    /// The fresh push (if any), Docker's agent containers (`None`: Docker
    /// unreachable) and each registered group's activity, merged.
    fn merge(
        push: Option<QueueState>,
        containers: Option<&[ContainerInfo]>,
        activity: &[Activity],
        max_concurrent: u64,
        overrun_after: Duration,
    ) -> QueueBody {
        let agents: Vec<(String, ContainerBody)> = containers
            .unwrap_or_default()
            .iter()
            .filter_map(agent)
            .collect();
        let per_group = groups(push.as_ref(), &agents, activity);
        let running = agents.iter().filter(|(_, c)| c.state == "running").count() as u64;
        QueueBody {
            active_containers: match &push {
                Some(q) => Some(q.active_containers),
                None => containers.map(|_| running),
            },
            max_concurrent: push.as_ref().map_or(max_concurrent, |q| q.max_concurrent),
            groups_waiting: push.as_ref().map(|q| q.groups_waiting),
            source: if push.is_some() {
                Source::Pushed
            } else {
                Source::Observed
            },
            docker: if containers.is_some() {
                DockerView::Ok
            } else {
                DockerView::Unreachable
            },
            per_group,
            overrun_after_seconds: overrun_after.as_secs(),
        }
    }
}

pub static SATURATED: Rule = Rule {
    name: "queue_saturated",
    default: Severity::Degraded,
    what: "the queue is at max_concurrent with groups waiting (pushed only)",
};

pub static OVERRUN: Rule = Rule {
    name: "agent_overrun",
    default: Severity::Degraded,
    what: "a scheduled task's agent container runs past pynchy's container timeout plus [pynchy] agent_slack",
};

impl Body for QueueBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        let waiting = self.groups_waiting.unwrap_or(0);
        let active = self.active_containers.unwrap_or(0);
        if self.max_concurrent > 0 && active >= self.max_concurrent && waiting > 0 {
            out.push(Finding::new(
                &SATURATED,
                format!(
                    "queue at max_concurrent ({}) with {waiting} groups waiting",
                    self.max_concurrent
                ),
            ));
        }
        let now = Utc::now();
        for (folder, g) in &self.per_group {
            for c in &g.containers {
                if c.kind != ContainerKind::Task || c.state != "running" {
                    continue;
                }
                let Some(started) = c.started_at.as_deref().and_then(crate::stamp::parse_time)
                else {
                    continue;
                };
                let ran = (now - started).num_seconds();
                if ran > 0 && ran as u64 > self.overrun_after_seconds {
                    out.push(Finding::about(
                        &OVERRUN,
                        c.name.as_str(),
                        format!(
                            "agent container {} (a task of {folder}) has run for {} min, past pynchy's timeout",
                            c.name,
                            ran / 60
                        ),
                    ));
                }
            }
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        let mut gauges = vec![(
            "pynchy_queue_max_concurrent",
            Some(self.max_concurrent),
            "The queue's concurrency limit",
        )];
        gauges.push((
            "pynchy_queue_active_containers",
            self.active_containers,
            "Agent containers running (pushed: runs holding a slot)",
        ));
        gauges.push((
            "pynchy_queue_groups_waiting",
            self.groups_waiting,
            "Groups waiting for a container (pushed only)",
        ));
        for (name, v, help) in gauges {
            if let Some(v) = v {
                prom::gauge(reg, name, help, v as f64);
            }
        }
    }

    fn summary(&self) -> String {
        format!(
            "active {}/{} waiting {}",
            super::show(&self.active_containers),
            self.max_concurrent,
            super::show(&self.groups_waiting)
        )
    }
}

pub struct Queue {
    ctx: Arc<Context>,
    /// One read of the database at a time, across sections.
    gate: super::Gate,
    db: Arc<Db>,
    /// The database's events.
    changes: Arc<Changes>,
    /// Docker's events for agent containers.
    docker_changes: Arc<Changes>,
    verify: Duration,
    timeout: Duration,
    /// The activity last read, and when.
    activity: Arc<Mutex<ActivityCache>>,
    docker: Mutex<Option<bollard::Docker>>,
    /// The agent containers last listed (`None`: Docker unreachable).
    containers: Arc<Mutex<Option<Vec<ContainerInfo>>>>,
    /// The task following Docker's events: ends with the section (a reload).
    events: Mutex<Option<tokio::task::JoinHandle<()>>>,
    push: super::PushFreshness,
}

impl Drop for Queue {
    fn drop(&mut self) {
        let events = self.events.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = events.take() {
            task.abort();
        }
    }
}

#[derive(Default)]
struct ActivityCache {
    rows: Option<Vec<Activity>>,
    read_at: Option<std::time::Instant>,
}

/// The longest a collection waits for the activity read before it serves
/// the last one (the query walks two indexes: about a millisecond on a
/// million messages).
const ACTIVITY_DEADLINE: Duration = Duration::from_secs(1);

/// Without database events, the activity is read at most this often.
const POLL_ACTIVITY: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Queue {
    /// The Docker client, made once the socket is there.
    fn docker(&self) -> Option<bollard::Docker> {
        let mut slot = lock(&self.docker);
        if slot.is_none() {
            let cfg = &self.ctx.config;
            *slot = docker::client(
                &cfg.gateway.docker_host,
                self.timeout,
                cfg.limits.docker_body,
            )
            .ok();
        }
        slot.clone()
    }

    /// Follows Docker's events for agent containers (once, from the first
    /// collection, which runs inside the runtime).
    fn follow_events(&self) {
        let cfg = &self.ctx.config;
        if !cfg.watch.enabled {
            return;
        }
        let mut events = lock(&self.events);
        if events.is_some() {
            return;
        }
        let litellm = [
            cfg.gateway.litellm_container.clone(),
            cfg.gateway.postgres_container.clone(),
        ];
        let c = self.docker_changes.clone();
        *events = Some(tokio::spawn(docker::follow_events_where(
            cfg.gateway.docker_host.clone(),
            cfg.limits.docker_body,
            Vec::new(),
            move |name| agent_name(name, &[litellm[0].as_str(), litellm[1].as_str()]),
            self.docker_changes.watching_flag(),
            move || c.mark(),
        )));
    }

    /// The group activity: read again when the database changed, else the
    /// last read. A failed read, or a database stuck in another section's
    /// read (its gate), keeps the last activity (the database's own
    /// sections report the failure); it is tried again at the next collection.
    fn activity(&self) -> impl FnOnce() -> Vec<Activity> + Send + 'static {
        let read = self.changes.must_read(self.verify);
        let watching = self.changes.watching();
        let (db, changes, cache, gate) = (
            self.db.clone(),
            self.changes.clone(),
            self.activity.clone(),
            self.gate.clone(),
        );
        let timeout = self.timeout;
        move || {
            // The cache is never locked across the read: a push builds its
            // body from it while a read is stuck.
            let due = {
                let c = lock(&cache);
                let recent = c.read_at.is_some_and(|t| t.elapsed() < POLL_ACTIVITY);
                c.rows.is_none() || (read && (watching || !recent))
            };
            if due {
                let rows = gate.enter(timeout).and_then(|_inside| {
                    super::db_rows::<Activity>(&db, ACTIVITY).map_err(|e| e.to_string())
                });
                match rows {
                    Ok(rows) => {
                        let mut c = lock(&cache);
                        c.rows = Some(rows);
                        c.read_at = Some(std::time::Instant::now());
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "queue: group activity not read");
                        changes.failed();
                    }
                }
            }
            lock(&cache).rows.clone().unwrap_or_default()
        }
    }
}

/// pynchy's running agent containers (`None`: Docker unreachable); an
/// answer over `[limits] docker_body` is the section's error.
async fn agent_containers(
    docker: Option<bollard::Docker>,
    timeout: Duration,
    litellm: &[String; 2],
) -> Result<Option<Vec<ContainerInfo>>, CollectError> {
    let Some(d) = docker else { return Ok(None) };
    let list = match docker::containers_named(&d, "pynchy-", true, timeout).await {
        Ok(list) => list,
        Err(ListError::TooLarge(why)) => return Err(CollectError::new(why)),
        Err(ListError::Unreachable) => return Ok(None),
    };
    let names = [litellm[0].as_str(), litellm[1].as_str()];
    Ok(Some(
        list.into_iter()
            .filter(|c| agent_name(&c.name, &names))
            .collect(),
    ))
}

/// The activity, read on a blocking thread; it never holds up the queue:
/// past [`ACTIVITY_DEADLINE`] (a database stuck in this read) the last one
/// read stands, and the read finishes on its own thread, inside the
/// database's gate.
async fn activity_within(
    read: impl FnOnce() -> Vec<Activity> + Send + 'static,
    last: &Mutex<ActivityCache>,
) -> Result<Vec<Activity>, CollectError> {
    match tokio::time::timeout(ACTIVITY_DEADLINE, tokio::task::spawn_blocking(read)).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(_)) => Err(CollectError::new("the activity read panicked")),
        Err(_) => Ok(lock(last).rows.clone().unwrap_or_default()),
    }
}

impl Section for Queue {
    type Body = QueueBody;

    /// Docker's agent containers (and the push, while fresh) with each
    /// group's activity. Docker away is said in the body, never an error:
    /// the queue's own counts are then unknown.
    fn collect(&self) -> Work<QueueBody> {
        self.follow_events();
        let cfg = &self.ctx.config;
        let push = self
            .push
            .fresh(self.ctx.push_source.queue(), cfg.push.ttl)
            .map(|p| p.value);
        let (timeout, max) = (self.timeout, cfg.pynchy.max_concurrent);
        let overrun = cfg.pynchy.container_timeout + cfg.pynchy.agent_slack;
        if self.ctx.push_arrived.take(SectionId::Queue) {
            // A push: merged with the last observation, asking nothing, so
            // it is in `/status` at once.
            let containers = lock(&self.containers).clone();
            let activity = lock(&self.activity).rows.clone().unwrap_or_default();
            let body = QueueBody::merge(push, containers.as_deref(), &activity, max, overrun);
            return Work::done(Ok(super::Update::New(body)));
        }
        let docker = self.docker();
        let activity = self.activity();
        let last_activity = self.activity.clone();
        let cache = self.containers.clone();
        let litellm = [
            cfg.gateway.litellm_container.clone(),
            cfg.gateway.postgres_container.clone(),
        ];
        Work::future(async move {
            let containers = agent_containers(docker, timeout, &litellm).await?;
            lock(&cache).clone_from(&containers);
            let activity = activity_within(activity, &last_activity).await?;
            Ok(QueueBody::merge(
                push,
                containers.as_deref(),
                &activity,
                max,
                overrun,
            ))
        })
    }

    /// Docker's and the database's events (either wakes it).
    fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
        Some(self.changes.clone())
    }

    /// A push collects it at once; Docker and the database by their events (or polled).
    fn refresh(&self) -> super::Refresh {
        if self.changes.watching() && self.docker_changes.watching() {
            super::Refresh::Event
        } else {
            super::Refresh::Poll
        }
    }

    /// When the last push's TTL runs out: observation from then on.
    fn wake_at(&self) -> Option<std::time::Instant> {
        super::PushFreshness::expires(self.ctx.push_source.queue(), self.ctx.config.push.ttl)
    }
}

impl Builtin for Queue {
    const ID: SectionId = SectionId::Queue;
    const RULES: &'static [&'static Rule] = &[&SATURATED, &OVERRUN];

    /// Every 10 s (a Docker list and the database's activity, read again only
    /// when it changed), and at once on Docker's and the database's events.
    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(10), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let changes = Changes::new();
        super::watch_database(ctx, &changes);
        // Docker's events wake the same poller as the database's.
        let docker_changes = Changes::sharing(&changes);
        Queue {
            ctx: ctx.clone(),
            gate: super::db_gate(ctx),
            db: Arc::new(super::db_for(ctx, schedule)),
            changes,
            docker_changes,
            verify: schedule.verify,
            timeout: schedule.timeout * 9 / 10,
            activity: Arc::default(),
            docker: Mutex::new(None),
            containers: Arc::default(),
            events: Mutex::new(None),
            push: super::PushFreshness::new("queue"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, folder: Option<&str>) -> ContainerInfo {
        ContainerInfo {
            name: name.into(),
            state: "running".into(),
            started_at: Some("2026-01-01T00:00:00Z".into()),
            restart_count: 0,
            health: None,
            ipc_folder: folder.map(String::from),
        }
    }

    #[test]
    fn agents_by_name_and_mount() {
        let s = agent(&container("pynchy-admin", Some("admin"))).unwrap();
        assert_eq!((s.0.as_str(), s.1.kind), ("admin", ContainerKind::Session));
        let t = agent(&container(
            "pynchy-code-improver-1767225600000",
            Some("code-improver"),
        ))
        .unwrap();
        assert_eq!(t.1.kind, ContainerKind::Task);
        // pynchy writes `_` as `-` in names; the mount keeps the folder exact.
        let u = agent(&container("pynchy-my-group", Some("my_group"))).unwrap();
        assert_eq!(u.0, "my_group");
        assert!(agent(&container("pynchy-admin", None)).is_none());
        assert!(agent(&container("pynchy-admin-x1", Some("admin"))).is_none());
        assert!(!agent_name(
            "pynchy-litellm",
            &["pynchy-litellm", "pynchy-litellm-db"]
        ));
        assert!(!agent_name("pynchy-mcp-gdrive", &[]));
        assert!(agent_name("pynchy-admin", &["pynchy-litellm"]));
    }

    #[test]
    fn observed_groups_are_active_while_a_container_runs() {
        let list = [container("pynchy-admin-1", Some("admin"))];
        let b = QueueBody::merge(None, Some(&list), &[], 10, Duration::from_secs(60));
        assert_eq!(b.active_containers, Some(1));
        assert_eq!(b.groups_waiting, None);
        let g = &b.per_group["admin"];
        assert!(g.active && g.is_task && !g.idle);
        assert_eq!(g.pending_tasks, None);
        // Started in 2026-01-01, long past 60 s.
        let mut f = Vec::new();
        b.findings(&RollupConfig::default(), &mut f);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule.name, "agent_overrun");
        let away = QueueBody::merge(None, None, &[], 10, Duration::from_secs(60));
        assert_eq!(away.active_containers, None);
        assert_eq!(away.docker, DockerView::Unreachable);
    }
}
