//! `channels`: which chat channels (WhatsApp, Slack, ...) are connected, as
//! pynchy last pushed it. Fresh for `[ingest] ttl` after the push.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, Finding, Health, Rule, Schedule, Section, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::host_state::Channels;

/// The `channels` body: `{"<name>": {"connected": bool}, ...}`, as pushed.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct ChannelsBody(pub Channels);

pub static DISCONNECTED: Rule = Rule {
    name: "channel_disconnected",
    default: Severity::Degraded,
    what: "a chat channel is disconnected",
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

impl Body for ChannelsBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        for (name, c) in &self.0 {
            if !c.connected {
                out.push(Finding::new(
                    &DISCONNECTED,
                    format!("channel {name} disconnected"),
                ));
            }
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        prom::family(
            reg,
            "pynchy_channel_connected",
            "1 if the chat channel is connected",
            self.0
                .iter()
                .map(|(name, c)| {
                    let label = ChannelLabel {
                        channel: name.clone(),
                    };
                    (label, prom::flag(c.connected))
                })
                .collect(),
        );
    }

    fn health(&self, h: &mut Health) {
        h.channels_connected = Some(self.0.values().all(|c| c.connected));
    }

    fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(k, c)| format!("{k}={}", if c.connected { "up" } else { "DOWN" }))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub struct ChannelsSection {
    ctx: Arc<Context>,
}

impl Section for ChannelsSection {
    type Body = ChannelsBody;

    fn collect(&self) -> Work<ChannelsBody> {
        super::pushed(self.ctx.host.channels(), ChannelsBody, "channel")
    }

    /// A push collects it at once.
    fn refresh(&self) -> super::Refresh {
        super::Refresh::Event
    }
}

impl Builtin for ChannelsSection {
    const ID: SectionId = SectionId::Channels;
    const RULES: &'static [&'static Rule] = &[&DISCONNECTED];

    fn default_schedule(config: &Config) -> Schedule {
        super::pushed_schedule(config)
    }

    fn new(ctx: &Arc<Context>, _: Schedule) -> Self {
        ChannelsSection { ctx: ctx.clone() }
    }
}
