//! [`Stamp`]: when a value was true, on both clocks. A leaf: every layer that
//! times something (sources, sections, the store) uses it, and it uses nothing.

use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};

/// When a value was true: wall-clock time for `collected_at`, and the monotonic
/// instant for staleness deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub at: DateTime<Utc>,
    pub instant: Instant,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp {
            at: Utc::now(),
            instant: Instant::now(),
        }
    }
}

/// A time as every answer writes it: RFC 3339, UTC (`Z`), milliseconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
