//! Golden outputs, as node_exporter's end-to-end test keeps them: the demo
//! world's `/status`, `/health` and `/metrics`, with what changes from run to
//! run masked (times, durations, ages, shas), compared with the files in
//! `tests/golden/`. After an intended change, re-bless them and review the diff:
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test --test golden
//! git diff tests/golden/
//! ```

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use pynchy_status::app::Daemon;
use pynchy_status::config::Config;
use serde_json::Value;

fn is_time(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Masks the words of a summary line that differ between runs.
fn mask_words(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let hex8 = w.len() == 8 && w.bytes().all(|b| b.is_ascii_hexdigit());
            let secs = w
                .strip_suffix('s')
                .is_some_and(|n| n.parse::<u64>().is_ok());
            if is_time(w) {
                "<time>"
            } else if hex8 {
                "<sha>"
            } else if secs {
                "<number>s"
            } else {
                w
            }
            .to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Masks what differs between runs, keeping the shape and every other value.
fn mask(v: &mut Value, key: &str) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                mask(v, k);
            }
        }
        // Per-hour counts move with the clock (a message 10 min old is in
        // this hour or the last one): tests/browser.rs checks them against
        // sqlite3.
        Value::Array(_) if key == "inbound" || key == "outbound" => {
            *v = Value::String("<per hour>".into())
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask(v, key)),
        Value::String(s) if is_time(s) => *s = "<time>".into(),
        Value::String(s) if key == "summary" => *s = mask_words(s),
        Value::String(s) if is_sha(s) => *s = "<sha>".into(),
        Value::Number(_) if matches!(key, "duration_ms" | "uptime_seconds" | "pid" | "port") => {
            *v = Value::String("<number>".into())
        }
        _ => {}
    }
}

/// Masks the values of the families that carry times and durations, and
/// sorts each family's samples (the exposition format leaves their order open).
fn mask_metrics(text: &str) -> String {
    let mut out = String::new();
    let mut samples: Vec<String> = Vec::new();
    let flush = |samples: &mut Vec<String>, out: &mut String| {
        samples.sort();
        for s in samples.drain(..) {
            out.push_str(&s);
        }
    };
    for l in text.lines() {
        if l.starts_with('#') {
            flush(&mut samples, &mut out);
            out.push_str(l);
            out.push('\n');
            continue;
        }
        let timed = l.starts_with("pynchy_status_section_duration_seconds{")
            || l.starts_with("pynchy_status_section_last_success_timestamp_seconds{")
            || l.starts_with("pynchy_status_reason_since_timestamp_seconds{")
            || l.starts_with("pynchy_service_uptime_seconds ");
        samples.push(match (timed, l.rsplit_once(' ')) {
            (true, Some((series, _))) => format!("{series} <number>\n"),
            _ => format!("{l}\n"),
        });
    }
    flush(&mut samples, &mut out);
    out
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; bless with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  - {e}\n  + {a}", i + 1))
            .collect();
        panic!(
            "{name} differs from tests/golden/{name} ({} vs {} lines):\n{}\n\
             If the change is intended: UPDATE_GOLDEN=1 cargo test --test golden, then review git diff.",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn demo_world_status_health_and_metrics() {
    test_env();
    let world = pynchy_status::demo::build("127.0.0.1:0").unwrap();
    let mut cfg = Config::load(&world.config_path).unwrap();
    // Docker's answer differs between machines: ask a socket that is not there.
    cfg.gateway.docker_host = "unix:///nonexistent/pynchy-status-golden.sock".into();
    // No systemd bus either: its answer differs between machines.
    cfg.pynchy.systemd_bus = None;
    // The default mode, whatever PYNCHY_STATUS_WATCH says.
    cfg.watch.enabled = true;
    // An unpatched pynchy, as the demo plays it: its stand-in process, no pushes.
    let _pynchy = world
        .start_pynchy(std::path::Path::new(env!("CARGO_BIN_EXE_pynchy-status")))
        .unwrap();
    let run = Daemon::new(cfg)
        .unwrap()
        .spawn(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .unwrap();
    // Every section collected, pynchy seen.
    let mut doc = wait_for(Duration::from_secs(20), "a full snapshot", || {
        let ready = get(run.addr, "/readyz").status == 200;
        let d = get_json(run.addr, "/status");
        // mcp has no Docker here: its error stands for it (and it stays stale).
        let fresh = d["meta"]
            .as_object()
            .is_some_and(|m| m.iter().all(|(n, s)| n == "mcp" || s["stale"] == false));
        let mcp_failed = d["meta"]["mcp"]["error"].is_string();
        let channels = d["channels"]["connected"] == true;
        // The tasks judged again once pynchy was seen up (before that, no
        // row is called overdue): the demo's late task shows.
        let judged = d["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["overdue"] == true));
        (ready && fresh && mcp_failed && channels && judged && d["service"]["status"] == "ok")
            .then_some(d)
    });
    mask(&mut doc, "");
    check(
        "status.json",
        &(serde_json::to_string_pretty(&doc).unwrap() + "\n"),
    );
    let mut health = get_json(run.addr, "/health");
    mask(&mut health, "");
    check(
        "health.json",
        &(serde_json::to_string_pretty(&health).unwrap() + "\n"),
    );
    let metrics = String::from_utf8(get(run.addr, "/metrics").body).unwrap();
    check("metrics.txt", &mask_metrics(&metrics));
}
