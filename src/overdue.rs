//! When is a scheduled task or host job overdue — by pynchy's own rules?
//!
//! pynchy's scheduler runs a row when `status = 'active'`, `next_run` is not
//! NULL and `next_run <= now`, compared as strings (so only the first 19
//! characters, read as UTC, matter), plus `enabled = 1` for host jobs. It polls
//! every `[scheduler] poll_interval`, and a due task waits in its group's queue
//! while that group has a container running (up to the container timeout). So
//! a row is overdue here only when pynchy would have run it by now and has
//! not: due by pynchy's rule for longer than the poll interval plus
//! `[pynchy] overdue_grace`, plus the container timeout while its group is busy.
//! The stored `next_run` is trusted; a cron time is recomputed only when
//! `next_run` is missing, with an hour more of slack (pynchy's scheduler is an
//! hour off across DST changes). A paused, completed or disabled row is never
//! overdue and never reports a schedule error.
//!
//! Schedules are parsed by [`crate::cron`] (croniter's dialect); timestamps by
//! [`crate::stamp::parse_time`] (naive ones are UTC).

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::cron::{next_fire, parse_schedule, Recurrence};
use crate::stamp::parse_time;

/// When pynchy's due rule takes `next_run` to be: its first 19 characters as
/// UTC (pynchy compares the strings with its own UTC `isoformat()`, so an
/// offset is ignored).
pub fn due_at(next_run: &str) -> Option<DateTime<Utc>> {
    let head = next_run.get(..19).unwrap_or(next_run).replace(' ', "T");
    NaiveDateTime::parse_from_str(&head, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&head, "%Y-%m-%dT%H:%M"))
        .ok()
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
    /// Slack of its own: the task's group has a container running (it waits
    /// for it), or a host job may be running for its timeout.
    pub waits: Duration,
}

/// The zone, slack and moment rows are judged by.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    pub tz: Tz,
    /// pynchy's `[scheduler] poll_interval` plus `[pynchy] overdue_grace`.
    pub slack: Duration,
    pub now: DateTime<Utc>,
    /// False while pynchy is known to be down: nothing runs then, and the
    /// service section says so once.
    pub pynchy_up: bool,
}

impl Judge {
    /// Judging at this moment, by `[pynchy] timezone`, `poll_interval` and
    /// `overdue_grace`.
    pub fn now(config: &crate::config::PynchyConfig, pynchy_up: bool) -> Judge {
        Judge {
            tz: config.timezone,
            slack: config.poll_interval.saturating_add(config.overdue_grace),
            now: Utc::now(),
            pynchy_up,
        }
    }

    /// `(overdue, schedule_error)` for one task or host job.
    pub fn assess(&self, due: Due<'_>) -> (bool, Option<String>) {
        if due.status != Some("active") || !due.enabled {
            return (false, None);
        }
        let parsed = parse_schedule(
            due.schedule_type.unwrap_or(""),
            due.schedule_value.unwrap_or(""),
        );
        let overdue = self.pynchy_up && self.is_overdue(due, parsed.as_ref().ok());
        (overdue, parsed.err())
    }

    /// True when pynchy would have run this active row more than its slack ago.
    pub fn is_overdue(&self, due: Due<'_>, schedule: Option<&Recurrence>) -> bool {
        let slack = self.slack.saturating_add(due.waits);
        let late = |t: DateTime<Utc>, slack: Duration| {
            chrono::Duration::from_std(slack)
                .ok()
                .and_then(|s| t.checked_add_signed(s))
                .is_some_and(|limit| self.now > limit)
        };
        if let Some(next) = due.next_run {
            return due_at(next).is_some_and(|at| late(at, slack));
        }
        // No next_run: pynchy will not run it; recompute when a cron run was
        // due, with an hour more of slack for pynchy's DST quirk.
        let Some(Recurrence::Cron(Some(cron))) = schedule else {
            return false;
        };
        let Some(since) = due.last_run.or(due.created_at).and_then(parse_time) else {
            return false;
        };
        next_fire(cron, self.tz, since)
            .is_some_and(|fire| late(fire, slack.saturating_add(Duration::from_secs(3600))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn due<'a>(next: Option<&'a str>, last: Option<&'a str>) -> Due<'a> {
        Due {
            schedule_type: Some("cron"),
            schedule_value: Some("0 9 * * *"),
            status: Some("active"),
            enabled: true,
            next_run: next,
            last_run: last,
            created_at: Some("2026-01-01T00:00:00+00:00"),
            waits: Duration::ZERO,
        }
    }

    fn judge(now: &str) -> Judge {
        Judge {
            tz: "Europe/Berlin".parse().unwrap(),
            slack: Duration::from_secs(60 + 300),
            now: t(now),
            pynchy_up: true,
        }
    }

    #[test]
    fn due_is_compared_as_pynchy_compares() {
        // The offset is ignored: pynchy compares the first 19 characters.
        assert_eq!(
            due_at("2026-02-20T10:00:00+01:00"),
            Some(t("2026-02-20T10:00:00Z"))
        );
        assert_eq!(
            due_at("2026-02-20T10:00:00.123456+00:00"),
            Some(t("2026-02-20T10:00:00Z"))
        );
    }

    #[test]
    fn late_past_poll_interval_and_grace_is_overdue() {
        let j = judge("2026-02-20T09:00:00Z");
        let (o, _) = j.assess(due(Some("2026-02-20T08:53:59+00:00"), None));
        assert!(o);
        let (o, _) = j.assess(due(Some("2026-02-20T08:54:30+00:00"), None));
        assert!(!o, "within poll interval + grace");
        let mut busy = due(Some("2026-02-20T08:40:00+00:00"), None);
        busy.waits = Duration::from_secs(1800);
        assert!(!j.assess(busy).0, "its group's container is running");
        let mut paused = due(Some("2026-02-20T08:00:00+00:00"), None);
        paused.status = Some("paused");
        paused.schedule_value = Some("not cron");
        assert_eq!(j.assess(paused), (false, None));
        let mut down = j;
        down.pynchy_up = false;
        assert!(!down.assess(due(Some("2026-02-20T08:00:00+00:00"), None)).0);
    }

    #[test]
    fn a_future_next_run_is_never_overdue() {
        // pynchy rewrote next_run after a schedule change and left last_run old.
        let j = judge("2026-03-29T12:00:00Z");
        let (o, _) = j.assess(due(
            Some("2026-03-30T07:00:00+00:00"),
            Some("2026-03-01T08:00:00Z"),
        ));
        assert!(!o);
    }

    #[test]
    fn missing_next_run_recomputes_with_an_hour_more() {
        // Ran 2026-03-28 09:00 Berlin; the next fire is 2026-03-29 09:00 CEST
        // (07:00 UTC).
        let d = due(None, Some("2026-03-28T08:00:05Z"));
        let s = parse_schedule("cron", "0 9 * * *").unwrap();
        assert!(!judge("2026-03-29T08:00:00Z").is_overdue(d, Some(&s)));
        assert!(judge("2026-03-29T08:10:00Z").is_overdue(d, Some(&s)));
    }
}
