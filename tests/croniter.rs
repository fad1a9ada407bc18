//! pynchy's scheduler is croniter 6.0.0: its verdicts are the ground truth for
//! which schedules are valid and when they fire, DST transitions included.
//! `scripts/croniter` installs it in a cached virtualenv; `scripts/test`
//! passes its python in `PYNCHY_TEST_CRONITER`.

mod common;

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use common::*;
use pynchy_status::testing::{next_fire, parse_cron, parse_schedule};
use serde_json::{json, Value};

const EXPRESSIONS: &[&str] = &[
    "*/5 * * * *",
    "0 9 * * *",
    "30 2 * * *",
    "0 9 * * Mon-Fri",
    "0 9 * * mon,wed,fri",
    "0 12 1 * 1",
    "15 10 1-7 * 1",
    "0 0 L * *",
    "0 0 1,L * *",
    "0 18 * * L5",
    "0 8 * * fri#2",
    "0 8 * * 1#1",
    "0 0 ? * 7",
    "0 0 * jan-mar *",
    "0 9 * * * 30",
    "*/10 * * * * 15",
    "0 9 * * * 0 2027",
    "0 22-2 * * *",
    "0 22-4/2 * * *",
    "0 9 * * fri-mon",
    "0 9 1 nov-feb *",
    "0 9 * * 5-1",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    "@DAILY",
    // Valid to croniter, but no such date: it raises computing a next time
    // (so pynchy cannot schedule them); we say "never fires".
    "0 0 30 2 *",
    "0 0 31 4,6 *",
    "0 0 29 2 *",
    // croniter rejects these, and so does pynchy.
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
    "0 9 * * Mon-Fry",
    "61 * * * *",
    "* * * * * * * *",
];

/// Where the next fire times are asked from: plain days and DST changes.
const STARTS: &[(&str, &str)] = &[
    ("UTC", "2026-02-20T08:00:00Z"),
    ("Europe/Berlin", "2026-03-28T12:00:00Z"),
    ("Europe/Berlin", "2026-10-24T12:00:00Z"),
    ("America/Los_Angeles", "2026-03-07T18:00:00Z"),
    ("America/Los_Angeles", "2026-10-31T18:00:00Z"),
    ("Asia/Kolkata", "2026-12-31T20:00:00Z"),
];

const SCRIPT: &str = r#"
import json, sys
from datetime import datetime
from zoneinfo import ZoneInfo
from croniter import croniter
req = json.load(sys.stdin)
out = []
for expr in req["exprs"]:
    entry = {"expr": expr, "valid": bool(croniter.is_valid(expr)), "next": []}
    if entry["valid"]:
        for tz, start in req["starts"]:
            t = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(ZoneInfo(tz))
            try:
                n = croniter(expr, t).get_next(datetime)
                entry["next"].append(n.isoformat())
            except Exception as e:
                entry["next"].append(None)
    out.append(entry)
json.dump(out, sys.stdout)
"#;

fn croniter(python: &str) -> Vec<Value> {
    use std::io::Write;
    let mut child = std::process::Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("croniter's python runs");
    let req = json!({"exprs": EXPRESSIONS, "starts": STARTS});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// True when `tz`'s UTC offset differs between `a` and `b`.
fn dst_between(tz: Tz, a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    let off = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    off(a) != off(b)
}

#[test]
fn schedules_and_fire_times_agree_with_croniter() {
    let Some(python) = std::env::var("PYNCHY_TEST_CRONITER")
        .ok()
        .filter(|p| std::path::Path::new(p).exists())
    else {
        return missing_part("croniter (scripts/croniter; PYNCHY_TEST_CRONITER)");
    };
    let truth = croniter(&python);
    let mut compared = 0;
    for entry in truth {
        let expr = entry["expr"].as_str().unwrap();
        let ours = parse_cron(expr);
        let valid = entry["valid"].as_bool().unwrap();
        assert_eq!(
            ours.is_ok(),
            valid,
            "{expr}: croniter says valid={valid}, we say {ours:?}"
        );
        let Ok(Some(cron)) = ours else { continue };
        // Where croniter cannot compute any next time, the schedule never
        // fires: said as the schedule's error, found at once.
        let nexts = entry["next"].as_array().unwrap();
        let never = nexts.iter().all(Value::is_null);
        let schedule = parse_schedule("cron", expr);
        assert_eq!(
            schedule
                .as_ref()
                .err()
                .is_some_and(|e| e.contains("never fires")),
            never,
            "{expr}: croniter's next times {nexts:?}, ours {:?}",
            schedule.err()
        );
        for ((tz, start), theirs) in STARTS.iter().zip(nexts) {
            let Some(theirs) = theirs.as_str() else {
                continue;
            };
            let tz: Tz = tz.parse().unwrap();
            let start: DateTime<Utc> = start.parse().unwrap();
            let theirs: DateTime<Utc> = DateTime::parse_from_rfc3339(theirs).unwrap().into();
            let ours = next_fire(&cron, tz, start).unwrap_or_else(|| panic!("{expr}: no next"));
            let off = (ours - theirs).num_seconds().abs();
            // croniter is up to an hour off when the next time lies across a
            // DST change from the start, and keeps the old offset for a local
            // time that does not exist (pynchy's own quirk; the overdue rule
            // allows an hour more where it recomputes): allow that, no more.
            let allowed = if dst_between(tz, start, theirs.max(ours)) {
                3600
            } else {
                0
            };
            assert!(
                off <= allowed,
                "{expr} in {tz} from {start}: croniter {theirs}, ours {ours}"
            );
            compared += 1;
        }
    }
    assert!(compared > 100, "only {compared} fire times compared");
}
