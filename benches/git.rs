//! The repos section's git work against the original design's way of doing it,
//! in the same run: one repo with 5 linked worktrees at ~1,000 and ~20,000
//! tracked files each.
//!
//! - git2: `sources::git::repo_report` (what the repos section runs).
//! - CLI: per worktree `git status --porcelain`, two `git rev-list --count`,
//!   `git rev-parse --git-dir`, plus the main checkout's HEAD, status and
//!   unpushed count, as subprocesses (what the original Python design ran per worktree).
//!
//! `cargo bench --bench git` (env GIT_BENCH_RUNS, default 15). Prints medians
//! and the ratio git2 / CLI.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@b")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@b")
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build(root: &Path, files: usize) {
    let main = root.join("main");
    std::fs::create_dir_all(&main).unwrap();
    git(root, &["init", "-q", "--bare", "-b", "main", "origin.git"]);
    git(&main, &["init", "-q", "-b", "main"]);
    let per_dir = 200;
    for i in 0..files {
        let d = main.join(format!("src/d{:03}", i / per_dir));
        if i % per_dir == 0 {
            std::fs::create_dir_all(&d).unwrap();
        }
        std::fs::write(d.join(format!("f{i}.py")), format!("x = {i}\n")).unwrap();
    }
    git(&main, &["add", "-A"]);
    git(&main, &["commit", "-q", "-m", "files"]);
    git(&main, &["remote", "add", "origin", "../origin.git"]);
    git(&main, &["push", "-q", "-u", "origin", "main"]);
    std::fs::create_dir_all(root.join("wt")).unwrap();
    for w in 0..5u32 {
        let name = format!("w{w}");
        git(
            &main,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &name,
                &format!("../wt/{name}"),
                "main",
            ],
        );
        let wdir = root.join("wt").join(&name);
        std::fs::write(wdir.join(format!("new{w}.py")), "y = 1\n").unwrap();
        git(&wdir, &["add", "-A"]);
        git(&wdir, &["commit", "-q", "-m", "ahead"]);
        if w.is_multiple_of(2) {
            // Dirty: a modified tracked file.
            std::fs::write(wdir.join("src/d000/f0.py"), "x = 'changed'\n").unwrap();
        }
        // Settle the index's stat cache, as a working pynchy's git would.
        git(&wdir, &["status", "--porcelain"]);
    }
    git(&main, &["status", "--porcelain"]);
}

fn cli_way(root: &Path) -> usize {
    let main = root.join("main");
    let mut n = 0;
    n += git(&main, &["rev-parse", "HEAD"]).len();
    n += git(&main, &["status", "--porcelain"]).len();
    n += git(&main, &["rev-list", "--count", "@{u}..HEAD"]).len();
    for w in 0..5 {
        let wdir = root.join("wt").join(format!("w{w}"));
        let branch = format!("w{w}");
        n += git(&wdir, &["rev-parse", "HEAD"]).len();
        n += git(&wdir, &["status", "--porcelain"]).len();
        n += git(&main, &["rev-list", &format!("main..{branch}"), "--count"]).len();
        n += git(&main, &["rev-list", &format!("{branch}..main"), "--count"]).len();
        n += git(&wdir, &["rev-parse", "--git-dir"]).len();
    }
    n
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs a short smoke run.
    let bench = std::env::args().any(|a| a == "--bench");
    let runs: usize = std::env::var("GIT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 15 } else { 1 })
        .max(1);
    let sizes: &[usize] = if bench { &[1_000, 20_000] } else { &[200] };
    println!("repos section, one repo + 5 worktrees, median of {runs} runs (loopback, no network)");
    for &files in sizes {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), files);
        let main = dir.path().join("main");
        let wt = dir.path().join("wt");
        // Same answers first: never report clean when the tree is dirty.
        let report = pynchy_status::sources::git::repo_report(&main, Some(&wt));
        for w in &report.worktrees {
            let idx: usize = w.name[1..].parse().unwrap();
            assert_eq!(w.status.dirty, Some(idx.is_multiple_of(2)), "{}", w.name);
            assert_eq!(w.status.ahead, Some(1));
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(pynchy_status::sources::git::repo_report(&main, Some(&wt)));
            ours.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(cli_way(dir.path()));
            theirs.push(t.elapsed());
        }
        let (o, c) = (median(ours), median(theirs));
        println!(
            "{files:>6} files/checkout: git2 {:>8.1} ms | CLI subprocesses {:>8.1} ms | ratio {:.2}",
            o.as_secs_f64() * 1e3,
            c.as_secs_f64() * 1e3,
            o.as_secs_f64() / c.as_secs_f64()
        );
    }
}
