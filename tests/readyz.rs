//! Readiness and the `/health` status code against the real server: `/readyz`
//! waits for the first round, `/livez` never does, `/health` answers 200 when
//! ok or degraded and 503 (or `down_http_status`) when down.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use pynchy_status::sections::{Schedule, Section, Work};
use serde_json::{json, Value};

/// Its first collection takes a while: /readyz waits for it.
struct Slow(AtomicU64);

impl Extra for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    fn default_schedule(&self) -> Schedule {
        Schedule::every(Duration::from_secs(3600), Duration::from_secs(5))
    }
}

impl Section for Slow {
    type Body = Value;
    fn collect(&self) -> Work<Value> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Work::blocking(|| {
            // The slowness under test, not a wait.
            std::thread::sleep(Duration::from_millis(1500));
            Ok(json!({}))
        })
    }
}

#[test]
fn readyz_waits_for_the_first_round() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(
        dir.path(),
        "[gateway]\nmode = \"none\"\n",
        vec![Arc::new(Slow(AtomicU64::new(0)))],
    );
    let r = get(run.addr, "/readyz");
    assert_eq!(r.status, 503);
    assert_eq!(r.json(), json!({"ready": false}));
    assert_eq!(get(run.addr, "/livez").status, 200);
    ready(run.addr);
    assert_eq!(get(run.addr, "/readyz").json(), json!({"ready": true}));
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

#[test]
fn down_rules_give_503() {
    let (dir, cfg) = demo_world("[push]\nttl = \"1s\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    // Nothing listens on pynchy's port: down, whatever was pushed or not.
    let doc = get_json(run.addr, "/status");
    assert!(
        has_reason(
            &doc,
            "service: pynchy is not running: nothing listens on port 9"
        ),
        "{:#?}",
        reasons(&doc)
    );
    assert_eq!(get(run.addr, "/health").status, 503);
    push(
        run.addr,
        "service",
        json!({"status": "shutting_down", "started_at": Utc::now().to_rfc3339()}),
    );
    let doc = get_json(run.addr, "/status");
    assert_eq!(doc["status"], "down");
    assert!(has_reason(&doc, "service: pynchy is shutting down"));
    let h = get(run.addr, "/health");
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["status"], "down");
    // A healthy push wins while fresh; when pushes stop, observation again.
    healthy_service(run.addr);
    assert_eq!(
        get_json(run.addr, "/status/service")["service"]["status"],
        "ok"
    );
    wait_for(Duration::from_secs(4), "observed again", || {
        let d = get_json(run.addr, "/status");
        has_reason(&d, "pynchy is not running").then_some(())
    });
    assert_eq!(get(run.addr, "/health").status, 503);
}

#[test]
fn unreadable_database_is_down_and_severity_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[pynchy]\nroot = \".\"\ndatabase = \"missing.db\"\n[gateway]\nmode = \"none\"\n";
    let run = start_in(dir.path(), cfg, vec![]);
    ready(run.addr);
    let doc = get_json(run.addr, "/status");
    assert_eq!(doc["status"], "down");
    assert!(
        has_reason(&doc, "messages: database cannot be read"),
        "{:#?}",
        reasons(&doc)
    );
    assert_eq!(get(run.addr, "/health").status, 503);
    drop(run);
    let cfg = format!(
        "{cfg}[rollup]\ndown_http_status = 500\n[rollup.severity]\nservice_down = \"ignore\"\n"
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    assert_eq!(get(run.addr, "/health").status, 500);
    assert!(!has_reason(
        &get_json(run.addr, "/status"),
        "is not running"
    ));
    drop(run);
    let cfg = format!("{cfg}database_unreadable = \"degraded\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    assert_eq!(get_json(run.addr, "/status")["status"], "degraded");
    assert_eq!(get(run.addr, "/health").status, 200);
}
