//! The `queue` body: what `/status` says of pynchy's agent containers and
//! groups. Its rules and metrics are in `queue.rs`; the reads that make it
//! are in `queue_read.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
