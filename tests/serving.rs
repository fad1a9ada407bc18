//! The serving core against the real server on port 0: shape, meta, ETag/304,
//! gzip, HEAD, 404/405, a hanging and a panicking collector, config errors.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use pynchy_status::sections::{CollectError, Schedule, Section, Work};
use serde_json::{json, Value};

/// Every section is collected once an hour: after the first round the snapshot
/// holds still (the others fail: no repo, no database, and keep no deadline).
const STILL: &str = "[sections.service]\ninterval = \"1h\"\n\
    [sections.deploy]\ninterval = \"1h\"\n[sections.repos]\ninterval = \"1h\"\n\
    [sections.messages]\ninterval = \"1h\"\n[sections.tasks]\ninterval = \"1h\"\n\
    [sections.host_jobs]\ninterval = \"1h\"\n[sections.groups]\ninterval = \"1h\"\n";

fn still() -> (tempfile::TempDir, pynchy_status::app::Running) {
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), STILL, vec![]);
    // Ready: every section has had its first attempt, so nothing changes now.
    wait_for(Duration::from_secs(10), "first round", || {
        (get(run.addr, "/readyz").status == 200).then_some(())
    });
    (dir, run)
}

#[test]
fn status_has_service_and_meta() {
    let (_dir, run) = still();
    let doc = get_json(run.addr, "/status");
    // Before pynchy's first push.
    assert_eq!(
        doc["service"],
        json!({"status": "unknown", "started_at": null, "uptime_seconds": null})
    );
    let started = Utc::now() - chrono::Duration::seconds(125);
    let push = json!({"status": "ok", "started_at": started.to_rfc3339()}).to_string();
    let r = request(run.addr, "PUT", "/ingest/service", &[], push.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let doc = get_json(run.addr, "/status");
    let svc = &doc["service"];
    assert_eq!(svc["status"], "ok");
    let served: DateTime<Utc> = svc["started_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(served.timestamp(), started.timestamp());
    let up = svc["uptime_seconds"].as_i64().unwrap();
    assert!((125..=127).contains(&up), "{up}");
    let meta = &doc["meta"]["service"];
    let keys: Vec<&str> = meta
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "collected_at",
            "attempted_at",
            "duration_ms",
            "interval_seconds",
            "stale",
            "error"
        ]
    );
    assert_eq!(meta["interval_seconds"], json!(3600.0));
    assert_eq!(meta["stale"], json!(false));
    assert_eq!(meta["error"], Value::Null);
    let collected: DateTime<Utc> = meta["collected_at"].as_str().unwrap().parse().unwrap();
    assert!((Utc::now() - collected).num_seconds() < 5);
    assert!(meta["duration_ms"].as_f64().unwrap() >= 0.0);

    let one = get_json(run.addr, "/status/service");
    assert_eq!(one["service"], doc["service"]);
    assert_eq!(one["meta"]["service"], doc["meta"]["service"]);
    assert_eq!(one.as_object().unwrap().len(), 2);
}

#[test]
fn unknown_section_lists_known_names() {
    let (_dir, run) = still();
    let r = get(run.addr, "/status/nope");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let known = r.json()["known"].clone();
    assert!(
        known.as_array().unwrap().contains(&json!("service")),
        "{known}"
    );
}

#[test]
fn etag_gives_304_and_changes_with_content() {
    let (_dir, run) = still();
    let first = get(run.addr, "/status");
    let etag = first.header("etag").unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong quoted ETag: {etag}"
    );
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    let again = request(run.addr, "GET", "/status", &[("If-None-Match", &etag)], b"");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let other = request(
        run.addr,
        "GET",
        "/status",
        &[("If-None-Match", "\"0000\"")],
        b"",
    );
    assert_eq!(other.status, 200);
    let sec = get(run.addr, "/status/service");
    let sec_tag = sec.header("etag").unwrap().to_string();
    let r = request(
        run.addr,
        "GET",
        "/status/service",
        &[("If-None-Match", &sec_tag)],
        b"",
    );
    assert_eq!(r.status, 304);
}

