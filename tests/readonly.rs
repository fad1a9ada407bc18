//! The read-only guarantee: 30 s at 100 ms intervals under load leave the
//! database file and every file under the watched repo's `.git` (worktree git
//! dirs included) byte for byte as they were, and no file appears.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn snapshot(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut sums = BTreeMap::new();
    checksums(&root.join("pynchy/.git"), &mut sums);
    checksums(&root.join("pynchy/data"), &mut sums);
    for wt in ["code-improver", "docs-writer", "merge-bot"] {
        let f = root
            .join("pynchy")
            .join(pynchy_status::demo::WORKTREES)
            .join(wt)
            .join(".git");
        sums.insert(
            f.clone(),
            xxhash_rust::xxh3::xxh3_64(&std::fs::read(&f).unwrap()),
        );
    }
    sums
}

/// The sections that read the repo and the database, each every 100 ms here.
const SECTIONS: [&str; 6] = [
    "deploy",
    "repos",
    "messages",
    "tasks",
    "host_jobs",
    "groups",
];

#[test]
fn thirty_seconds_under_load_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let checkout = pynchy_status::demo::build_git(root).unwrap();
    pynchy_status::demo::build_db(&checkout.join("data/messages.db")).unwrap();
    let fast: String = SECTIONS
        .iter()
        // Events on, and a full re-read every 100 ms: every read path runs.
        .map(|n| format!("[sections.{n}]\ninterval = \"100ms\"\nverify_interval = \"100ms\"\n"))
        .collect();
    let cfg = format!(
        "[pynchy]\nroot = \"pynchy\"\n[[repos]]\nslug = \"me/pynchy\"\npath = \"pynchy\"\nworktrees = \"pynchy/{}\"\n\
         [gateway]\nmode = \"none\"\n{fast}",
        pynchy_status::demo::WORKTREES
    );
    let before = snapshot(root);
    let run = start_in(root, &cfg, vec![]);
    let addr = run.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = get(addr, "/status");
                    assert_eq!(r.status, 200);
                    served.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    let mut collections = 0;
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        // A look after every five further reads of each section (about 500 ms).
        let d = wait_collections(addr, &SECTIONS, 5);
        for s in SECTIONS {
            assert_eq!(d["meta"][s]["error"], serde_json::Value::Null, "{s}");
        }
        let now = d["meta"]["repos"]["collected_at"]
            .as_str()
            .unwrap()
            .to_string();
        if now != last {
            collections += 1;
            last = now;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    drop(run);
    assert!(
        collections > 30,
        "the pollers ran: {collections} distinct repos collections seen"
    );
    assert!(
        served.load(Ordering::Relaxed) > 1000,
        "under load: {} requests",
        served.load(Ordering::Relaxed)
    );
    let after = snapshot(root);
    let appeared: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(appeared.is_empty(), "files appeared: {appeared:?}");
    for (path, sum) in &before {
        assert_eq!(after.get(path), Some(sum), "{} changed", path.display());
    }
}
