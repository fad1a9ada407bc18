//! The poller against the real server: a hanging collector (blocking and
//! async) turns stale on time without piling up work, a panicking one is
//! isolated, and the other sections keep updating meanwhile.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use pynchy_status::sections::{CollectError, Schedule, Section, Work};
use serde_json::{json, Value};

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
            verify: pynchy_status::sections::VERIFY_INTERVAL,
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
    // Four more attempts of panics seen: at least three began after `attempts`
    // was read (one may have been in flight then); and some of the others.
    let doc = wait_collections(run.addr, &["panics", "ticks", "service"], 4);
    assert!(
        panics.0.load(Ordering::SeqCst) > attempts + 2,
        "the poller survives panics"
    );
    assert!(ticks(&doc) > t0);
    assert_ne!(doc["meta"]["service"]["collected_at"], svc0);
    assert_eq!(doc["meta"]["ticks"]["error"], Value::Null);
}
