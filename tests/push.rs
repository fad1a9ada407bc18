//! The push API (`PUT /push/{section}`, older name `PUT /ingest/{section}`), the TTL, and pull mode, against the
//! real server on port 0.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};

/// All sections quiet (hourly) except the pushed ones, which poll memory each second.
const QUIET: &str = "[sections.deploy]\ninterval = \"1h\"\n[sections.repos]\ninterval = \"1h\"\n\
    [sections.messages]\ninterval = \"1h\"\n[sections.tasks]\ninterval = \"1h\"\n\
    [sections.host_jobs]\ninterval = \"1h\"\n[sections.gateway]\ninterval = \"1h\"\n[gateway]\nmode = \"none\"\n";

fn put(addr: std::net::SocketAddr, section: &str, body: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    request(
        addr,
        "PUT",
        &format!("/push/{section}"),
        &headers,
        body.as_bytes(),
    )
}

const QUEUE: &str = r#"{"active_containers": 1, "max_concurrent": 10, "groups_waiting": 0,
  "per_group": {"admin": {"active": true, "is_task": false, "pending_messages": true, "pending_tasks": 0},
                "code-improver": {"active": false, "is_task": false, "pending_messages": false, "pending_tasks": 1}}}"#;

#[test]
fn a_push_shows_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), QUIET, vec![]);
    wait_for(Duration::from_secs(10), "first round", || {
        (get(run.addr, "/readyz").status == 200).then_some(())
    });
    // Nothing pushed: observed (no pynchy here: unknown, not an error).
    let before = get_json(run.addr, "/status/channels");
    assert_eq!(before["channels"]["source"], "observed");
    assert_eq!(before["channels"]["connected"], Value::Null);
    assert_eq!(before["meta"]["channels"]["error"], Value::Null);
    assert!(before["channels"]["error"]
        .as_str()
        .unwrap()
        .contains("GET /health"));
    let pushed_at = Utc::now();
    let r = put(
        run.addr,
        "channels",
        r#"{"whatsapp": {"connected": true}, "slack": {"connected": false}}"#,
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"accepted": "channels"}));
    let doc = get_json(run.addr, "/status");
    assert_eq!(
        doc["channels"]["channels"],
        json!({"slack": {"connected": false}, "whatsapp": {"connected": true}})
    );
    assert_eq!(doc["channels"]["source"], "pushed");
    let collected: DateTime<Utc> = doc["meta"]["channels"]["collected_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((collected - pushed_at).num_milliseconds().abs() < 1000);
    assert_eq!(doc["meta"]["channels"]["stale"], json!(false));
    assert_eq!(
        get(run.addr, "/health").json()["channels_connected"],
        json!(false)
    );

    assert_eq!(put(run.addr, "queue", QUEUE, None).status, 200);
    let mut q = get_json(run.addr, "/status/queue")["queue"].clone();
    // Served as pushed, each group with its activity (no database here: null)
    // and its containers (no Docker here: none).
    let q_obj = q.as_object_mut().unwrap();
    assert_eq!(q_obj.remove("source"), Some(json!("pushed")));
    assert!(q_obj.remove("docker").is_some());
    assert_eq!(q_obj.remove("overrun_after_seconds"), Some(json!(2100)));
    for g in q["per_group"].as_object_mut().unwrap().values_mut() {
        let g = g.as_object_mut().unwrap();
        assert_eq!(g.remove("last_message_at"), Some(Value::Null));
        assert_eq!(g.remove("last_run_at"), Some(Value::Null));
        assert_eq!(g.remove("containers"), Some(json!([])));
        let idle = !g["active"].as_bool().unwrap()
            && !g["pending_messages"].as_bool().unwrap()
            && g["pending_tasks"] == json!(0);
        assert_eq!(g.remove("idle"), Some(json!(idle)));
    }
    assert_eq!(q, serde_json::from_str::<Value>(QUEUE).unwrap());

    // groups: the pushed live count replaces the database's (here: none).
    assert_eq!(
        put(run.addr, "groups", r#"{"active_sessions": 3}"#, None).status,
        200
    );
}

/// A queue push with `n` active containers.
fn queue_with(n: u64) -> String {
    json!({"active_containers": n, "max_concurrent": 10, "groups_waiting": 0, "per_group": {}})
        .to_string()
}

#[test]
fn a_push_shows_at_once_while_a_slow_observation_runs() {
    // Docker accepts and never answers: every queue collection hangs until
    // its timeout (4.5 s of 5 s), one after another (interval 1 s).
    let dir = tempfile::tempdir().unwrap();
    let sock = silent_socket(dir.path());
    let cfg = format!(
        "{QUIET}docker_host = \"unix://{}\"\n[sections.queue]\ninterval = \"1s\"\ntimeout = \"5s\"\n",
        sock.display()
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    // Each push is in /status when its PUT answers, though the queue's
    // observing collection is still waiting on Docker.
    for n in 1..=4 {
        assert_eq!(put(run.addr, "queue", &queue_with(n), None).status, 200);
        let d = get_json(run.addr, "/status/queue");
        assert_eq!(d["queue"]["source"], "pushed", "{d:#}");
        assert_eq!(d["queue"]["active_containers"], json!(n), "{d:#}");
        // Published from the push, not by a collection that waited on Docker.
        let ms = d["meta"]["queue"]["duration_ms"]
            .as_f64()
            .unwrap_or(f64::MAX);
        assert!(ms < 1000.0, "published by a collection of {ms} ms");
    }
    // The observing collection that ran meanwhile ends (its outcome carries
    // its duration): it publishes the last push, never an older one.
    let d = wait_for(Duration::from_secs(15), "the slow collection's end", || {
        let d = get_json(run.addr, "/status/queue");
        (d["meta"]["queue"]["duration_ms"].as_f64().unwrap_or(0.0) > 1000.0).then_some(d)
    });
    assert_eq!(d["queue"]["source"], "pushed", "{d:#}");
    assert_eq!(d["queue"]["active_containers"], json!(4), "{d:#}");
}

#[test]
fn bad_pushes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), QUIET, vec![]);
    assert_eq!(put(run.addr, "queue", QUEUE, None).status, 200);
    let before = get(run.addr, "/status/queue").body;
    let bad_type = QUEUE.replace(r#""pending_tasks": 1"#, r#""pending_tasks": "one""#);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("queue", "{not json".into(), 400, "invalid body"),
        (
            "queue",
            bad_type,
            400,
            "per_group.code-improver.pending_tasks",
        ),
        (
            "queue",
            QUEUE.replace("\"groups_waiting\": 0,", ""),
            400,
            "groups_waiting",
        ),
        (
            "queue",
            QUEUE.replace(
                "\"max_concurrent\": 10,",
                "\"max_concurrent\": 10, \"colour\": 1,",
            ),
            400,
            "colour",
        ),
        (
            "service",
            r#"{"status": "sleeping", "started_at": "2026-01-01T00:00:00Z"}"#.into(),
            400,
            "status",
        ),
        (
            "service",
            r#"{"status": "ok", "started_at": "yesterday"}"#.into(),
            400,
            "started_at",
        ),
        ("weather", "{}".into(), 404, "unknown section"),
        (
            "queue",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024)),
            413,
            "64 KiB",
        ),
    ];
    for (section, body, code, needle) in cases {
        let r = put(run.addr, section, &body, None);
        assert_eq!(
            r.status,
            code,
            "{section} {needle}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let err = r.json()["error"].as_str().unwrap().to_string();
        assert!(err.contains(needle), "{needle} not in {err}");
        assert_eq!(
            get(run.addr, "/status/queue").body,
            before,
            "queue unchanged after {needle}"
        );
    }
    let r = request(run.addr, "POST", "/push/queue", &[], QUEUE.as_bytes());
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("PUT"));
}

