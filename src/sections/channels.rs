//! `channels`: whether pynchy's chat channels (WhatsApp, Slack, ...) are
//! connected.
//!
//! Without a push, from pynchy's own `GET /health`: its `channels_connected`
//! is true when any channel is connected. That read costs pynchy three git
//! subprocesses run inside its event loop, so it is asked once a minute
//! (`[sections.channels] interval`, 60 s), and never while a push is fresh.
//! Per-channel detail needs a push (`PUT /push/channels`), which wins while
//! fresh (`[push] ttl`). No channel connected is a reason; pynchy not
//! answering is not (the service section says so), nor is a missing push.
//! A reload (SIGHUP) does not ask again sooner: the last answer is kept
//! across it; `POST /refresh/channels` does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, Finding, Health, Rule, Schedule, Section, Update, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::push::ChannelState;
use crate::sources::pynchy::{self as observe, Probe};
use crate::stamp::Stamp;

/// Observed: pynchy's `GET /health` (`channels_connected`: any channel
/// connected); pushed: each channel.
pub use super::Source;

/// The `channels` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ChannelsBody {
    /// Whether any channel is connected; null while pynchy has not answered.
    pub connected: Option<bool>,
    pub source: Source,
    /// Each channel by name: only from a push (empty without one).
    pub channels: BTreeMap<String, ChannelState>,
    /// When pynchy's `/health` last answered (observed).
    pub checked_at: Option<String>,
    /// Why `/health` could not be read, if it could not (not a reason:
    /// the service section reports pynchy itself).
    pub error: Option<String>,
}

pub static DISCONNECTED: Rule = Rule {
    name: "channel_disconnected",
    default: Severity::Degraded,
    what: "a pushed chat channel is disconnected, or pynchy's /health says no channel is connected",
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

impl Body for ChannelsBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        match self.source {
            Source::Pushed => {
                for (name, c) in &self.channels {
                    if !c.connected {
                        out.push(Finding::about(
                            &DISCONNECTED,
                            name.as_str(),
                            format!("channel {name} disconnected"),
                        ));
                    }
                }
            }
            Source::Observed => {
                if self.connected == Some(false) {
                    out.push(Finding::new(
                        &DISCONNECTED,
                        "no chat channel connected (pynchy's /health)",
                    ));
                }
            }
        }
    }

    /// `pynchy_channel_connected{channel}`: each pushed channel, or
    /// `channel="any"` when observed.
    fn metrics(&self, reg: &mut Registry) {
        let series: Vec<(ChannelLabel, f64)> = match self.source {
            Source::Pushed => self
                .channels
                .iter()
                .map(|(name, c)| {
                    let label = ChannelLabel {
                        channel: name.clone(),
                    };
                    (label, prom::flag(c.connected))
                })
                .collect(),
            Source::Observed => self
                .connected
                .map(|c| {
                    let label = ChannelLabel {
                        channel: "any".into(),
                    };
                    (label, prom::flag(c))
                })
                .into_iter()
                .collect(),
        };
        prom::family(
            reg,
            "pynchy_channel_connected",
            "1 if the chat channel is connected (channel=\"any\": pynchy's /health, any channel)",
            series,
        );
    }

    fn health(&self, h: &mut Health) {
        h.channels_connected = match self.source {
            Source::Pushed => Some(self.channels.values().all(|c| c.connected)),
            Source::Observed => self.connected,
        };
    }

    fn summary(&self) -> String {
        match self.source {
            Source::Pushed => self
                .channels
                .iter()
                .map(|(k, c)| format!("{k}={}", if c.connected { "up" } else { "DOWN" }))
                .collect::<Vec<_>>()
                .join(" "),
            Source::Observed => match self.connected {
                Some(true) => "connected".into(),
                Some(false) => "NONE connected".into(),
                None => "unknown".into(),
            },
        }
    }
}

pub struct ChannelsSection {
    ctx: Arc<Context>,
    push: super::PushFreshness,
    http: Option<reqwest::Client>,
    timeout: Duration,
    /// pynchy's last `/health` as read here, kept across a reload onto the
    /// same pynchy: a reload's first collection does not ask again.
    last: Arc<LastHealth>,
    /// How soon after the last ask `/health` may be asked again (its
    /// interval, less a second for the ticks' jitter), but for a refresh.
    min_gap: Duration,
}

/// When `/health` was last asked (the request's start), and the body its
/// answer made.
#[derive(Default)]
struct LastHealth(Mutex<Option<(Stamp, ChannelsBody)>>);

