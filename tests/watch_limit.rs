//! When the kernel's inotify watch limit is reached, the daemon falls back to
//! reading on its interval for what it could not watch, says so in
//! `meta.<section>.refresh` and `/metrics`, and keeps serving. The limit is
//! lowered for this test alone (its own test binary, so no other test runs
//! meanwhile) and put back by a guard, however the test ends.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const LIMIT: &str = "/proc/sys/fs/inotify/max_user_watches";

struct Restore(String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(LIMIT, &self.0);
    }
}

#[test]
fn at_the_watch_limit_it_polls_and_says_so() {
    let Ok(old) = std::fs::read_to_string(LIMIT) else {
        return missing_part("a Linux inotify limit to lower (/proc/sys/fs/inotify)");
    };
    let (dir, cfg) = demo_world("[sections.repos]\ninterval = \"200ms\"\n");
    if std::fs::write(LIMIT, "1").is_err() {
        return missing_part("a writable /proc/sys/fs/inotify/max_user_watches (root)");
    }
    let restore = Restore(old.trim().to_string());
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    drop(restore);
    let d = get_json(run.addr, "/status");
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
        let d = get_json(run.addr, "/status/repos");
        (d["repos"]["me/pynchy"]["worktrees"]["docs-writer"]["dirty"] == json!(true)).then_some(())
    });
    let m = String::from_utf8(get(run.addr, "/metrics").body).unwrap();
    assert!(
        m.contains("pynchy_status_section_event_driven{section=\"repos\"} 0"),
        "{m}"
    );
}
