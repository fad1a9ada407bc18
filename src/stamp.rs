//! [`Stamp`]: when a value was true, on both clocks. A leaf: every layer that
//! times something (sources, sections, the store) uses it, and it uses nothing.

use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

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

/// Parses pynchy's timestamps: RFC 3339, or naive ISO 8601 (taken as UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn naive_timestamps_are_utc() {
        assert_eq!(t("2026-02-20T09:00:00"), t("2026-02-20T09:00:00+00:00"));
        assert_eq!(t("2026-02-20 09:00:00.5"), t("2026-02-20T09:00:00.5Z"));
        assert_eq!(t("2026-02-20T10:00:00+01:00"), t("2026-02-20T09:00:00Z"));
        assert!(parse_time("yesterday").is_none());
    }
}
