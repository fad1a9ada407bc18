//! The `check` command against the real server: the table on stdout and the
//! verdict as the exit code (0 ok, 1 degraded, 2 down, 3 unreachable or not a
//! status document).

mod common;

use chrono::Utc;
use common::*;
use serde_json::{json, Value};

fn check(url: &str, args: &[&str]) -> (i32, String) {
    check_command(url, args, &[])
}

#[test]
fn check_prints_the_table_and_exits_with_the_verdict() {
    // ok: every rule ignored.
    let all_ignored: String = pynchy_status::app::all_rules()
        .iter()
        .map(|r| format!("{} = \"ignore\"\n", r.name))
        .collect();
    let (dir, cfg) = demo_world(&format!("[rollup.severity]\n{all_ignored}"));
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
    let (dir, cfg) = demo_world("");
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
    let (dir2, cfg2) = demo_world("");
    let run = start_in(dir2.path(), &cfg2, vec![]);
    let (code, out) = check(&format!("{}/livez", run.url()), &[]);
    assert_eq!(code, 3, "{out}");
    drop(dir);
}
