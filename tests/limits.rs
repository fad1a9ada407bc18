//! Bounded memory and bounded work against what outside sources answer: an
//! endless body from the LiteLLM proxy, from `[push] pull_url` or from the
//! `/status` that `check --url` reads stops at its limit and is "answer too
//! large"; a proxy listing 100,000 unhealthy endpoints makes one reason and a
//! capped list, and pushes, staleness and SIGTERM stay prompt. The real binary
//! runs each case (its RSS is read from `/proc`); every server is on loopback.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The binary with `config` (after `[pynchy] root = "."`), ready.
fn daemon(dir: &std::path::Path, config: &str) -> (ChildGuard, SocketAddr) {
    let (child, addr) = spawn_serve(dir, &format!("[pynchy]\nroot = \".\"\n{config}"), &[]);
    wait_for(Duration::from_secs(20), "ready", || {
        (get(addr, "/readyz").status == 200).then_some(())
    });
    (child, addr)
}

/// Resident memory of `pid`, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let kib = proc::rss_kib(pid);
    // 0: no memory line, so no process (a zombie killed for its memory).
    assert!(kib > 0, "process {pid} has no resident memory: it died");
    kib / 1024
}

fn litellm_config(url: &str, extra: &str) -> String {
    format!(
        "[gateway]\nmode = \"litellm\"\nurl = \"{url}\"\n\
         docker_host = \"unix:///nonexistent/pynchy-status-limits.sock\"\n{extra}\n\
         [sections.gateway]\ninterval = \"500ms\"\ntimeout = \"5s\"\n"
    )
}

/// The gateway body once its model check failed, which must be for size.
fn too_large_model_check(addr: SocketAddr) -> Value {
    let gw = wait_for(Duration::from_secs(20), "the model check's error", || {
        let g = get_json(addr, "/status/gateway")["gateway"].clone();
        g["models_error"].is_string().then_some(g)
    });
    assert_eq!(
        gw["models_error"],
        json!("gateway answer too large (over 1 MiB)")
    );
    gw
}