#[test]
fn token_missing_wrong_and_right() {
    let dir = tempfile::tempdir().unwrap();
    // PST_INGEST_TOKEN_A is "s3cret-push-token" (common::TEST_ENV).
    let cfg = format!("{QUIET}[push]\ntoken_env = \"PST_INGEST_TOKEN_A\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let body = r#"{"whatsapp": {"connected": true}}"#;
    let r = put(run.addr, "channels", body, None);
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].is_string());
    assert_eq!(
        put(run.addr, "channels", body, Some("s3cret-push-tokeN")).status,
        403
    );
    assert_eq!(put(run.addr, "channels", body, Some("s3cret")).status, 403);
    assert_eq!(
        get_json(run.addr, "/status/channels")["channels"]["source"],
        "observed"
    );
    assert_eq!(
        put(run.addr, "channels", body, Some("s3cret-push-token")).status,
        200
    );
    assert_eq!(
        get_json(run.addr, "/status/channels")["channels"]["channels"]["whatsapp"]["connected"],
        json!(true)
    );
    let all = String::from_utf8(get(run.addr, "/status").body).unwrap();
    assert!(!all.contains("s3cret"));
}

#[test]
fn ttl_expiry_hands_back_to_observation_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("{QUIET}[push]\nttl = \"1s\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    let started = Utc::now() - chrono::Duration::seconds(60);
    let svc = json!({"status": "ok", "started_at": started.to_rfc3339()}).to_string();
    assert_eq!(put(run.addr, "service", &svc, None).status, 200);
    assert_eq!(
        put(
            run.addr,
            "channels",
            r#"{"slack": {"connected": true}}"#,
            None
        )
        .status,
        200
    );
    let pushed = Instant::now();
    assert_eq!(
        get_json(run.addr, "/status/service")["service"]["status"],
        "ok"
    );
    // Pushes stop: at the TTL, observation takes over (never stale, and a
    // missing push is no reason).
    let observed_after = wait_for(Duration::from_secs(4), "channels observed", || {
        (get_json(run.addr, "/status/channels")["channels"]["source"] == "observed")
            .then(|| pushed.elapsed())
    });
    assert!(
        observed_after >= Duration::from_millis(900)
            && observed_after < Duration::from_millis(1600),
        "observed after {observed_after:?}, ttl 1s"
    );
    let service_after = wait_for(Duration::from_secs(4), "service observed", || {
        (get_json(run.addr, "/status/service")["service"]["source"] == "observed")
            .then(|| pushed.elapsed())
    });
    assert!(
        service_after < Duration::from_millis(2300),
        "{service_after:?}"
    );
    let d = get_json(run.addr, "/status");
    assert_eq!(d["meta"]["channels"]["stale"], json!(false));
    assert!(
        reasons(&d).iter().all(|r| !r.starts_with("channels:")),
        "{:?}",
        reasons(&d)
    );
    // A new push makes it fresh again.
    assert_eq!(put(run.addr, "service", &svc, None).status, 200);
    assert_eq!(
        get_json(run.addr, "/status/service")["service"]["status"],
        "ok"
    );
}

