//! `GET /status/stream`: Server-Sent Events against the real server.

mod common;

use std::io::BufRead;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const QUIET: &str = "[gateway]\nmode = \"none\"\n[sections.service]\ninterval = \"1h\"\n[sections.deploy]\ninterval = \"1h\"\n\
    [sections.repos]\ninterval = \"1h\"\n[sections.messages]\ninterval = \"1h\"\n[sections.tasks]\ninterval = \"1h\"\n\
    [sections.host_jobs]\ninterval = \"1h\"\n[sections.groups]\ninterval = \"1h\"\n[sections.gateway]\ninterval = \"1h\"\n\
    [sections.channels]\ninterval = \"1h\"\n[sections.queue]\ninterval = \"1h\"\n[server]\nmax_streams = 2\n";

#[test]
fn initial_event_then_one_per_change() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), QUIET, vec![]);
    wait_for(Duration::from_secs(10), "first round", || {
        (get(run.addr, "/readyz").status == 200).then_some(())
    });
    let mut sse = Sse::open(run.addr, &[]);
    assert_eq!(sse.status, 200);
    let first = sse.next();
    assert_eq!(
        first,
        get_json(run.addr, "/status"),
        "the initial event is the current document"
    );
    let r = request(
        run.addr,
        "PUT",
        "/push/channels",
        &[],
        br#"{"slack": {"connected": false}}"#,
    );
    assert_eq!(r.status, 200);
    // The change comes as its transitions, then the document.
    let (event, t) = sse.next_event();
    assert_eq!(event, "transition", "{t}");
    let next = sse.next();
    assert_eq!(
        next["channels"]["channels"]["slack"]["connected"],
        Value::Bool(false)
    );
    let events = get_json(run.addr, "/status/events")["events"].clone();
    let appeared = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reason_appeared" && e["rule"] == "channel_disconnected")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        appeared["reason"],
        json!("channel slack disconnected"),
        "{events:#}"
    );
    let reason = next["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "channel_disconnected")
        .cloned()
        .unwrap();
    assert_eq!(
        reason["since"], appeared["at"],
        "a reason's since is when it appeared"
    );
    assert!(next["reasons"]
        .to_string()
        .contains("channel slack disconnected"));
}

#[test]
fn streams_are_capped_and_freed_on_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), QUIET, vec![]);
    let mut a = Sse::open(run.addr, &[]);
    let mut b = Sse::open(run.addr, &[]);
    a.next();
    b.next();
    let r = get(run.addr, "/status/stream");
    assert_eq!(r.status, 503);
    assert!(r.json()["error"].as_str().unwrap().contains("too many"));
    drop(a);
    // The server notices the closed connection on its next write: trigger one.
    let _ = request(
        run.addr,
        "PUT",
        "/push/channels",
        &[],
        br#"{"slack": {"connected": true}}"#,
    );
    let mut c = wait_for(Duration::from_secs(5), "a freed slot", || {
        let s = Sse::open(run.addr, &[]);
        (s.status == 200).then_some(s)
    });
    c.next();
    b.next();
}

#[test]
fn stream_needs_the_server_token_when_set() {
    // PST_STREAM_TOKEN is "stream-secret" (common::TEST_ENV).
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(
        dir.path(),
        &format!("{QUIET}token_env = \"PST_STREAM_TOKEN\"\n"),
        vec![],
    );
    assert_eq!(Sse::open(run.addr, &[]).status, 401);
    let mut ok = Sse::open(run.addr, &[("Authorization", "Bearer stream-secret")]);
    assert_eq!(ok.status, 200);
    assert!(ok.next()["meta"].is_object());
}

#[test]
fn idle_streams_get_a_keep_alive_comment_every_period() {
    // The default period is 2 s (http::stream::KEEP_ALIVE); a shorter one here.
    const EVERY: Duration = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let run = start_with(dir.path(), QUIET, vec![], |d| d.with_keep_alive(EVERY));
    ready(run.addr);
    let mut sse = Sse::open(run.addr, &[]);
    sse.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    sse.next();
    let start = Instant::now();
    let mut line = String::new();
    // Nothing changes: the nth comment comes about n periods after the event.
    for n in 1..=3 {
        loop {
            line.clear();
            sse.reader.read_line(&mut line).expect("a line within 5 s");
            assert!(
                !line.starts_with("data: "),
                "nothing changed, yet an event came"
            );
            if line.starts_with(": keep-alive") {
                break;
            }
        }
        let waited = start.elapsed();
        let due = EVERY * n;
        assert!(
            waited >= due - Duration::from_millis(50) && waited < due + Duration::from_millis(500),
            "keep-alive {n} after {waited:?}, due after {due:?}"
        );
    }
}