#[test]
fn gzip_when_accepted_identical_content() {
    let (_dir, run) = still();
    let plain = get(run.addr, "/status");
    let gz = request(
        run.addr,
        "GET",
        "/status",
        &[("Accept-Encoding", "gzip, br")],
        b"",
    );
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    // Each representation has its own strong ETag, and either gives a 304.
    let (plain_tag, gz_tag) = (plain.header("etag").unwrap(), gz.header("etag").unwrap());
    assert_ne!(gz_tag, plain_tag);
    assert_eq!(gz_tag, format!("{}-gz\"", plain_tag.trim_end_matches('"')));
    for tag in [plain_tag, gz_tag] {
        let r = request(
            run.addr,
            "GET",
            "/status",
            &[("Accept-Encoding", "gzip"), ("If-None-Match", tag)],
            b"",
        );
        assert_eq!(r.status, 304, "{tag}");
        assert_eq!(r.header("etag"), Some(gz_tag));
    }
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert_eq!(gunzip(&gz.body), plain.body);
    assert_eq!(plain.header("content-encoding"), None);
    let refused = request(
        run.addr,
        "GET",
        "/status",
        &[("Accept-Encoding", "gzip;q=0")],
        b"",
    );
    assert_eq!(refused.header("content-encoding"), None);
}

#[test]
fn head_has_headers_and_no_body() {
    let (_dir, run) = still();
    let g = get(run.addr, "/status");
    let h = request(run.addr, "HEAD", "/status", &[], b"");
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("etag"), g.header("etag"));
    assert_eq!(
        h.header("content-length").unwrap(),
        g.body.len().to_string()
    );
    // No database here: the rollup is down, and HEAD says so too.
    let h = request(run.addr, "HEAD", "/health", &[], b"");
    assert_eq!(h.status, get(run.addr, "/health").status);
    assert_eq!(h.status, 503);
    assert!(h.body.is_empty());
}

#[test]
fn not_found_and_method_not_allowed_are_json() {
    let (_dir, run) = still();
    let r = get(run.addr, "/no/such/path");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    for path in ["/status", "/status/service", "/health"] {
        let r = request(run.addr, "POST", path, &[], b"{}");
        assert_eq!(r.status, 405, "{path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert!(r.json()["error"].is_string());
    }
}

#[test]
fn health_and_readiness() {
    let (_dir, run) = still();
    let h = get(run.addr, "/health").json();
    assert!(h["status"].is_string(), "{h}");
    for key in [
        "uptime_seconds",
        "head_sha",
        "head_commit",
        "dirty",
        "channels_connected",
    ] {
        assert!(h.get(key).is_some(), "{key} in {h}");
    }
    assert_eq!(get(run.addr, "/livez").status, 200);
    assert_eq!(get(run.addr, "/readyz").status, 200);
}

/// Succeeds once, then every collection hangs: blocking work that ignores cancellation.
struct Hangs {
    calls: Arc<AtomicU64>,
    hang: Duration,
    blocking: bool,
}

impl Extra for Hangs {
    fn name(&self) -> &'static str {
        "hangs"
    }
    fn default_schedule(&self) -> Schedule {
        Schedule {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(150),
            stale_after: Duration::from_millis(800),
        }
    }
}

impl Section for Hangs {
    type Body = Value;
    fn collect(&self) -> Work<Value> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let hang = self.hang;
        if n == 0 {
            return Work::future(async { Ok(json!({"value": "good"})) });
        }
        if self.blocking {
            Work::blocking(move || {
                std::thread::sleep(hang);
                Err(CollectError::new("late"))
            })
        } else {
            Work::future(async move {
                tokio::time::sleep(hang).await;
                Err(CollectError::new("late"))
            })
        }
    }
}

/// Counts up on every collection, every 50 ms.
struct Ticks(AtomicU64);

impl Extra for Ticks {
    fn name(&self) -> &'static str {
        "ticks"
    }
    fn default_schedule(&self) -> Schedule {
        Schedule::every(Duration::from_millis(50), Duration::from_secs(1))
    }
}

impl Section for Ticks {
    type Body = Value;
    fn collect(&self) -> Work<Value> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Work::future(async move { Ok(json!({ "n": n })) })
    }
}

fn ticks(doc: &Value) -> u64 {
    doc["ticks"]["n"].as_u64().unwrap_or(0)
}

