//! `service`: is pynchy up, since when, and is it shutting down.
//!
//! From pynchy's pushes (`PUT /ingest/service`): its `status` and `started_at`,
//! with `uptime_seconds` counted from that `started_at`. `unknown` before the
//! first push, `unreachable` once the last push is older than `[ingest] ttl`,
//! and `shutting_down` while this daemon itself is stopping.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{Body, Builtin, Finding, Health, Rule, Schedule, Section, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::host_state::PushedStatus;

/// What `service.status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    Ok,
    ShuttingDown,
    Unreachable,
    Unknown,
}

/// The `service` body.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ServiceBody {
    pub status: ServiceStatus,
    pub started_at: Option<String>,
    pub uptime_seconds: Option<i64>,
}

pub static SHUTTING_DOWN: Rule = Rule {
    name: "service_shutting_down",
    default: Severity::Down,
    what: "pynchy says it is shutting down",
};
pub static UNREACHABLE: Rule = Rule {
    name: "service_unreachable",
    default: Severity::Down,
    what: "pynchy's pushes stopped for a TTL",
};
pub static UNKNOWN: Rule = Rule {
    name: "service_unknown",
    default: Severity::Degraded,
    what: "pynchy has not pushed its state yet",
};

impl Body for ServiceBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        match self.status {
            ServiceStatus::ShuttingDown => {
                out.push(Finding::new(&SHUTTING_DOWN, "pynchy is shutting down"))
            }
            ServiceStatus::Unreachable => out.push(Finding::new(
                &UNREACHABLE,
                "pynchy stopped pushing its state (unreachable)",
            )),
            ServiceStatus::Unknown => out.push(Finding::new(
                &UNKNOWN,
                "pynchy has not pushed its state yet",
            )),
            ServiceStatus::Ok => {}
        }
    }

    fn health(&self, h: &mut Health) {
        h.uptime_seconds = self.uptime_seconds;
    }

    fn summary(&self) -> String {
        let status = serde_json::to_value(self.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        format!("{status} up {}s", super::show(&self.uptime_seconds))
    }
}

pub struct Service {
    ctx: Arc<Context>,
}

impl Service {
    /// The body as of now.
    pub fn body(&self) -> ServiceBody {
        let pushed = self.ctx.host.service();
        let ttl = self.ctx.config.ingest.ttl;
        let (status, started) = match &pushed {
            None => (ServiceStatus::Unknown, None),
            Some(p) if p.stamp.instant.elapsed() >= ttl => {
                (ServiceStatus::Unreachable, Some(&p.value.started_at))
            }
            Some(p) => (
                match p.value.status {
                    PushedStatus::Ok => ServiceStatus::Ok,
                    PushedStatus::ShuttingDown => ServiceStatus::ShuttingDown,
                },
                Some(&p.value.started_at),
            ),
        };
        let status = if self.ctx.is_shutting_down() {
            ServiceStatus::ShuttingDown
        } else {
            status
        };
        ServiceBody {
            status,
            // Exactly the string pynchy pushed.
            started_at: started.map(|t| t.raw.clone()),
            uptime_seconds: started
                .filter(|_| status != ServiceStatus::Unreachable)
                .map(|t| (Utc::now() - t.at).num_seconds().max(0)),
        }
    }
}

impl Section for Service {
    type Body = ServiceBody;

    fn collect(&self) -> Work<ServiceBody> {
        Work::Done {
            result: Ok(super::Update::New(self.body())),
            as_of: None,
        }
    }

    /// A push collects it at once.
    fn refresh(&self) -> super::Refresh {
        super::Refresh::Event
    }

    /// When the last push's TTL runs out: `unreachable` from that instant.
    fn wake_at(&self) -> Option<std::time::Instant> {
        let pushed = self.ctx.host.service()?;
        let at = pushed
            .stamp
            .instant
            .checked_add(self.ctx.config.ingest.ttl)?;
        (at > std::time::Instant::now()).then_some(at)
    }
}

impl Builtin for Service {
    const ID: SectionId = SectionId::Service;
    const RULES: &'static [&'static Rule] = &[&SHUTTING_DOWN, &UNREACHABLE, &UNKNOWN];

    /// Polling: every second (`uptime_seconds` moves, `unreachable` is due on
    /// time). With events: every 10 s and at once on a push, and at the
    /// instant the last push's TTL runs out ([`Section::wake_at`]).
    fn default_schedule(config: &Config) -> Schedule {
        let every = if config.watch.enabled { 10 } else { 1 };
        Schedule::every(Duration::from_secs(every), Duration::from_secs(1))
    }

    fn new(ctx: &Arc<Context>, _: Schedule) -> Self {
        Service { ctx: ctx.clone() }
    }
}