impl LastHealth {
    /// The last answer, if asked less than `gap` ago and after `not_before`
    /// (the last push: an answer older than it is not pynchy's state now).
    fn within(&self, gap: Duration, not_before: Option<Instant>) -> Option<(Stamp, ChannelsBody)> {
        let last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| {
                at.instant.elapsed() < gap && not_before.is_none_or(|p| at.instant > p)
            })
            .cloned()
    }

    fn set(&self, asked: Stamp, body: &ChannelsBody) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((asked, body.clone()));
    }
}

/// The most read of pynchy's `/health` answer (it is about 200 bytes).
const HEALTH_BODY: u64 = 64 * 1024;

async fn observed(http: Option<reqwest::Client>, url: String, timeout: Duration) -> ChannelsBody {
    let mut body = ChannelsBody {
        connected: None,
        source: Source::Observed,
        channels: BTreeMap::new(),
        checked_at: None,
        error: None,
    };
    let Some(http) = http else {
        body.error = Some("no HTTP client".into());
        return body;
    };
    match observe::probe(&http, &url, "/health", timeout, HEALTH_BODY).await {
        Probe::Answered(b) => match observe::health(&b).and_then(|h| h.channels_connected) {
            Some(c) => {
                body.connected = Some(c);
                body.checked_at = Some(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
            }
            None => body.error = Some("GET /health: no channels_connected in the answer".into()),
        },
        Probe::Status(code) => body.error = Some(format!("GET /health answered {code}")),
        Probe::TimedOut => body.error = Some("GET /health: no answer in time".into()),
        Probe::Unreachable(e) => body.error = Some(format!("GET /health: {e}")),
    }
    body
}

impl Section for ChannelsSection {
    type Body = ChannelsBody;

    fn collect(&self) -> Work<ChannelsBody> {
        if let Some(pushed) = self.pushed() {
            return pushed;
        }
        let refresh = self.ctx.refresh.take(SectionId::Channels);
        let last_push = self.ctx.push_source.channels().map(|p| p.stamp.instant);
        if let Some((asked, body)) = self
            .last
            .within(self.min_gap, last_push)
            .filter(|_| !refresh)
        {
            // Served as of when it was asked.
            return Work::done(Ok(Update::New(body))).as_of(Some(asked));
        }
        let (http, url, timeout) = (
            self.http.clone(),
            self.ctx.config.pynchy.url.clone(),
            self.timeout,
        );
        let last = self.last.clone();
        Work::future(async move {
            let asked = Stamp::now();
            let body = observed(http, url, timeout).await;
            last.set(asked, &body);
            Ok(body)
        })
    }

    /// Each channel as pushed, while the push is fresh.
    fn pushed(&self) -> Option<Work<ChannelsBody>> {
        let p = self
            .push
            .fresh(self.ctx.push_source.channels(), self.ctx.config.push.ttl)?;
        let any = p.value.values().any(|c| c.connected);
        let body = ChannelsBody {
            connected: Some(any),
            source: Source::Pushed,
            channels: p.value,
            checked_at: None,
            error: None,
        };
        Some(Work::done(Ok(Update::New(body))).as_of(Some(p.stamp)))
    }

    /// A push collects it at once; pynchy's `/health` is read every interval.
    fn refresh(&self) -> super::Refresh {
        let ttl = self.ctx.config.push.ttl;
        match self.ctx.push_source.channels() {
            Some(p) if p.stamp.instant.elapsed() < ttl => super::Refresh::Event,
            _ => super::Refresh::Poll,
        }
    }

    /// When the last push's TTL runs out: `/health` is read from then on.
    fn wake_at(&self) -> Option<std::time::Instant> {
        super::PushFreshness::expires(self.ctx.push_source.channels(), self.ctx.config.push.ttl)
    }
}

impl Builtin for ChannelsSection {
    const ID: SectionId = SectionId::Channels;
    const RULES: &'static [&'static Rule] = &[&DISCONNECTED];

    /// Once a minute: each read of pynchy's `/health` runs three git
    /// subprocesses inside its event loop.
    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(60), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        ChannelsSection {
            ctx: ctx.clone(),
            push: super::PushFreshness::new("channel"),
            http: crate::client::outbound().ok(),
            timeout: schedule.timeout * 9 / 10,
            last: ctx
                .kept
                .get(format!("channels health {}", ctx.config.pynchy.url)),
            min_gap: schedule.interval.saturating_sub(Duration::from_secs(1)),
        }
    }
}