#[test]
fn concurrent_pushers_leave_a_whole_last_written_document() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), QUIET, vec![]);
    let addr = run.addr;
    // The last push the server accepted is necessarily some pusher's final one.
    let finals: Arc<Mutex<Vec<Value>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let c = get_json(addr, "/status/channels")["channels"]["channels"].clone();
                if let Some(m) = c.as_object().filter(|m| !m.is_empty()) {
                    // Every document pushed has one pusher's four channels, all alike.
                    assert_eq!(m.len(), 4, "torn document: {c}");
                    let owners: std::collections::BTreeSet<&str> =
                        m.keys().map(|k| k.split('/').next().unwrap()).collect();
                    assert_eq!(owners.len(), 1, "mixed document: {c}");
                    let states: std::collections::BTreeSet<String> =
                        m.values().map(|v| v.to_string()).collect();
                    assert_eq!(states.len(), 1, "mixed document: {c}");
                    seen += 1;
                }
            }
            seen
        })
    };
    let pushers: Vec<_> = (0..8)
        .map(|p| {
            let finals = finals.clone();
            std::thread::spawn(move || {
                for i in 0..1000 {
                    let up = i % 2 == 0;
                    let body = json!({
                        format!("p{p}/whatsapp"): {"connected": up},
                        format!("p{p}/slack"): {"connected": up},
                        format!("p{p}/signal"): {"connected": up},
                        format!("p{p}/email"): {"connected": up},
                    })
                    .to_string();
                    let r = put(addr, "channels", &body, None);
                    assert_eq!(r.status, 200);
                    if i == 999 {
                        finals
                            .lock()
                            .unwrap()
                            .push(serde_json::from_str(&body).unwrap());
                    }
                }
            })
        })
        .collect();
    for p in pushers {
        p.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.join().unwrap();
    assert!(seen > 10, "the reader saw {seen} documents");
    let now = get_json(addr, "/status/channels")["channels"]["channels"].clone();
    assert!(
        finals.lock().unwrap().contains(&now),
        "{now} is no pusher's last push"
    );
}

#[test]
fn pull_mode_reads_a_local_document() {
    let doc = Arc::new(Mutex::new(
        json!({"channels": {"whatsapp": {"connected": true}}, "queue": serde_json::from_str::<Value>(QUEUE).unwrap()})
            .to_string(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/pynchy-state", listener.local_addr().unwrap());
    let served = doc.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = served.lock().unwrap().clone();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("{QUIET}[push]\npull_url = \"{url}\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    wait_for(Duration::from_secs(5), "pulled channels", || {
        (get_json(run.addr, "/status/channels")["channels"]["channels"]["whatsapp"]["connected"]
            == json!(true))
        .then_some(())
    });
    // Each pulled section is published as soon as it is collected (the
    // queue reads its groups' activity, so it may land a moment later).
    wait_for(Duration::from_secs(5), "pulled queue", || {
        let q = get_json(run.addr, "/status/queue")["queue"].clone();
        (q["source"] == "pushed" && q["groups_waiting"] == json!(0)).then_some(())
    });
    *doc.lock().unwrap() = json!({"channels": {"whatsapp": {"connected": false}}}).to_string();
    wait_for(Duration::from_secs(5), "pulled change", || {
        (get_json(run.addr, "/status/channels")["channels"]["channels"]["whatsapp"]["connected"]
            == json!(false))
        .then_some(())
    });
}

#[test]
fn the_older_names_still_work() {
    // `[ingest]` is `[push]`'s older name; `PUT /ingest/{section}` the route's.
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("{QUIET}[ingest]\nttl = \"7s\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    let r = request(
        run.addr,
        "PUT",
        "/ingest/channels",
        &[],
        br#"{"slack": {"connected": true}}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        get_json(run.addr, "/status/channels")["channels"]["source"],
        "pushed"
    );
    let r = request(run.addr, "POST", "/ingest/queue", &[], QUEUE.as_bytes());
    assert_eq!(r.status, 405);
}
