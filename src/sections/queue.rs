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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use prometheus_client::registry::Registry;

use super::{prom, Body, Builtin, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::db::Db;
use crate::sources::docker::{self, ContainerInfo};
use crate::sources::watch::Changes;

pub use super::queue_body::*;
pub use super::queue_read::agent_name;
use super::queue_read::{
    activity_within, agent_containers, lock, Activity, ActivityCache, ACTIVITY, POLL_ACTIVITY,
};

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

    /// pynchy's pushed queue, while fresh.
    fn fresh_push(&self) -> Option<crate::sources::push::QueueState> {
        self.push
            .fresh(self.ctx.push_source.queue(), self.ctx.config.push.ttl)
            .map(|p| p.value)
    }

    /// How long a task's agent container may run before it is stuck.
    fn overrun(&self) -> Duration {
        let p = &self.ctx.config.pynchy;
        p.container_timeout + p.agent_slack
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
        let push = self.fresh_push();
        let (timeout, max, overrun) = (self.timeout, cfg.pynchy.max_concurrent, self.overrun());
        let docker = self.docker();
        let activity = self.activity();
        let last_activity = self.activity.clone();
        let cache = self.containers.clone();
        let litellm = [
            cfg.gateway.litellm_container.clone(),
            cfg.gateway.postgres_container.clone(),
        ];
        Work::future(async move {
            // Side by side: Docker within `timeout`, the activity within its
            // own deadline, so the two never add up past the section's timeout.
            let (containers, activity) = tokio::join!(
                agent_containers(docker, timeout, &litellm),
                activity_within(activity, &last_activity)
            );
            let (containers, activity) = (containers?, activity?);
            lock(&cache).clone_from(&containers);
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

    /// The push merged with the last observation (Docker's containers, the
    /// groups' activity), asking nothing.
    fn pushed(&self) -> Option<Work<QueueBody>> {
        let containers = lock(&self.containers).clone();
        let activity = lock(&self.activity).rows.clone().unwrap_or_default();
        let body = QueueBody::merge(
            self.fresh_push(),
            containers.as_deref(),
            &activity,
            self.ctx.config.pynchy.max_concurrent,
            self.overrun(),
        );
        Some(Work::done(Ok(super::Update::New(body))))
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
    use super::super::queue_read::agent;
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
