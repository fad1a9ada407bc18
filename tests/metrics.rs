//! `GET /metrics` on the demo world: the numbers match sqlite3 and git, and
//! promtool accepts the exposition.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn metrics_pass_promtool_and_carry_the_numbers() {
    let (dir, cfg) = demo_world("");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    healthy_service(run.addr);
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
    let merge_bot = dir
        .path()
        .join("pynchy")
        .join(pynchy_status::demo::WORKTREES)
        .join("merge-bot");
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
        "pynchy_service_up 1.0",
        "pynchy_status_section_success{section=\"repos\"} 1.0",
        "pynchy_status_section_stale{section=\"repos\"} 0.0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(text.contains("pynchy_status_section_duration_seconds{section=\"messages\"}"));
    assert!(
        text.contains("pynchy_status_section_last_success_timestamp_seconds{section=\"deploy\"}")
    );
    // Killed by the guard if an assertion fails while it runs.
    let Ok(mut promtool) = ChildGuard::spawn(
        Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    ) else {
        return missing_part("promtool (Debian package prometheus)");
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.output_within(Duration::from_secs(30));
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
