//! When is a scheduled task or host job overdue?
//!
//! An active schedule is overdue when its `next_run` is more than the grace
//! period in the past, or, for `cron`, when its last run (or its creation, if it
//! never ran) is earlier than the last time the expression fired before
//! `now - grace`: that run was missed. Cron is standard 5-field cron with
//! day-of-month and day-of-week ORed when both are restricted (croner's
//! default), evaluated in the configured IANA zone, so daylight-saving changes
//! shift fire times the way pynchy's scheduler sees them. `interval` values are
//! milliseconds; `once` never recurs. Naive timestamps are UTC.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// A schedule as pynchy stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Recurrence {
    Cron(Box<Cron>),
    /// Every so many milliseconds.
    Interval(u64),
    Once,
}

/// Parses `schedule_type` / `schedule_value`; the error says why it cannot be understood.
pub fn parse_schedule(kind: &str, value: &str) -> Result<Recurrence, String> {
    match kind {
        "cron" => {
            let fields = value.split_whitespace().count();
            if fields != 5 {
                return Err(format!(
                    "cron expression must have 5 fields, found {fields}: `{value}`"
                ));
            }
            CronParser::builder()
                .seconds(Seconds::Disallowed)
                .build()
                .parse(value)
                .map(|c| Recurrence::Cron(Box::new(c)))
                .map_err(|e| format!("invalid cron expression `{value}`: {e}"))
        }
        "interval" => match value.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Recurrence::Interval(ms)),
            _ => Err(format!(
                "interval must be a positive whole number of milliseconds, found `{value}`"
            )),
        },
        "once" => Ok(Recurrence::Once),
        other => Err(format!("unknown schedule_type `{other}`")),
    }
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

/// What the overdue rule needs to know about one task or job.
#[derive(Debug, Clone, Copy, Default)]
pub struct Due<'a> {
    pub schedule_type: Option<&'a str>,
    pub schedule_value: Option<&'a str>,
    pub status: Option<&'a str>,
    /// False for a disabled host job.
    pub enabled: bool,
    pub next_run: Option<&'a str>,
    pub last_run: Option<&'a str>,
    pub created_at: Option<&'a str>,
}

/// The zone, grace and moment rows are judged by.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    pub tz: Tz,
    pub grace: Duration,
    pub now: DateTime<Utc>,
}

impl Judge {
    /// Judging at this moment, by `[pynchy] timezone` and `overdue_grace`.
    pub fn now(config: &crate::config::PynchyConfig) -> Judge {
        Judge {
            tz: config.timezone,
            grace: config.overdue_grace,
            now: Utc::now(),
        }
    }

    /// `(overdue, schedule_error)` for one task or host job.
    pub fn assess(&self, due: Due<'_>) -> (bool, Option<String>) {
        let parsed = parse_schedule(
            due.schedule_type.unwrap_or(""),
            due.schedule_value.unwrap_or(""),
        );
        let overdue = is_overdue(due, parsed.as_ref().ok(), self.tz, self.grace, self.now);
        (overdue, parsed.err())
    }
}

