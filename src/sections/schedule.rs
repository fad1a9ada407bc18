//! When a section is collected: its [`Schedule`] (interval, timeout,
//! staleness, verify) and how it learns of change ([`Refresh`]).

use std::time::Duration;

use serde::Serialize;

use crate::config::SectionOverride;

/// How a section learns of change: from events (file, database and Docker
/// events, pushes), or by reading its source every interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Refresh {
    Event,
    Poll,
}

/// How often a section is collected, how long a collection may take, and when
/// its last good body stops counting as fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
    pub stale_after: Duration,
    /// In event mode, a full re-read this often, in case events were lost.
    pub verify: Duration,
}

/// The default `verify_interval`.
pub const VERIFY_INTERVAL: Duration = Duration::from_secs(300);

impl Schedule {
    /// A schedule with `stale_after` at its default of three intervals.
    pub const fn every(interval: Duration, timeout: Duration) -> Schedule {
        Schedule {
            interval,
            timeout,
            stale_after: Duration::from_nanos(interval.as_nanos() as u64 * 3),
            verify: VERIFY_INTERVAL,
        }
    }

    /// This default with one `[sections.<name>]` table applied.
    pub fn with_overrides(self, o: Option<&SectionOverride>) -> Schedule {
        let Some(o) = o else {
            return self;
        };
        let interval = o.interval.unwrap_or(self.interval);
        Schedule {
            interval,
            timeout: o.timeout.unwrap_or(self.timeout),
            stale_after: o.stale_after.unwrap_or(if o.interval.is_some() {
                interval.saturating_mul(3)
            } else {
                self.stale_after
            }),
            verify: o.verify_interval.unwrap_or(self.verify),
        }
    }
}
