//! `service`: is the service up, since when, and is it shutting down.
//!
//! For now this describes the pynchy-status daemon itself: `ok` while it serves,
//! `shutting_down` once SIGTERM or SIGINT arrives.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use super::{Schedule, Section, Work};
use crate::context::Context;

/// The seed's `service` body.
#[derive(Debug, Serialize)]
pub struct ServiceBody {
    pub status: &'static str,
    pub started_at: String,
    pub uptime_seconds: i64,
}

pub struct Service {
    ctx: Arc<Context>,
}

impl Service {
    pub fn new(ctx: Arc<Context>) -> Self {
        Service { ctx }
    }
}

impl Section for Service {
    fn name(&self) -> &'static str {
        "service"
    }

    fn default_schedule(&self) -> Schedule {
        Schedule::every(Duration::from_secs(1), Duration::from_secs(1))
    }

    fn collect(&self) -> Work {
        let ctx = self.ctx.clone();
        Work::future(async move {
            let body = ServiceBody {
                status: if ctx.is_shutting_down() {
                    "shutting_down"
                } else {
                    "ok"
                },
                started_at: ctx.started_at.to_rfc3339_opts(SecondsFormat::Secs, false),
                uptime_seconds: (Utc::now() - ctx.started_at).num_seconds(),
            };
            serde_json::to_value(body).map_err(|e| super::CollectError::new(e.to_string()))
        })
    }
}
