//! [`SectionState`]: what the store knows about one section — its last good
//! body (typed, behind [`ErasedBody`]) and its meta (when collected, how long
//! it took, its schedule, its last error). The rollup, the metrics and the
//! render read it; only the store writes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::section_id::SectionId;
use crate::sections::{CollectError, ErasedBody, Schedule};
use crate::stamp::Stamp;

/// What the store knows about one section.
#[derive(Clone)]
pub struct SectionState {
    pub id: SectionId,
    pub schedule: Schedule,
    /// The last good body (kept through later errors).
    pub body: Option<Arc<dyn ErasedBody>>,
    /// `body` serialized once, when it arrived.
    pub body_json: Option<Bytes>,
    /// The body's one-line summary, made once, when it arrived.
    pub summary: Option<String>,
    /// When the last good body was true.
    pub collected: Option<Stamp>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub duration: Option<Duration>,
    pub error: Option<CollectError>,
}

impl SectionState {
    pub fn new(id: SectionId, schedule: Schedule) -> Self {
        SectionState {
            id,
            schedule,
            body: None,
            body_json: None,
            summary: None,
            collected: None,
            attempted_at: None,
            duration: None,
            error: None,
        }
    }

    /// Wall-clock time of the last good body.
    pub fn collected_at(&self) -> Option<DateTime<Utc>> {
        self.collected.map(|c| c.at)
    }

    /// True when there is no good body, or the last one is older than `stale_after`.
    pub fn is_stale(&self, now: Instant) -> bool {
        match self.collected {
            None => true,
            Some(c) => now.saturating_duration_since(c.instant) >= self.schedule.stale_after,
        }
    }

    /// When this section turns stale, if it is fresh now.
    pub fn stale_deadline(&self, now: Instant) -> Option<Instant> {
        let t = self
            .collected?
            .instant
            .checked_add(self.schedule.stale_after)?;
        (t > now).then_some(t)
    }
}

/// The meta entry of one section, as served.
#[derive(Serialize)]
pub struct Meta<'a> {
    collected_at: Option<String>,
    attempted_at: Option<String>,
    duration_ms: Option<f64>,
    interval_seconds: f64,
    stale: bool,
    error: Option<&'a str>,
    /// The body's key numbers in a few words (what `check` shows).
    summary: Option<&'a str>,
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl<'a> Meta<'a> {
    pub fn of(s: &'a SectionState, now: Instant) -> Self {
        Meta {
            collected_at: s.collected_at().as_ref().map(rfc3339),
            attempted_at: s.attempted_at.as_ref().map(rfc3339),
            duration_ms: s
                .duration
                .map(|d| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0),
            interval_seconds: s.schedule.interval.as_secs_f64(),
            stale: s.is_stale(now),
            error: s.error.as_ref().map(|e| e.message.as_str()),
            summary: s.summary.as_deref(),
        }
    }
}
