//! When the kernel's inotify watch limit is reached, at start or later, the
//! daemon falls back to reading on its interval for what it could not watch,
//! says so in `meta.<section>.refresh` and `/metrics` (and the log, once),
//! keeps serving, and goes back to events once watches are free again. The
//! limit is lowered for the daemon alone: it runs in a user namespace of its
//! own (`unshare -U -r`), whose `user.max_inotify_watches` it sets; the
//! machine's setting is never touched.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn at_the_watch_limit_it_polls_and_says_so() {
    let (dir, cfg) =
        demo_world("[sections.repos]\ninterval = \"200ms\"\n[watch]\nenabled = true\n");
    let Some((_child, addr)) = serve_with_watch_limit(dir.path(), &cfg, 1) else {
        return;
    };
    let d = get_json(addr, "/status");
    assert_eq!(
        d["meta"]["repos"]["refresh"],
        json!("poll"),
        "{:#}",
        d["meta"]
    );
    // Still serving, and still reading: an edit shows at the next interval.
    let wt = dir
        .path()
        .join("pynchy")
        .join(pynchy_status::demo::WORKTREES)
        .join("docs-writer");
    std::fs::write(wt.join("README.md"), "# edited\n").unwrap();
    wait_for(Duration::from_secs(5), "the edit, by polling", || {
        let d = get_json(addr, "/status/repos");
        (d["repos"]["me/pynchy"]["worktrees"]["docs-writer"]["dirty"] == json!(true)).then_some(())
    });
    let m = String::from_utf8(get(addr, "/metrics").body).unwrap();
    assert!(
        m.contains("pynchy_status_section_event_driven{section=\"repos\"} 0"),
        "{m}"
    );
}

/// The daemon on `dir`'s `c.toml` inside a user namespace of its own whose
/// inotify watch limit is `limit` (the machine's setting is untouched), its
/// log in `dir/log`. None (said loudly) without `unshare`.
fn serve_with_watch_limit(
    dir: &std::path::Path,
    config: &str,
    limit: usize,
) -> Option<(ChildGuard, std::net::SocketAddr)> {
    let probe = std::process::Command::new("unshare")
        .args(["-U", "-r", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        missing_part("unshare -U -r (a user namespace of its own)");
        return None;
    }
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    std::fs::write(dir.join("c.toml"), format!("listen = \"{addr}\"\n{config}")).unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let script = format!(
        "echo {limit} > /proc/sys/user/max_inotify_watches && exec \"$0\" serve --config c.toml"
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "-U",
        "-r",
        "sh",
        "-c",
        &script,
        env!("CARGO_BIN_EXE_pynchy-status"),
    ])
    .current_dir(dir)
    .env("RUST_LOG", "info")
    .stdout(std::process::Stdio::null())
    .stderr(log);
    let child = ChildGuard::spawn(&mut cmd).unwrap();
    wait_for(Duration::from_secs(20), "the daemon", || {
        std::net::TcpStream::connect(addr).ok()?;
        (get(addr, "/readyz").status == 200).then_some(())
    });
    Some((child, addr))
}

#[test]
fn the_limit_reached_mid_run_polls_that_repo_once_logged_then_events_again() {
    let (dir, cfg) =
        demo_world("[sections.repos]\ninterval = \"500ms\"\n[watch]\nenabled = true\n");
    // The folders watched at start (the checkout, with its worktrees and
    // .git), as find counts them, and room for a few more.
    let root = dir.path().join("pynchy");
    let out = std::process::Command::new("find")
        .arg(&root)
        .args(["-type", "d"])
        .output()
        .unwrap();
    let folders = String::from_utf8_lossy(&out.stdout).lines().count();
    let Some((child, addr)) = serve_with_watch_limit(dir.path(), &cfg, folders + 40) else {
        return;
    };
    let refresh = || get_json(addr, "/status")["meta"]["repos"]["refresh"].clone();
    wait_for(Duration::from_secs(10), "events", || {
        (refresh() == json!("event")).then_some(())
    });
    // A clean worktree (git says so) gets 300 new folders: past the limit.
    let wts = root.join(pynchy_status::demo::WORKTREES);
    let name = ["docs-writer", "code-improver", "merge-bot"]
        .into_iter()
        .find(|n| git(&wts.join(n), &["status", "--porcelain"]).is_empty())
        .expect("a clean worktree");
    let big = wts.join(name).join("big");
    for i in 0..300 {
        std::fs::create_dir_all(big.join(format!("d{i}"))).unwrap();
    }
    wait_for(Duration::from_secs(10), "polling", || {
        (refresh() == json!("poll")).then_some(())
    });
    // A file in a folder left unwatched: seen by polling.
    std::fs::write(big.join("d299").join("notes.md"), "new\n").unwrap();
    assert!(!git(&wts.join(name), &["status", "--porcelain"]).is_empty());
    wait_for(Duration::from_secs(10), "the edit, by polling", || {
        let d = get_json(addr, "/status/repos");
        (d["repos"]["me/pynchy"]["worktrees"][name]["dirty"] == json!(true)).then_some(())
    });
    // The folders gone, the watches are free again: events, and it says so.
    std::fs::remove_dir_all(&big).unwrap();
    wait_for(Duration::from_secs(10), "events again", || {
        (refresh() == json!("event")).then_some(())
    });
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let warned = log.matches("watch limit is reached").count();
    assert_eq!(warned, 1, "{log}");
    assert!(log.contains("in full again"), "{log}");
    drop(child);
}
