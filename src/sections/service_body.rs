//! The `service` body: what `/status` says of pynchy's service. Its rules,
//! findings and metrics are in `service.rs`; the reads that make it are in
//! `service_read.rs`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// What `service.status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// pynchy holds its port and answers.
    Ok,
    /// A pynchy process works in the install root; its port is not open yet.
    Starting,
    /// pynchy stopped itself for a deploy; the new process is not there yet.
    Restarting,
    /// pynchy holds its port but does not answer (its event loop is stuck).
    Unresponsive,
    /// Not running, or not answering past the grace.
    Down,
    /// pynchy (by its push) or this daemon is shutting down.
    ShuttingDown,
}

impl ServiceStatus {
    pub(super) fn word(self) -> &'static str {
        match self {
            ServiceStatus::Ok => "ok",
            ServiceStatus::Starting => "starting",
            ServiceStatus::Restarting => "restarting",
            ServiceStatus::Unresponsive => "unresponsive",
            ServiceStatus::Down => "down",
            ServiceStatus::ShuttingDown => "shutting_down",
        }
    }
}

pub use super::Source;

/// What could be seen of the process holding pynchy's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessView {
    /// Its `/proc` entry is readable: pid and start time are known.
    Readable,
    /// The port is held by a process this user cannot read (another user's):
    /// only the port is known.
    NotReadable,
    /// Nothing listens on pynchy's port.
    None,
    /// `[pynchy] url` points at pynchy-status itself.
    Itself,
}

/// pynchy's systemd unit, as systemd tells it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct UnitBody {
    pub name: String,
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
    pub n_restarts: u32,
    /// How the main process last ended ("exit code 1", "signal 9"), null while running.
    pub exec_main: Option<String>,
    pub active_enter_at: Option<String>,
}

/// The `service` body.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ServiceBody {
    pub status: ServiceStatus,
    /// When pynchy's process started (from `/proc`, or as pushed).
    pub started_at: Option<String>,
    pub uptime_seconds: Option<i64>,
    pub source: Source,
    /// pynchy's HTTP port (its `[server] port`).
    pub port: u16,
    pub process: ProcessView,
    pub pid: Option<u32>,
    /// When `GET /api/groups` last answered.
    pub last_answer_at: Option<String>,
    /// Since when it has not answered, while it does not.
    pub unresponsive_since: Option<String>,
    /// Why the last probe failed, if it did.
    pub probe_error: Option<String>,
    /// New processes that took the port within the last 10 minutes.
    pub restarts_last_10m: u64,
    /// Of those, restarts that followed a deploy.
    pub deploys_last_10m: u64,
    /// When the last process holding the port ended.
    pub last_exit_at: Option<String>,
    /// `router_state.last_deploy_at`, when the last exit followed it (a deploy's restart).
    pub deploy_at: Option<String>,
    /// pynchy's systemd unit, when its bus is reachable.
    pub unit: Option<UnitBody>,
    /// Why the unit could not be read (no bus, no such unit), if it could not.
    pub unit_error: Option<String>,
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
