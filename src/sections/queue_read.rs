//! The `queue` section's reads: pynchy's agent containers from Docker, each
//! registered group's last activity from the database, and the body merged
//! from them and a push. The section, its rules and metrics are in
//! `queue.rs` (see its header).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use diesel::sql_types::{Nullable, Text};
use diesel::QueryableByName;

use super::queue_body::{ContainerBody, ContainerKind, DockerView, GroupBody, QueueBody, Source};
use super::CollectError;
use crate::sources::docker::{self, ContainerInfo, ListError};
use crate::sources::push::QueueState;

/// One registered group's last activity, as read.
#[derive(Debug, Clone, QueryableByName)]
pub(super) struct Activity {
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
pub(super) const ACTIVITY: &str = "SELECT g.folder AS folder, \
    (SELECT m.timestamp FROM messages m WHERE m.chat_jid = g.jid AND m.is_from_me = 0 \
     ORDER BY m.timestamp DESC LIMIT 1) AS last_message_at, \
    (SELECT MAX((SELECT l.run_at FROM task_run_logs l WHERE l.task_id = t.id \
     ORDER BY l.run_at DESC LIMIT 1)) FROM scheduled_tasks t WHERE t.group_folder = g.folder) \
     AS last_run_at \
    FROM registered_groups g";

/// The group folder as pynchy writes it into container names: any
/// character other than a letter, digit or `-` becomes `-`.
pub(super) fn name_part(folder: &str) -> String {
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
pub(super) fn agent(c: &ContainerInfo) -> Option<(String, ContainerBody)> {
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
pub(super) fn groups(
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
    pub(super) fn merge(
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

#[derive(Default)]
pub(super) struct ActivityCache {
    pub(super) rows: Option<Vec<Activity>>,
    pub(super) read_at: Option<std::time::Instant>,
}

/// The longest a collection waits for the activity read before it serves
/// the last one (the query walks two indexes: about a millisecond on a
/// million messages).
pub(super) const ACTIVITY_DEADLINE: Duration = Duration::from_secs(1);

/// Without database events, the activity is read at most this often.
pub(super) const POLL_ACTIVITY: Duration = Duration::from_secs(10);

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// pynchy's running agent containers (`None`: Docker unreachable); an
/// answer over `[limits] docker_body` is the section's error.
pub(super) async fn agent_containers(
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
pub(super) async fn activity_within(
    read: impl FnOnce() -> Vec<Activity> + Send + 'static,
    last: &Mutex<ActivityCache>,
) -> Result<Vec<Activity>, CollectError> {
    match tokio::time::timeout(ACTIVITY_DEADLINE, tokio::task::spawn_blocking(read)).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(_)) => Err(CollectError::new("the activity read panicked")),
        Err(_) => Ok(lock(last).rows.clone().unwrap_or_default()),
    }
}
