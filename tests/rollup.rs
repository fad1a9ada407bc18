//! The rollup, /health codes, /readyz, /metrics (checked by promtool), the
//! `check` command, and detail hiding, against the real server.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use pynchy_status::sections::{Schedule, Section, Work};
use serde_json::{json, Value};

/// The demo's world (repos with a conflict, a database with an overdue task
/// and 2 pending deliveries) and a config for it.
fn world(extra: &str) -> (tempfile::TempDir, String) {
    // Before libgit2 runs in any test of this file: see common::test_env.
    test_env();
    let dir = tempfile::tempdir().unwrap();
    let checkout = pynchy_status::demo::build_git(dir.path()).unwrap();
    pynchy_status::demo::build_db(&checkout.join("data/messages.db")).unwrap();
    let cfg = format!(
        "[pynchy]\nroot = \"pynchy\"\n[[repos]]\nslug = \"me/pynchy\"\npath = \"pynchy\"\nworktrees = \"worktrees\"\n\
         [gateway]\nmode = \"none\"\n{extra}"
    );
    (dir, cfg)
}

fn ready(addr: std::net::SocketAddr) {
    wait_for(Duration::from_secs(10), "first round", || {
        (get(addr, "/readyz").status == 200).then_some(())
    });
}

fn reasons(doc: &Value) -> Vec<String> {
    doc["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r["section"].as_str().unwrap(),
                r["reason"].as_str().unwrap()
            )
        })
        .collect()
}

fn has(doc: &Value, needle: &str) -> bool {
    reasons(doc).iter().any(|r| r.contains(needle))
}

