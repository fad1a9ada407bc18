//! `queue`: pynchy's container queue (active containers, the concurrency
//! limit, groups waiting, and per group what is running and pending), as pynchy
//! last pushed it. Fresh for `[ingest] ttl` after the push.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::host_state::QueueState;

/// The `queue` body, as pushed.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct QueueBody(pub QueueState);

pub static SATURATED: Rule = Rule {
    name: "queue_saturated",
    default: Severity::Degraded,
    what: "the queue is at max_concurrent with groups waiting",
};

impl Body for QueueBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        let q = &self.0;
        if q.max_concurrent > 0 && q.active_containers >= q.max_concurrent && q.groups_waiting > 0 {
            out.push(Finding::new(
                &SATURATED,
                format!(
                    "queue at max_concurrent ({}) with {} groups waiting",
                    q.max_concurrent, q.groups_waiting
                ),
            ));
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        let q = &self.0;
        for (name, v, help) in [
            (
                "pynchy_queue_active_containers",
                q.active_containers,
                "Agent containers running",
            ),
            (
                "pynchy_queue_max_concurrent",
                q.max_concurrent,
                "The queue's concurrency limit",
            ),
            (
                "pynchy_queue_groups_waiting",
                q.groups_waiting,
                "Groups waiting for a container",
            ),
        ] {
            prom::gauge(reg, name, help, v as f64);
        }
    }

    fn summary(&self) -> String {
        let q = &self.0;
        format!(
            "active {}/{} waiting {}",
            q.active_containers, q.max_concurrent, q.groups_waiting
        )
    }
}

pub struct Queue {
    ctx: Arc<Context>,
}

impl Section for Queue {
    type Body = QueueBody;

    fn collect(&self) -> Work<QueueBody> {
        super::pushed(self.ctx.host.queue(), QueueBody, "queue")
    }

    /// A push collects it at once.
    fn refresh(&self) -> super::Refresh {
        super::Refresh::Event
    }
}

impl Builtin for Queue {
    const ID: SectionId = SectionId::Queue;
    const RULES: &'static [&'static Rule] = &[&SATURATED];

    fn default_schedule(config: &Config) -> Schedule {
        super::pushed_schedule(config)
    }

    fn new(ctx: &Arc<Context>, _: Schedule) -> Self {
        Queue { ctx: ctx.clone() }
    }
}
