//! `mcp`: pynchy's MCP server containers, found by name (`pynchy-mcp-*`:
//! pynchy sets no labels) and inspected — state, when it started, Docker's
//! restart count, its healthcheck's status — and, from this daemon's own
//! observations, how many times each restarted in the last hour. They exist
//! only in `litellm` mode; they start on demand and stop when idle, so a
//! missing or exited one is normal and says nothing. One that is restarting,
//! or restarted more than `[rollup] mcp_restarts_max` times in the last hour,
//! raises `mcp_restarting`. Docker unreachable is the section's error.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, CollectError, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, GatewayConfig, GatewayMode, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::docker::{self, ContainerInfo, ListError};

/// The name every MCP container of pynchy's starts with.
pub const PREFIX: &str = "pynchy-mcp-";

/// One MCP container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct McpContainerBody {
    /// Docker's `State.Status`: running, exited, restarting, created, …
    pub state: String,
    /// `State.StartedAt`, null if it never started.
    pub started_at: Option<String>,
    /// Docker's `RestartCount` (restarts by its restart policy).
    pub restart_count: u64,
    /// Restarts this daemon saw within the last hour.
    pub restarts_last_hour: u64,
    /// Its healthcheck's status (`starting`, `healthy`, `unhealthy`), null
    /// without one.
    pub health: Option<String>,
}

/// The `mcp` body: MCP containers by name (empty outside `litellm` mode).
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct McpBody(pub BTreeMap<String, McpContainerBody>);

pub static MCP_RESTARTING: Rule = Rule {
    name: "mcp_restarting",
    default: Severity::Degraded,
    what: "an MCP container is restarting, or restarted more than [rollup] mcp_restarts_max times in the last hour",
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabel {
    container: String,
    state: String,
}

impl Body for McpBody {
    fn findings(&self, cfg: &RollupConfig, out: &mut Vec<Finding>) {
        for (name, c) in &self.0 {
            if c.state == "restarting" {
                out.push(Finding::about(
                    &MCP_RESTARTING,
                    name,
                    format!("MCP container {name} is restarting"),
                ));
            } else if c.restarts_last_hour > cfg.mcp_restarts_max {
                out.push(Finding::about(
                    &MCP_RESTARTING,
                    name,
                    format!(
                        "MCP container {name} restarted {} times in the last hour",
                        c.restarts_last_hour
                    ),
                ));
            }
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        let running = self
            .0
            .iter()
            .map(|(name, c)| {
                let label = ContainerLabel {
                    container: name.clone(),
                    state: c.state.clone(),
                };
                (label, prom::flag(c.state == "running"))
            })
            .collect();
        prom::family(
            reg,
            "pynchy_mcp_container_running",
            "1 if the MCP container is running (label state: Docker's State.Status)",
            running,
        );
        let restarts = self
            .0
            .iter()
            .map(|(name, c)| {
                let label = ContainerLabel {
                    container: name.clone(),
                    state: c.state.clone(),
                };
                (label, c.restarts_last_hour as f64)
            })
            .collect();
        prom::family(
            reg,
            "pynchy_mcp_restarts_last_hour",
            "Restarts of the MCP container seen within the last hour",
            restarts,
        );
    }

    fn summary(&self) -> String {
        let running = self.0.values().filter(|c| c.state == "running").count();
        format!("{} containers, {running} running", self.0.len())
    }
}

/// Restart counts seen per container over the last hour.
type History = HashMap<String, VecDeque<(Instant, u64)>>;

const HOUR: Duration = Duration::from_secs(3600);

/// Records `c`'s restart count now; the restarts within the last hour.
fn restarts_last_hour(history: &mut History, c: &ContainerInfo, now: Instant) -> u64 {
    let seen = history.entry(c.name.clone()).or_default();
    seen.push_back((now, c.restart_count));
    while seen
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) > HOUR)
    {
        seen.pop_front();
    }
    let least = seen
        .iter()
        .map(|(_, n)| *n)
        .min()
        .unwrap_or(c.restart_count);
    c.restart_count.saturating_sub(least)
}

pub struct Mcp {
    cfg: GatewayConfig,
    timeout: Duration,
    limit: u64,
    docker: Mutex<Option<bollard::Docker>>,
    history: Arc<Mutex<History>>,
}

impl Mcp {
    /// The Docker client, made once the socket is there.
    fn docker(&self) -> Result<bollard::Docker, CollectError> {
        let mut slot = self.docker.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let d = docker::client(&self.cfg.docker_host, self.timeout, self.limit)
            .map_err(|e| CollectError::new(e.to_string()))?;
        *slot = Some(d.clone());
        Ok(d)
    }
}

impl Section for Mcp {
    type Body = McpBody;

    fn collect(&self) -> Work<McpBody> {
        if self.cfg.mode != GatewayMode::Litellm {
            return Work::future(async { Ok(McpBody(BTreeMap::new())) });
        }
        let d = match self.docker() {
            Ok(d) => d,
            Err(e) => return Work::future(async move { Err(e) }),
        };
        let (timeout, history) = (self.timeout, self.history.clone());
        Work::future(async move {
            let list = docker::containers_named(&d, PREFIX, false, timeout)
                .await
                .map_err(|e| match e {
                    ListError::Unreachable => CollectError::new("Docker daemon unreachable"),
                    ListError::TooLarge(why) => CollectError::new(why),
                })?;
            let now = Instant::now();
            let mut history = history.lock().unwrap_or_else(|p| p.into_inner());
            history.retain(|name, _| list.iter().any(|c| &c.name == name));
            let body = list
                .into_iter()
                .map(|c| {
                    let restarts = restarts_last_hour(&mut history, &c, now);
                    let body = McpContainerBody {
                        state: c.state,
                        started_at: c.started_at,
                        restart_count: c.restart_count,
                        restarts_last_hour: restarts,
                        health: c.health,
                    };
                    (c.name, body)
                })
                .collect();
            Ok(McpBody(body))
        })
    }
}

impl Builtin for Mcp {
    const ID: SectionId = SectionId::Mcp;
    const RULES: &'static [&'static Rule] = &[&MCP_RESTARTING];

    /// With events (Docker's stream tells of every start and stop) every
    /// 30 s, a multiple of the others' 10 s so that unchanged ticks share one
    /// render; every 15 s when polling.
    fn default_schedule(config: &Config) -> Schedule {
        let every = if config.watch.enabled { 30 } else { 15 };
        Schedule::every(Duration::from_secs(every), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        Mcp {
            cfg: ctx.config.gateway.clone(),
            timeout: schedule.timeout * 9 / 10,
            limit: ctx.config.limits.docker_body,
            docker: Mutex::new(None),
            history: Arc::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(count: u64) -> ContainerInfo {
        ContainerInfo {
            name: "pynchy-mcp-x".into(),
            state: "running".into(),
            started_at: None,
            restart_count: count,
            health: None,
            ipc_folder: None,
        }
    }

    #[test]
    fn restarts_count_within_the_hour() {
        let mut h = History::new();
        let t0 = Instant::now();
        assert_eq!(restarts_last_hour(&mut h, &seen(7), t0), 0);
        assert_eq!(
            restarts_last_hour(&mut h, &seen(9), t0 + Duration::from_secs(60)),
            2
        );
        // An hour later the first observation has aged out.
        let later = t0 + Duration::from_secs(3700);
        assert_eq!(restarts_last_hour(&mut h, &seen(9), later), 0);
    }
}
