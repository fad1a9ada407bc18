//! [`SectionRecord`]: what the store knows about one section — its last good
//! body (typed, behind [`ErasedBody`]) and its meta (when collected, how long
//! it took, its schedule, its last error). The rollup, the metrics and the
//! render read it; only the store writes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::section_id::SectionId;
use crate::sections::{CollectError, ErasedBody, Refresh, Schedule};
use crate::stamp::Stamp;

/// A section's state, as `meta.<name>.state` serves it (and the only thing
/// the word `state` names here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Fresh, and the last collection did not fail.
    Ok,
    /// The last collection failed (the last good body is still served).
    Error,
    /// Older than its `stale_after`.
    Stale,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Error => "error",
            State::Stale => "stale",
        }
    }
}

/// What the store knows about one section.
#[derive(Clone)]
pub struct SectionRecord {
    pub id: SectionId,
    pub schedule: Schedule,
    /// The last good body (kept through later errors).
    pub body: Option<Arc<dyn ErasedBody>>,
    /// `body` serialized once, when it arrived.
    pub body_json: Option<Bytes>,
    /// The body's one-line summary, made once, when it arrived.
    pub summary: Option<String>,
    /// The body's own pages (`/status/{section}/{key}`), if it has any.
    pub pages: Option<Arc<crate::rendered::Pages>>,
    /// When the last good body was read from its source.
    pub collected: Option<Stamp>,
    /// When the daemon last confirmed the body still holds (a read, or the
    /// source saying nothing changed): what staleness counts from.
    pub checked: Option<Stamp>,
    /// How the section learns of change.
    pub refresh: Refresh,
    pub attempted_at: Option<DateTime<Utc>>,
    pub duration: Option<Duration>,
    pub error: Option<CollectError>,
}

impl SectionRecord {
    /// `stale`, else `error` when the last collection failed, else `ok`.
    pub fn state(&self, now: Instant) -> State {
        if self.is_stale(now) {
            State::Stale
        } else if self.error.is_some() {
            State::Error
        } else {
            State::Ok
        }
    }

    pub fn new(id: SectionId, schedule: Schedule) -> Self {
        SectionRecord {
            id,
            schedule,
            body: None,
            body_json: None,
            summary: None,
            pages: None,
            collected: None,
            checked: None,
            refresh: Refresh::Poll,
            attempted_at: None,
            duration: None,
            error: None,
        }
    }

    /// Wall-clock time of the last good body.
    pub fn collected_at(&self) -> Option<DateTime<Utc>> {
        self.collected.map(|c| c.at)
    }

    /// When the body was last known to hold.
    fn confirmed(&self) -> Option<Stamp> {
        self.checked.or(self.collected)
    }

    /// True when there is no good body, or it was last confirmed longer than
    /// `stale_after` ago.
    pub fn is_stale(&self, now: Instant) -> bool {
        match self.confirmed() {
            None => true,
            Some(c) => now.saturating_duration_since(c.instant) >= self.schedule.stale_after,
        }
    }

    /// When this section turns stale, if it is fresh now.
    pub fn stale_deadline(&self, now: Instant) -> Option<Instant> {
        let t = self
            .confirmed()?
            .instant
            .checked_add(self.schedule.stale_after)?;
        (t > now).then_some(t)
    }
}

/// The meta entry of one section, as served.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Meta<'a> {
    collected_at: Option<String>,
    /// When the daemon last confirmed nothing changed (or read it).
    checked_at: Option<String>,
    refresh: Refresh,
    attempted_at: Option<String>,
    duration_ms: Option<f64>,
    interval_seconds: f64,
    stale: bool,
    error: Option<&'a str>,
    /// The body's key numbers in a few words (what `check` shows).
    summary: Option<&'a str>,
    state: State,
    /// Since when it is in that state (RFC 3339).
    state_since: Option<String>,
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    crate::stamp::rfc3339(*t)
}

impl<'a> Meta<'a> {
    pub fn of(s: &'a SectionRecord, now: Instant, state_since: Option<String>) -> Self {
        Meta {
            collected_at: s.collected_at().as_ref().map(rfc3339),
            checked_at: s.confirmed().map(|c| rfc3339(&c.at)),
            refresh: s.refresh,
            attempted_at: s.attempted_at.as_ref().map(rfc3339),
            duration_ms: s
                .duration
                .map(|d| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0),
            interval_seconds: s.schedule.interval.as_secs_f64(),
            stale: s.is_stale(now),
            error: s.error.as_ref().map(|e| e.message.as_str()),
            summary: s.summary.as_deref(),
            state: s.state(now),
            state_since,
        }
    }
}