fn push(addr: std::net::SocketAddr, section: &str, body: Value) {
    let r = request(
        addr,
        "PUT",
        &format!("/ingest/{section}"),
        &[],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

fn healthy_service(addr: std::net::SocketAddr) {
    push(
        addr,
        "service",
        json!({"status": "ok", "started_at": Utc::now().to_rfc3339()}),
    );
}

#[test]
fn degraded_rules_give_reasons_and_200() {
    let (dir, cfg) = world("[rollup]\npending_deliveries_max = 1\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    healthy_service(run.addr);
    push(
        run.addr,
        "channels",
        json!({"whatsapp": {"connected": true}, "slack": {"connected": false}}),
    );
    push(
        run.addr,
        "queue",
        json!({"active_containers": 4, "max_concurrent": 4, "groups_waiting": 2, "per_group": {}}),
    );
    let doc = get_json(run.addr, "/status");
    assert_eq!(doc["status"], "degraded", "{:#?}", reasons(&doc));
    for needle in [
        "channels: channel slack disconnected",
        "repos: worktree merge-bot of me/pynchy in conflict",
        "tasks: task task-overdue-sync overdue",
        "tasks: task task-typo: invalid cron expression",
        "messages: 2 pending deliveries (more than 1)",
        "queue: queue at max_concurrent (4) with 2 groups waiting",
    ] {
        assert!(has(&doc, needle), "{needle} not in {:#?}", reasons(&doc));
    }
    assert!(
        !has(&doc, "host job"),
        "the overdue host job is disabled: {:#?}",
        reasons(&doc)
    );
    let h = get(run.addr, "/health");
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "degraded");
}

#[test]
fn down_rules_give_503() {
    let (dir, cfg) = world("[ingest]\nttl = \"1s\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    // Before any push: pynchy's state unknown (degraded).
    let doc = get_json(run.addr, "/status");
    assert!(
        has(&doc, "service: pynchy has not pushed its state yet"),
        "{:#?}",
        reasons(&doc)
    );
    push(
        run.addr,
        "service",
        json!({"status": "shutting_down", "started_at": Utc::now().to_rfc3339()}),
    );
    let doc = get_json(run.addr, "/status");
    assert_eq!(doc["status"], "down");
    assert!(has(&doc, "service: pynchy is shutting down"));
    let h = get(run.addr, "/health");
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["status"], "down");
    // Pushes stop: unreachable once the TTL passes.
    healthy_service(run.addr);
    wait_for(Duration::from_secs(4), "unreachable", || {
        let d = get_json(run.addr, "/status");
        has(&d, "pynchy stopped pushing its state").then_some(())
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
        has(&doc, "messages: database cannot be read"),
        "{:#?}",
        reasons(&doc)
    );
    assert_eq!(get(run.addr, "/health").status, 503);
    drop(run);
    let cfg = format!(
        "{cfg}[rollup]\ndown_http_status = 500\n[rollup.severity]\nservice_unknown = \"ignore\"\n"
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    assert_eq!(get(run.addr, "/health").status, 500);
    assert!(!has(&get_json(run.addr, "/status"), "has not pushed"));
    drop(run);
    let cfg = format!("{cfg}database_unreadable = \"degraded\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    assert_eq!(get_json(run.addr, "/status")["status"], "degraded");
    assert_eq!(get(run.addr, "/health").status, 200);
}

#[test]
fn dead_litellm_container_is_down() {
    let Ok(host) = std::env::var("PYNCHY_TEST_DOCKER_HOST") else {
        return missing_part("a Docker daemon (PYNCHY_TEST_DOCKER_HOST from scripts/dockerd)");
    };
    let docker = |args: &[&str]| {
        Command::new("/usr/bin/docker")
            .arg("-H")
            .arg(&host)
            .args(args)
            .output()
            .map(|o| o.status.success())
    };
    let name = format!("pst-rollup-{}", std::process::id());
    if docker(&["version"]).ok() != Some(true) {
        return missing_part("a Docker daemon answering on PYNCHY_TEST_DOCKER_HOST");
    }
    assert_eq!(
        docker(&[
            "run",
            "--network",
            "none",
            "--name",
            &name,
            "pynchy-status-test/busybox:latest",
            "true"
        ])
        .ok(),
        Some(true)
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[pynchy]\nroot = \".\"\n[gateway]\nmode = \"litellm\"\nurl = \"http://127.0.0.1:9\"\ndocker_host = \"{host}\"\n\
         litellm_container = \"{name}\"\npostgres_container = \"{name}\"\n"
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let doc = get_json(run.addr, "/status");
    let _ = docker(&["rm", "-f", &name]);
    assert_eq!(doc["gateway"]["litellm_container"], "exited");
    assert!(
        has(&doc, "gateway: LiteLLM container is exited"),
        "{:#?}",
        reasons(&doc)
    );
    assert_eq!(doc["status"], "down");
    assert_eq!(get(run.addr, "/health").status, 503);
}

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
fn metrics_pass_promtool_and_carry_the_numbers() {
    let (dir, cfg) = world("");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    push(
        run.addr,
        "channels",
        json!({"whatsapp": {"connected": true}, "slack": {"connected": false}}),
    );
    let r = get(run.addr, "/metrics");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    // Ground truth: sqlite3 for the database numbers, git for the conflict.
    let db = dir.path().join("pynchy/data/messages.db");
    let sql = |q: &str| {
        let out = Command::new("sqlite3")
            .arg("-readonly")
            .arg(&db)
            .arg(q)
            .output();
        out.ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let (Some(inbound), Some(pending)) = (
        sql("SELECT COUNT(*) FROM messages WHERE is_from_me = 0"),
        sql("SELECT COUNT(*) FROM outbound_deliveries WHERE delivered_at IS NULL"),
    ) else {
        return missing_part("the sqlite3 CLI");
    };
    let merge_bot = dir.path().join("worktrees/merge-bot");
    let conflicts = if git(&merge_bot, &["ls-files", "-u"]).is_empty() {
        0
    } else {
        1
    };
    assert_eq!(
        conflicts, 1,
        "the fixture's merge-bot worktree is in conflict"
    );
    let inbound_line = format!("pynchy_messages_inbound {inbound}.0");
    let pending_line = format!("pynchy_messages_pending_deliveries {pending}.0");
    let conflict_line = format!("pynchy_worktrees_in_conflict{{repo=\"me/pynchy\"}} {conflicts}.0");
    for line in [
        "pynchy_channel_connected{channel=\"slack\"} 0.0",
        "pynchy_channel_connected{channel=\"whatsapp\"} 1.0",
        inbound_line.as_str(),
        pending_line.as_str(),
        conflict_line.as_str(),
        "pynchy_tasks_overdue 1.0",
        "pynchy_host_jobs_overdue 0.0",
        "pynchy_repo_dirty{repo=\"me/pynchy\"} 0.0",
        "pynchy_status_rollup 1.0",
        "pynchy_status_section_success{section=\"repos\"} 1.0",
        "pynchy_status_section_stale{section=\"repos\"} 0.0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(text.contains("pynchy_status_section_duration_seconds{section=\"messages\"}"));
    assert!(
        text.contains("pynchy_status_section_last_success_timestamp_seconds{section=\"deploy\"}")
    );
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        return missing_part("promtool (Debian package prometheus)");
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check(url: &str, args: &[&str]) -> (i32, String) {
    run_check(
        Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
            .args(["check", "--url", url])
            .args(args),
    )
}

fn check_with_token(url: &str, token: &str) -> (i32, String) {
    run_check(
        Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
            .args(["check", "--url", url])
            .env("PYNCHY_STATUS_SERVER_TOKEN", token),
    )
}

fn run_check(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_prints_the_table_and_exits_with_the_verdict() {
    // ok: every rule ignored.
    let all_ignored: String = pynchy_status::app::all_rules()
        .iter()
        .map(|r| format!("{} = \"ignore\"\n", r.name))
        .collect();
    let (dir, cfg) = world(&format!("[rollup.severity]\n{all_ignored}"));
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let (code, out) = check(&run.url(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": OK"), "{out}");
    assert!(out.contains("no reasons"), "{out}");
    assert!(
        !out.contains("\u{1b}["),
        "no colour when stdout is not a terminal: {out:?}"
    );
    drop(run);

    // degraded.
    let (dir, cfg) = world("");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    healthy_service(run.addr);
    let (code, out) = check(&run.url(), &[]);
    assert_eq!(code, 1, "{out}");
    for needle in [
        "DEGRADED",
        "repos",
        "1 in conflict",
        "4 total, 1 overdue",
        "worktree merge-bot of me/pynchy in conflict",
    ] {
        assert!(out.contains(needle), "{needle} not in {out}");
    }
    let (code, out) = check(&run.url(), &["--json"]);
    assert_eq!(code, 1);
    let j: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["status"], "degraded");
    assert_eq!(j["sections"]["repos"]["state"], "degraded");
    assert_eq!(j["sections"]["deploy"]["state"], "ok");

    // down.
    push(
        run.addr,
        "service",
        json!({"status": "shutting_down", "started_at": Utc::now().to_rfc3339()}),
    );
    let (code, out) = check(&run.url(), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("DOWN") && out.contains("pynchy is shutting down"),
        "{out}"
    );
    drop(run);

    // unreachable, and not a status document.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, out) = check(&format!("http://{closed}"), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("cannot reach"), "{out}");
    let (dir2, cfg2) = world("");
    let run = start_in(dir2.path(), &cfg2, vec![]);
    let (code, out) = check(&format!("{}/livez", run.url()), &[]);
    assert_eq!(code, 3, "{out}");
    drop(dir);
}

#[test]
fn detail_hiding_with_a_server_token() {
    // PST_SERVER_TOKEN_T is "view-token-1" (common::TEST_ENV).
    let (dir, cfg) = world("[server]\ntoken_env = \"PST_SERVER_TOKEN_T\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let auth = [("Authorization", "Bearer view-token-1")];
    for path in ["/status", "/status/deploy", "/metrics"] {
        let r = get(run.addr, path);
        assert_eq!(r.status, 401, "{path}");
        assert!(r.json()["error"].is_string());
        assert_eq!(
            request(
                run.addr,
                "GET",
                path,
                &[("Authorization", "Bearer nope")],
                b""
            )
            .status,
            401
        );
        assert_eq!(
            request(run.addr, "GET", path, &auth, b"").status,
            200,
            "{path}"
        );
    }
    let public = get(run.addr, "/health").json();
    assert_eq!(public.as_object().unwrap().len(), 1, "{public}");
    assert!(public["status"].is_string());
    let full = request(run.addr, "GET", "/health", &auth, b"").json();
    assert!(full["head_sha"].is_string(), "{full}");
    assert_eq!(get(run.addr, "/livez").status, 200);
    assert_eq!(get(run.addr, "/readyz").status, 200);
    let (code, out) = check_with_token(&run.url(), "view-token-1");
    assert!(code == 1 || code == 2, "{out}");
    drop(run);
    // Token off: everything open.
    let (dir, cfg) = world("");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    assert_eq!(get(run.addr, "/status").status, 200);
    assert!(get(run.addr, "/health").json()["head_sha"].is_string());
}

#[test]
fn an_older_schema_is_degraded_not_down() {
    let (dir, cfg) = world("[rollup.severity]\nservice_unknown = \"ignore\"\n");
    // An older pynchy: no host_jobs table.
    let db = dir.path().join("pynchy/data/messages.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("DROP TABLE host_jobs;")
        .output();
    if out.is_err() {
        return missing_part("the sqlite3 CLI");
    }
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let doc = get_json(run.addr, "/status");
    let r = doc["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["section"] == "host_jobs")
        .cloned()
        .unwrap_or_default();
    assert!(
        r["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no such table: host_jobs"),
        "{r}"
    );
    assert_eq!(r["level"], "degraded");
    assert!(
        !has(&doc, "database cannot be read"),
        "{:#?}",
        reasons(&doc)
    );
    assert_eq!(get(run.addr, "/health").status, 200);
}