/// True when an active, enabled schedule is late by more than `grace` at `now`.
pub fn is_overdue(
    due: Due<'_>,
    schedule: Option<&Recurrence>,
    tz: Tz,
    grace: Duration,
    now: DateTime<Utc>,
) -> bool {
    if due.status != Some("active") || !due.enabled {
        return false;
    }
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let Some(cutoff) = now.checked_sub_signed(grace) else {
        return false;
    };
    if due
        .next_run
        .and_then(parse_time)
        .is_some_and(|next| next < cutoff)
    {
        return true;
    }
    if let Some(Recurrence::Cron(cron)) = schedule {
        let reference = due.last_run.or(due.created_at).and_then(parse_time);
        if let (Some(reference), Ok(prev)) = (
            reference,
            cron.find_previous_occurrence(&cutoff.with_timezone(&tz), true),
        ) {
            return reference < prev.with_timezone(&Utc);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn due<'a>(next: Option<&'a str>, last: Option<&'a str>) -> Due<'a> {
        Due {
            status: Some("active"),
            enabled: true,
            next_run: next,
            last_run: last,
            created_at: Some("2026-01-01T00:00:00+00:00"),
            ..Default::default()
        }
    }

    const GRACE: Duration = Duration::from_secs(300);

    #[test]
    fn naive_timestamps_are_utc() {
        assert_eq!(t("2026-02-20T09:00:00"), t("2026-02-20T09:00:00+00:00"));
        assert_eq!(t("2026-02-20 09:00:00.5"), t("2026-02-20T09:00:00.5Z"));
        assert_eq!(t("2026-02-20T10:00:00+01:00"), t("2026-02-20T09:00:00Z"));
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn next_run_past_grace_is_overdue() {
        let now = t("2026-02-20T09:00:00Z");
        let s = parse_schedule("interval", "60000").unwrap();
        assert!(is_overdue(
            due(Some("2026-02-20T08:54:00+00:00"), None),
            Some(&s),
            Tz::UTC,
            GRACE,
            now
        ));
        assert!(!is_overdue(
            due(Some("2026-02-20T08:56:00+00:00"), None),
            Some(&s),
            Tz::UTC,
            GRACE,
            now
        ));
        let mut paused = due(Some("2026-02-20T08:00:00+00:00"), None);
        paused.status = Some("paused");
        assert!(!is_overdue(paused, Some(&s), Tz::UTC, GRACE, now));
        let mut disabled = due(Some("2026-02-20T08:00:00+00:00"), None);
        disabled.enabled = false;
        assert!(!is_overdue(disabled, Some(&s), Tz::UTC, GRACE, now));
    }

    #[test]
    fn missed_cron_run_across_dst() {
        // Europe/Berlin springs forward on 2026-03-29: 09:00 local is 07:00 UTC
        // that day, 08:00 UTC the day before.
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let s = parse_schedule("cron", "0 9 * * *").unwrap();
        let now = t("2026-03-29T07:30:00Z");
        let next = Some("2026-03-30T07:00:00+00:00");
        // Ran yesterday at 09:00 local: today's 09:00 (07:00 UTC) was missed.
        assert!(is_overdue(
            due(next, Some("2026-03-28T08:00:05Z")),
            Some(&s),
            tz,
            GRACE,
            now
        ));
        // Ran today at 09:00 CEST (07:00 UTC): fine. A fixed +01:00 offset would
        // put the fire at 08:00 UTC and call this missed at 08:30.
        assert!(!is_overdue(
            due(next, Some("2026-03-29T07:00:05Z")),
            Some(&s),
            tz,
            GRACE,
            now
        ));
        assert!(!is_overdue(
            due(next, Some("2026-03-29T07:00:05Z")),
            Some(&s),
            tz,
            GRACE,
            t("2026-03-29T08:30:00Z")
        ));
        // Within the grace nothing is missed yet.
        assert!(!is_overdue(
            due(next, Some("2026-03-28T08:00:05Z")),
            Some(&s),
            tz,
            GRACE,
            t("2026-03-29T07:03:00Z")
        ));
    }

    #[test]
    fn day_fields_are_ored() {
        // The 1st of the month OR any Monday: 2026-02-02 is a Monday, not the 1st.
        let Recurrence::Cron(c) = parse_schedule("cron", "0 12 1 * 1").unwrap() else {
            panic!()
        };
        let prev = c
            .find_previous_occurrence(&t("2026-02-03T00:00:00Z").with_timezone(&Tz::UTC), true)
            .unwrap();
        assert_eq!(prev.with_timezone(&Utc), t("2026-02-02T12:00:00Z"));
    }

    #[test]
    fn schedule_errors_say_why() {
        assert!(parse_schedule("cron", "0 9 * *")
            .unwrap_err()
            .contains("5 fields"));
        assert!(parse_schedule("cron", "0 25 * * *")
            .unwrap_err()
            .contains("invalid cron"));
        assert!(parse_schedule("cron", "0 0 9 * * *")
            .unwrap_err()
            .contains("5 fields"));
        assert!(parse_schedule("interval", "soon")
            .unwrap_err()
            .contains("milliseconds"));
        assert!(parse_schedule("weekly", "x")
            .unwrap_err()
            .contains("weekly"));
        assert_eq!(
            parse_schedule("once", "2026-01-01").unwrap(),
            Recurrence::Once
        );
    }
}
