//! `queue`: pynchy's container queue (active containers, the concurrency
//! limit, groups waiting, and per group what is running and pending), as pynchy
//! last pushed it. Fresh for `[ingest] ttl` after the push.

use std::sync::Arc;

use super::{CollectError, Schedule, Section, Work};
use crate::context::Context;

pub struct Queue {
    ctx: Arc<Context>,
}

impl Queue {
    pub fn new(ctx: Arc<Context>) -> Self {
        Queue { ctx }
    }
}

impl Section for Queue {
    fn name(&self) -> &'static str {
        "queue"
    }

    fn default_schedule(&self) -> Schedule {
        super::channels::pushed_schedule(&self.ctx)
    }

    fn collect(&self) -> Work {
        match self.ctx.host.queue() {
            Some(s) => Work::Done {
                result: super::to_body(s.value),
                as_of: Some(s.stamp),
            },
            None => Work::Done {
                result: Err(CollectError::new("no queue state from pynchy yet")),
                as_of: None,
            },
        }
    }
}
