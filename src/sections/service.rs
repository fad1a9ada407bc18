//! `service`: is pynchy up, since when, and is it shutting down.
//!
//! From pynchy's pushes (`PUT /ingest/service`): its `status` and `started_at`,
//! with `uptime_seconds` counted from that `started_at`. `unknown` before the
//! first push, `unreachable` once the last push is older than `[ingest] ttl`,
//! and `shutting_down` while this daemon itself is stopping.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use super::{Schedule, Section, Work};
use crate::context::Context;
use crate::sources::host_state::PushedStatus;

/// The seed's `service` body.
#[derive(Debug, Serialize, PartialEq)]
pub struct ServiceBody {
    pub status: &'static str,
    pub started_at: Option<String>,
    pub uptime_seconds: Option<i64>,
}

pub struct Service {
    ctx: Arc<Context>,
}

impl Service {
    pub fn new(ctx: Arc<Context>) -> Self {
        Service { ctx }
    }

    /// The body as of now.
    pub fn body(&self) -> ServiceBody {
        let pushed = self.ctx.host.service();
        let ttl = self.ctx.config.ingest.ttl;
        let (status, started) = match &pushed {
            None => ("unknown", None),
            Some(p) if p.stamp.instant.elapsed() >= ttl => {
                ("unreachable", Some(p.value.started_at))
            }
            Some(p) => (
                match p.value.status {
                    PushedStatus::Ok => "ok",
                    PushedStatus::ShuttingDown => "shutting_down",
                },
                Some(p.value.started_at),
            ),
        };
        let status = if self.ctx.is_shutting_down() {
            "shutting_down"
        } else {
            status
        };
        ServiceBody {
            status,
            started_at: started.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false)),
            uptime_seconds: started
                .filter(|_| status != "unreachable")
                .map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds().max(0)),
        }
    }
}

impl Section for Service {
    fn name(&self) -> &'static str {
        "service"
    }

    /// Every second: `uptime_seconds` moves, and `unreachable` is due on time.
    fn default_schedule(&self) -> Schedule {
        Schedule::every(Duration::from_secs(1), Duration::from_secs(1))
    }

    fn collect(&self) -> Work {
        Work::Done {
            result: super::to_body(self.body()),
            as_of: None,
        }
    }
}