#[test]
fn an_endless_gateway_answer_stops_at_its_limit() {
    let url = stand_in(|path| match path {
        "/health" => Answer::Endless,
        _ => Answer::Json(json!({"status": "healthy"}).to_string()),
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = litellm_config(&url, "[limits]\ngateway_body = \"1 MiB\"\n");
    let (child, addr) = daemon(dir.path(), &cfg);
    let gw = too_large_model_check(addr);
    assert_eq!(gw["healthy_models"], Value::Null);
    // Asked again and again: memory stays where it was.
    for _ in 0..5 {
        let r = request(addr, "POST", "/refresh/gateway", &[], b"");
        assert_eq!(r.status, 200);
    }
    let rss = rss_mib(child.id());
    assert!(rss < 200, "RSS {rss} MiB after 6 endless answers");
    let d = get_json(addr, "/status");
    assert!(has_reason(
        &d,
        "model health unknown: gateway answer too large"
    ));
}

#[test]
fn a_declared_oversize_answer_is_refused_before_reading() {
    let big = format!(
        r#"{{"healthy_count":1,"unhealthy_count":0,"unhealthy_endpoints":[],"pad":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let url = stand_in(move |path| match path {
        "/health" => Answer::Json(big.clone()),
        _ => Answer::Json(json!({"status": "healthy"}).to_string()),
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = litellm_config(&url, "[limits]\ngateway_body = \"1 MiB\"\n");
    let (_child, addr) = daemon(dir.path(), &cfg);
    too_large_model_check(addr);
}

#[test]
fn an_endless_pull_answer_stops_at_its_limit() {
    let pulls = Arc::new(AtomicUsize::new(0));
    let counted = pulls.clone();
    let url = stand_in(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Answer::Endless
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("[gateway]\nmode = \"none\"\n[push]\npull_url = \"{url}/state\"\n");
    let (child, addr) = daemon(dir.path(), &cfg);
    // One pull a second, each cut at 1 MiB: wait until the fifth began (four
    // were read to their limit and dropped).
    wait_for(Duration::from_secs(30), "five pulls", || {
        (pulls.load(Ordering::SeqCst) >= 5).then_some(())
    });
    let rss = rss_mib(child.id());
    assert!(rss < 200, "RSS {rss} MiB after 4 endless pulls");
    assert_eq!(get(addr, "/status").status, 200);
}

#[test]
fn check_stops_reading_an_endless_status() {
    let url = stand_in(|_| Answer::Endless);
    let (code, out) = check_command(&url, &[], &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("answer too large"), "{out}");
}

/// A proxy listing `n` unhealthy endpoints, each its own model.
fn many_unhealthy(n: usize) -> String {
    let endpoints: Vec<Value> = (0..n)
        .map(|i| json!({"model": format!("openai/m{i:06}"), "api_base": "http://127.0.0.1:1"}))
        .collect();
    json!({"healthy_endpoints": [], "unhealthy_endpoints": endpoints,
        "healthy_count": 0, "unhealthy_count": n})
    .to_string()
}

#[test]
fn a_hundred_thousand_unhealthy_models_make_one_reason_and_stay_cheap() {
    let health = many_unhealthy(100_000);
    let url = stand_in(move |path| match path {
        "/health" => Answer::Json(health.clone()),
        _ => Answer::Json(json!({"status": "healthy"}).to_string()),
    });
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = daemon(dir.path(), &litellm_config(&url, ""));
    let gw = wait_for(Duration::from_secs(30), "the model check", || {
        let g = get_json(addr, "/status/gateway")["gateway"].clone();
        (g["unhealthy_models"] == json!(100_000)).then_some(g)
    });
    assert_eq!(gw["unhealthy_names"], json!(100_000));
    let listed = gw["unhealthy"].as_array().unwrap();
    assert_eq!(listed.len(), 50);
    assert_eq!(listed[0], json!("openai/m000000"));
    let d = get_json(addr, "/status");
    let gateway: Vec<String> = reasons(&d)
        .into_iter()
        .filter(|r| r.starts_with("gateway:") && !r.contains("Docker"))
        .collect();
    assert_eq!(
        gateway,
        vec![
            "gateway: 100000 models unhealthy: openai/m000000, openai/m000001, openai/m000002 and 99997 more"
        ]
    );
    // Pushes show at once while the gateway keeps collecting (every 500 ms).
    let mut took = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        push(
            addr,
            "queue",
            json!({"active_containers": i, "max_concurrent": 8, "groups_waiting": 0, "per_group": {}}),
        );
        let q = get_json(addr, "/status/queue")["queue"].clone();
        took.push(t.elapsed());
        assert_eq!(q["active_containers"], json!(i));
    }
    took.sort();
    assert!(took[2] < Duration::from_secs(1), "pushes took {took:?}");
    sigterm_exits_within_5s(&mut child);
}

/// SIGTERM, then exit 0 within 5 s.
fn sigterm_exits_within_5s(child: &mut ChildGuard) {
    signal(child.id(), "-TERM");
    let exit = child.wait_within(Duration::from_secs(5));
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn an_endless_docker_answer_stops_at_its_limit() {
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let url = stand_in(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Answer::Endless
    });
    let host = url.replace("http://", "tcp://");
    let proxy = stand_in(|_| Answer::Json(json!({"status": "healthy"}).to_string()));
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[gateway]\nmode = \"litellm\"\nurl = \"{proxy}\"\nmodels_interval = \"off\"\n\
         docker_host = \"{host}\"\n[limits]\ndocker_body = \"1 MiB\"\n\
         [sections.gateway]\ninterval = \"500ms\"\ntimeout = \"5s\"\n"
    );
    let (child, addr) = daemon(dir.path(), &cfg);
    let meta = wait_for(Duration::from_secs(20), "the gateway's error", || {
        let m = get_json(addr, "/status")["meta"]["gateway"].clone();
        m["error"].is_string().then_some(m)
    });
    assert_eq!(meta["error"], json!("Docker answer too large (over 1 MiB)"));
    // Six more endless answers read to their limit and dropped.
    let seen = asked.load(Ordering::SeqCst);
    wait_for(Duration::from_secs(30), "six more Docker answers", || {
        (asked.load(Ordering::SeqCst) >= seen + 6).then_some(())
    });
    let rss = rss_mib(child.id());
    assert!(rss < 200, "RSS {rss} MiB after endless Docker answers");
}

/// Threads of `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_hung_database_is_unreadable_stuck_reads_do_not_pile_up_and_git_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    git_ok(dir.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("README.md"), "pynchy\n").unwrap();
    git_ok(dir.path(), &["add", "README.md"]);
    git_ok(dir.path(), &["commit", "-qm", "first"]);
    // A FIFO as the database: opening it for reading never returns.
    let fifo = dir.path().join("hung.db");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let fast: String = ["deploy", "messages", "tasks", "host_jobs", "groups"]
        .iter()
        .map(|s| format!("[sections.{s}]\ninterval = \"500ms\"\ntimeout = \"1s\"\n"))
        .collect();
    let cfg = format!("[gateway]\nmode = \"none\"\n[watch]\nenabled = false\n{fast}");
    let config = format!("[pynchy]\nroot = \".\"\ndatabase = \"hung.db\"\n{cfg}");
    let (mut child, addr) = spawn_serve(dir.path(), &config, &[]);
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let d = wait_for(
        Duration::from_secs(20),
        "a verdict on the hung database",
        || {
            let d = get_json(addr, "/status");
            let unreadable = d["meta"]["messages"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("did not answer"));
            (unreadable && d["deploy"]["head_sha"].is_string()).then_some(d)
        },
    );
    assert_eq!(d["deploy"]["head_sha"], json!(head));
    let why = d["deploy"]["last_deploy_error"]
        .as_str()
        .unwrap_or_default();
    assert!(why.starts_with("pynchy's database did not answer"), "{why}");
    assert_eq!(d["status"], json!("down"), "{}", d["reasons"]);
    assert!(has_reason(
        &d,
        "messages: database cannot be read: pynchy's database did not answer"
    ));
    // The pushed queue does not wait on the hung database: served, without
    // an error, its groups' activity unknown.
    push(
        addr,
        "queue",
        json!({"active_containers": 2, "max_concurrent": 4, "groups_waiting": 0,
               "per_group": {"a": {"active": true, "is_task": false, "pending_messages": false, "pending_tasks": 0}}}),
    );
    let q = get_json(addr, "/status/queue");
    assert_eq!(q["meta"]["queue"]["error"], Value::Null, "{q}");
    assert_eq!(q["queue"]["active_containers"], json!(2));
    assert_eq!(q["queue"]["per_group"]["a"]["last_message_at"], Value::Null);
    // Ten more seconds of ticks every 500 ms: no thread piles up.
    let before = threads(child.id());
    std::thread::sleep(Duration::from_secs(10));
    let after = threads(child.id());
    assert!(after <= before + 2, "threads {before} -> {after}");
    // Git keeps answering: a new commit shows.
    std::fs::write(dir.path().join("NEW.md"), "new\n").unwrap();
    git_ok(dir.path(), &["add", "NEW.md"]);
    git_ok(dir.path(), &["commit", "-qm", "second"]);
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    wait_for(Duration::from_secs(10), "the new commit", || {
        (get_json(addr, "/status/deploy")["deploy"]["head_sha"] == json!(head)).then_some(())
    });
    // And SIGTERM still ends it, stuck read and all.
    sigterm_exits_within_5s(&mut child);
}
