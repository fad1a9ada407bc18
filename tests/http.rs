//! The HTTP surface against the real server on port 0: the document's shape
//! and meta, ETag/304, gzip, HEAD, and JSON 404/405 answers.

mod common;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};

#[test]
fn status_has_service_and_meta() {
    let (_dir, run) = still();
    let doc = get_json(run.addr, "/status");
    // Nothing listens on pynchy's port (9 here), nothing pushed: down, observed.
    let s = &doc["service"];
    assert_eq!(s["status"], "down");
    assert_eq!(s["source"], "observed");
    assert_eq!(s["process"], "none");
    assert_eq!(s["port"], 9);
    assert_eq!(s["started_at"], Value::Null);
    assert_eq!(s["uptime_seconds"], Value::Null);
    let started = Utc::now() - chrono::Duration::seconds(125);
    let push = json!({"status": "ok", "started_at": started.to_rfc3339()}).to_string();
    let r = request(run.addr, "PUT", "/push/service", &[], push.as_bytes());
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
            "checked_at",
            "refresh",
            "attempted_at",
            "duration_ms",
            "interval_seconds",
            "stale",
            "error",
            "summary",
            "state",
            "state_since"
        ]
    );
    assert_eq!(meta["state"], json!("ok"));
    assert_eq!(meta["state_since"], doc["meta"]["service"]["state_since"]);
    assert!(meta["state_since"].is_string());
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