#[test]
fn hung_collector_turns_stale_on_time_without_piling_up() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let run = start_in(
        dir.path(),
        STILL,
        vec![
            Arc::new(Hangs {
                calls: calls.clone(),
                hang: Duration::from_secs(3),
                blocking: true,
            }),
            Arc::new(Ticks(AtomicU64::new(0))),
        ],
    );
    let collected = wait_for(Duration::from_secs(5), "first good body", || {
        get_json(run.addr, "/status/hangs")["meta"]["hangs"]["collected_at"]
            .as_str()
            .map(|s| s.parse::<DateTime<Utc>>().unwrap())
    });
    // The timeout is reported while the body is kept.
    let doc = wait_for(Duration::from_secs(3), "timeout error", || {
        let d = get_json(run.addr, "/status");
        d["meta"]["hangs"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out"))
            .then_some(d)
    });
    assert_eq!(doc["hangs"], json!({"value": "good"}));
    let ticks_before = ticks(&doc);
    // Stale flips on time: at stale_after (800 ms) after collection, not much later.
    let flipped_at = wait_for(Duration::from_secs(3), "stale", || {
        let d = get_json(run.addr, "/status");
        d["meta"]["hangs"]["stale"]
            .as_bool()
            .unwrap_or(false)
            .then(Utc::now)
    });
    let after = (flipped_at - collected).num_milliseconds();
    assert!(
        (750..1500).contains(&after),
        "stale after {after} ms, want ~800"
    );
    let doc = get_json(run.addr, "/status");
    assert_eq!(
        doc["hangs"],
        json!({"value": "good"}),
        "last good body kept"
    );
    assert_eq!(doc["meta"]["ticks"]["stale"], json!(false));
    assert!(
        ticks(&doc) > ticks_before + 5,
        "other sections keep updating"
    );
    assert_eq!(doc["meta"]["service"]["error"], Value::Null);
    // Single flight: one good call and one hung call, however many ticks passed.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let err = doc["meta"]["hangs"]["error"].as_str().unwrap().to_string();
    assert_eq!(err, "timed out after 150ms");
}

#[test]
fn hung_async_collector_is_cancelled_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let run = start_in(
        dir.path(),
        STILL,
        vec![Arc::new(Hangs {
            calls: calls.clone(),
            hang: Duration::from_secs(30),
            blocking: false,
        })],
    );
    let start = Instant::now();
    wait_for(Duration::from_secs(5), "several attempts", || {
        (calls.load(Ordering::SeqCst) >= 4).then_some(())
    });
    // Cancelled async work frees the slot: a new attempt each interval.
    assert!(start.elapsed() < Duration::from_secs(3));
    let doc = get_json(run.addr, "/status/hangs");
    let err = doc["meta"]["hangs"]["error"].clone();
    assert!(err.as_str().unwrap().contains("timed out"), "{err}");
}

/// Succeeds once, then panics every time.
struct Panics(AtomicU64);

impl Extra for Panics {
    fn name(&self) -> &'static str {
        "panics"
    }
    fn default_schedule(&self) -> Schedule {
        Schedule::every(Duration::from_millis(50), Duration::from_secs(1))
    }
}

impl Section for Panics {
    type Body = Value;
    fn collect(&self) -> Work<Value> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Work::blocking(move || {
            if n == 0 {
                Ok(json!({"fine": true}))
            } else {
                panic!("collector bug number {n}")
            }
        })
    }
}

#[test]
fn panicking_collector_is_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let panics = Arc::new(Panics(AtomicU64::new(0)));
    let run = start_in(
        dir.path(),
        "[sections.service]\ninterval = \"100ms\"\n",
        vec![panics.clone(), Arc::new(Ticks(AtomicU64::new(0)))],
    );
    let doc = wait_for(Duration::from_secs(5), "a panic reported", || {
        let d = get_json(run.addr, "/status");
        (d["meta"]["panics"]["error"] == "collector panicked").then_some(d)
    });
    assert_eq!(doc["panics"], json!({"fine": true}));
    let attempts = panics.0.load(Ordering::SeqCst);
    let t0 = ticks(&doc);
    let svc0 = doc["meta"]["service"]["collected_at"].clone();
    std::thread::sleep(Duration::from_millis(400));
    let doc = get_json(run.addr, "/status");
    assert!(
        panics.0.load(Ordering::SeqCst) > attempts + 2,
        "the poller survives panics"
    );
    assert!(ticks(&doc) > t0);
    assert_ne!(doc["meta"]["service"]["collected_at"], svc0);
    assert_eq!(doc["meta"]["ticks"]["error"], Value::Null);
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
}

fn serve_with(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, config).unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn config_errors_exit_2_and_name_the_problem() {
    let (code, err) = serve_with("[pynchy]\nroot = \".\"\ncolour = \"blue\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("colour"), "{err}");
    let (code, err) = serve_with("[sections.service]\ninterval = \"soon\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("interval"), "{err}");
    let (code, err) = serve_with("[sections.weather]\ninterval = \"5s\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sections.weather"), "{err}");
    let (code, err) = serve_with("listen = \"nowhere\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("listen"), "{err}");
    let out = bin()
        .args(["serve", "--config", "/nonexistent/pynchy-status.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/pynchy-status.toml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
    ] {
        let out = bin().args(&sub).output().unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}
