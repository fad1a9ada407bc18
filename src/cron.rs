//! pynchy's schedules in croniter's dialect (what pynchy uses): 5 fields, an
//! optional 6th **seconds** field last and a 7th year; the macros `@yearly`
//! `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`; month and
//! day names; `?`; day-of-week 7; `L`; `L5` (last Friday); `#n`; the day
//! fields ORed; `R` (random: valid, but its times cannot be known). croner
//! evaluates them in the scheduler's IANA zone. `interval` is milliseconds;
//! `once` never recurs. The overdue judge (`overdue.rs`) uses it; it
//! knows nothing of being late.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A schedule as pynchy stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Recurrence {
    /// `None` when a field is `R` (random): valid, but no time can be known.
    Cron(Option<Box<Cron>>),
    /// Every so many milliseconds.
    Interval(u64),
    Once,
}

const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Jenkins' `H` in a field (croniter rejects it without a hash id).
fn is_jenkins_hash(field: &str) -> bool {
    field
        .split(',')
        .any(|p| p == "H" || p.starts_with("H/") || p.starts_with("H("))
}

/// A digit followed by `L` (`5L`), which croniter rejects in both day fields.
fn digit_then_l(field: &str) -> bool {
    field
        .as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_digit() && w[1] == b'L')
}

/// croniter's day-of-week `L5` (last Friday) in croner's words (`5#L`).
fn last_weekday(field: &str) -> String {
    field
        .split(',')
        .map(|p| match p.strip_prefix('L') {
            Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => format!("{d}#L"),
            _ => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A field value as a number (a name counts from `first`).
fn value_of(v: &str, names: &[&str], first: u32) -> Option<u32> {
    v.parse().ok().or_else(|| {
        names
            .iter()
            .position(|n| *n == v)
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| i + first)
    })
}

/// croniter's wrapped ranges (`22-2` in hours: 22, 23, 0, 1, 2) as the list
/// croner reads; every other part unchanged.
fn unwrap_ranges(field: &str, (lo, hi): (u32, u32), names: &[&str], first: u32) -> String {
    let part = |p: &str| -> Option<String> {
        let (range, step) = match p.split_once('/') {
            Some((r, s)) => (r, s.parse::<usize>().ok().filter(|s| *s > 0)?),
            None => (p, 1),
        };
        let (a, b) = range.split_once('-')?;
        let (a, b) = (value_of(a, names, first)?, value_of(b, names, first)?);
        if a <= b || a > hi || b < lo {
            return None;
        }
        let values: Vec<String> = (a..=hi)
            .chain(lo..=b)
            .step_by(step)
            .map(|v| v.to_string())
            .collect();
        Some(values.join(","))
    };
    field
        .split(',')
        .map(|p| part(p).unwrap_or_else(|| p.to_string()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A croniter expression as croner reads it (seconds first), `None` when a
/// field is random, or why croniter would reject it.
fn to_croner(value: &str) -> Result<Option<String>, String> {
    if value.starts_with('@') {
        let lower = value.to_ascii_lowercase();
        return match MACROS.iter().find(|(m, _)| *m == lower) {
            Some((_, expr)) => to_croner(expr),
            None => Err(format!("unknown cron macro `{value}`")),
        };
    }
    let upper = value.to_ascii_uppercase();
    let fields: Vec<&str> = upper.split_whitespace().collect();
    if !(5..=7).contains(&fields.len()) {
        return Err(format!(
            "cron expression must have 5 to 7 fields, found {}: `{value}`",
            fields.len()
        ));
    }
    let dom = fields[2];
    let bad_dom = dom.contains('W') || dom.contains("L-") || digit_then_l(dom);
    if bad_dom || digit_then_l(fields[4]) || fields.iter().any(|f| is_jenkins_hash(f)) {
        return Err(format!("cron expression not accepted by pynchy: `{value}`"));
    }
    if fields.iter().any(|f| f.split(',').any(|p| p == "R")) {
        return Ok(None);
    }
    let wrap = |i: usize, bounds, names: &[&str], first| {
        fields
            .get(i)
            .map(|f| unwrap_ranges(f, bounds, names, first))
    };
    let mut out: Vec<String> = Vec::with_capacity(7);
    out.push(wrap(5, (0, 59), &[], 0).unwrap_or_else(|| "0".into()));
    out.extend(wrap(0, (0, 59), &[], 0));
    out.extend(wrap(1, (0, 23), &[], 0));
    out.extend(wrap(2, (1, 31), &[], 0));
    out.extend(wrap(3, (1, 12), &MONTHS, 1));
    out.extend(wrap(4, (0, 6), &DAYS, 0).map(|f| last_weekday(&f)));
    if let Some(year) = fields.get(6) {
        out.push(year.to_string());
    }
    Ok(Some(out.join(" ")))
}

/// Parses a cron expression in croniter's dialect.
pub fn parse_cron(value: &str) -> Result<Option<Cron>, String> {
    let Some(expr) = to_croner(value)? else {
        return Ok(None);
    };
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Optional)
        .build()
        .parse(&expr)
        .map(Some)
        .map_err(|e| format!("invalid cron expression `{value}`: {e}"))
}

/// Whether a parsed cron expression ever fires: `0 0 30 2 *` is valid to
/// croniter but never fires (pynchy fails computing its next run), and a
/// search for its next time runs to croner's year limit (tens of ms). Asked
/// once per expression: [`parse_schedule`] remembers its answer.
fn ever_fires(cron: &Cron) -> bool {
    // From a fixed start, so the answer does not depend on the day; eight
    // years cover every leap day and weekday a pattern can ask for.
    let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    cron.find_next_occurrence(&start, false)
        .is_ok_and(|t| t < start + chrono::Duration::days(8 * 366))
}

/// The most schedules remembered.
const KNOWN_SCHEDULES: usize = 4096;

/// Parses `schedule_type` / `schedule_value`; the error says why pynchy would
/// not run it. Each pair is parsed once and remembered (at most
/// [`KNOWN_SCHEDULES`] pairs; the cache starts again when full): the scheduled
/// sections judge every row every tick, and parsing a cron expression costs
/// more than the rest of a row's judgement.
pub fn parse_schedule(kind: &str, value: &str) -> Result<Recurrence, String> {
    type Known = std::collections::HashMap<(String, String), Result<Recurrence, String>>;
    static KNOWN: std::sync::Mutex<Option<Known>> = std::sync::Mutex::new(None);
    let key = (kind.to_string(), value.to_string());
    if let Some(v) = KNOWN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key))
    {
        return v.clone();
    }
    // Parsed outside the lock: a never-firing cron takes tens of ms.
    let parsed = parse_schedule_once(kind, value);
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    let map = known.get_or_insert_with(Default::default);
    if map.len() >= KNOWN_SCHEDULES {
        map.clear();
    }
    map.insert(key, parsed.clone());
    parsed
}

fn parse_schedule_once(kind: &str, value: &str) -> Result<Recurrence, String> {
    match kind {
        "cron" => match parse_cron(value)? {
            Some(c) if !ever_fires(&c) => Err(format!(
                "cron expression `{value}` never fires (no such date)"
            )),
            c => Ok(Recurrence::Cron(c.map(Box::new))),
        },
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

/// The next time `cron` fires after `after`, in `tz`.
pub fn next_fire(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::stamp::parse_time(s).unwrap()
    }

    #[test]
    fn croniter_dialect() {
        let ok = [
            "*/5 * * * *",
            "0 9 * * Mon-Fri",
            "0 12 1 * 1",
            "0 0 L * *",
            "0 0 * * L5",
            "0 0 * * fri#2",
            "0 0 ? * 7",
            "0 9 * * * 30",
            "0 9 * * * 30 2027",
            "@daily",
            "@MIDNIGHT",
            "@annually",
            "R 9 * * *",
        ];
        for e in ok {
            assert!(parse_cron(e).is_ok(), "{e}: {:?}", parse_cron(e));
        }
        let bad = [
            "0 9 * *",
            "0 25 * * *",
            "0 0 15W * *",
            "0 0 LW * *",
            "0 0 5L * *",
            "0 0 * * 5L",
            "0 0 L-2 * *",
            "H 9 * * *",
            "@reboot",
            "@every 5m",
            "@daily ",
            "0 9 * * Mon-Fry",
        ];
        for e in bad {
            assert!(parse_cron(e).is_err(), "{e} should be rejected");
        }
        assert_eq!(parse_cron("R 9 * * *"), Ok(None));
    }

    #[test]
    fn seconds_come_last_and_day_fields_are_ored() {
        let c = parse_cron("0 9 * * * 30").unwrap().unwrap();
        let next = next_fire(&c, Tz::UTC, t("2026-02-20T08:00:00Z")).unwrap();
        assert_eq!(next, t("2026-02-20T09:00:30Z"));
        // The 1st of the month OR any Monday: 2026-02-02 is a Monday.
        let c = parse_cron("0 12 1 * 1").unwrap().unwrap();
        let next = next_fire(&c, Tz::UTC, t("2026-02-01T13:00:00Z")).unwrap();
        assert_eq!(next, t("2026-02-02T12:00:00Z"));
        // L5: the last Friday of February 2026 is the 27th.
        let c = parse_cron("0 0 * * L5").unwrap().unwrap();
        let next = next_fire(&c, Tz::UTC, t("2026-02-01T00:00:00Z")).unwrap();
        assert_eq!(next, t("2026-02-27T00:00:00Z"));
    }

    #[test]
    fn schedule_errors_say_why() {
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
