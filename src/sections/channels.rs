//! `channels`: which chat channels (WhatsApp, Slack, ...) are connected, as
//! pynchy last pushed it. Fresh for `[ingest] ttl` after the push.

use std::sync::Arc;
use std::time::Duration;

use super::{CollectError, Schedule, Section, Work};
use crate::context::Context;

pub struct ChannelsSection {
    ctx: Arc<Context>,
}

impl ChannelsSection {
    pub fn new(ctx: Arc<Context>) -> Self {
        ChannelsSection { ctx }
    }
}

/// The schedule of a pushed section: read memory every second, stale a TTL
/// after the push.
pub fn pushed_schedule(ctx: &Context) -> Schedule {
    Schedule {
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        stale_after: ctx.config.ingest.ttl,
    }
}

impl Section for ChannelsSection {
    fn name(&self) -> &'static str {
        "channels"
    }

    fn default_schedule(&self) -> Schedule {
        pushed_schedule(&self.ctx)
    }

    fn collect(&self) -> Work {
        match self.ctx.host.channels() {
            Some(s) => Work::Done {
                result: super::to_body(s.value),
                as_of: Some(s.stamp),
            },
            None => Work::Done {
                result: Err(CollectError::new("no channel state from pynchy yet")),
                as_of: None,
            },
        }
    }
}
