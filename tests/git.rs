//! deploy and repos against real repos built with the git CLI; every expected
//! value comes from the git CLI in the same test.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn commit(dir: &Path, file: &str, text: &str, msg: &str) {
    std::fs::write(dir.join(file), text).unwrap();
    git_ok(dir, &["add", "-A"]);
    git_ok(dir, &["commit", "-q", "-m", msg]);
}

/// What the git CLI says about one checkout.
#[derive(Debug)]
struct Truth {
    sha: Value,
    dirty: Value,
    ahead: Value,
    behind: Value,
    conflict: Value,
    branch: Value,
}

fn truth(dir: &Path) -> Truth {
    let sha = git(dir, &["rev-parse", "HEAD"]);
    let porcelain = git(dir, &["status", "--porcelain"]);
    let counts = git(dir, &["rev-list", "--left-right", "--count", "main...HEAD"]);
    let (behind, ahead) = counts.split_once('\t').unwrap();
    let gitdir = PathBuf::from(git(dir, &["rev-parse", "--absolute-git-dir"]));
    let in_progress = [
        "MERGE_HEAD",
        "rebase-merge",
        "rebase-apply",
        "CHERRY_PICK_HEAD",
        "REVERT_HEAD",
    ]
    .iter()
    .any(|f| gitdir.join(f).exists());
    let unmerged = !git(dir, &["ls-files", "-u"]).is_empty();
    let branch = git(dir, &["symbolic-ref", "--short", "-q", "HEAD"]);
    Truth {
        sha: json!(sha),
        dirty: json!(!porcelain.is_empty()),
        ahead: json!(ahead.parse::<u64>().unwrap()),
        behind: json!(behind.parse::<u64>().unwrap()),
        conflict: json!(in_progress || unmerged),
        branch: if branch.is_empty() {
            Value::Null
        } else {
            json!(branch)
        },
    }
}

struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn main(&self) -> PathBuf {
        self.dir.path().join("main")
    }
    fn wt(&self, name: &str) -> PathBuf {
        self.dir.path().join("wt").join(name)
    }
}

/// A bare origin, a main checkout with one unpushed commit and an ignored file,
/// and worktrees in every state the issue lists.
fn build() -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git_ok(root, &["init", "-q", "--bare", "-b", "main", "origin.git"]);
    let main = root.join("main");
    std::fs::create_dir(&main).unwrap();
    git_ok(&main, &["init", "-q", "-b", "main"]);
    commit(&main, ".gitignore", "*.log\n", "ignore logs");
    commit(&main, "app.py", "a = 1\n", "first");
    commit(&main, "app.py", "a = 2\n", "second");
    git_ok(&main, &["remote", "add", "origin", "../origin.git"]);
    git_ok(&main, &["push", "-q", "-u", "origin", "main"]);
    commit(&main, "other.py", "b = 1\n", "third: unpushed");
    std::fs::write(main.join("debug.log"), "ignored\n").unwrap();
    let wt = |args: &[&str]| {
        let mut a = vec!["worktree", "add", "-q"];
        a.extend_from_slice(args);
        git_ok(&main, &a);
    };
    std::fs::create_dir(root.join("wt")).unwrap();
    // Two ahead.
    wt(&["-b", "w-ahead", "../wt/ahead", "main"]);
    commit(&root.join("wt/ahead"), "n1.py", "1\n", "ahead 1");
    commit(&root.join("wt/ahead"), "n2.py", "2\n", "ahead 2");
    // Two behind.
    wt(&["-b", "w-behind", "../wt/behind", "main~2"]);
    // A merge stopped on a conflict.
    wt(&["-b", "w-merge", "../wt/merge", "main~2"]);
    commit(&root.join("wt/merge"), "app.py", "a = 'merge'\n", "diverge");
    let _ = git(&root.join("wt/merge"), &["merge", "main"]);
    // A rebase stopped on a conflict.
    wt(&["-b", "w-rebase", "../wt/rebase", "main~2"]);
    commit(
        &root.join("wt/rebase"),
        "app.py",
        "a = 'rebase'\n",
        "diverge",
    );
    let _ = git(&root.join("wt/rebase"), &["rebase", "main"]);
    // Detached HEAD.
    wt(&["--detach", "../wt/detached", "main~1"]);
    // Untracked file: dirty.
    wt(&["-b", "w-untracked", "../wt/untracked", "main"]);
    std::fs::write(root.join("wt/untracked/new.txt"), "x").unwrap();
    // Staged change: dirty.
    wt(&["-b", "w-staged", "../wt/staged", "main"]);
    std::fs::write(root.join("wt/staged/app.py"), "a = 3\n").unwrap();
    git_ok(&root.join("wt/staged"), &["add", "app.py"]);
    // Only an ignored file: clean.
    wt(&["-b", "w-ignored", "../wt/ignored", "main"]);
    std::fs::write(root.join("wt/ignored/trace.log"), "x").unwrap();
    // A crashed git left index.lock behind.
    wt(&["-b", "w-locked", "../wt/locked", "main"]);
    // Not a worktree of this repo: another repo, and a plain folder.
    let stranger = root.join("wt/stranger");
    std::fs::create_dir(&stranger).unwrap();
    git_ok(&stranger, &["init", "-q", "-b", "main"]);
    commit(&stranger, "s.txt", "s", "stranger");
    std::fs::create_dir(root.join("wt/plain")).unwrap();
    World { dir }
}

fn lock(world: &World) {
    let gitdir = PathBuf::from(git(
        &world.wt("locked"),
        &["rev-parse", "--absolute-git-dir"],
    ));
    std::fs::write(gitdir.join("index.lock"), "").unwrap();
}

fn config(world: &World, extra: &str) -> String {
    format!(
        "[pynchy]\nroot = \"{m}\"\ndatabase = \"{d}\"\n[[repos]]\nslug = \"me/app\"\npath = \"{m}\"\nworktrees = \"{w}\"\n[[repos]]\nslug = \"me/gone\"\npath = \"{gone}\"\n[sections.service]\ninterval = \"1h\"\n{extra}",
        m = world.main().display(),
        d = world.dir.path().join("no.db").display(),
        w = world.dir.path().join("wt").display(),
        gone = world.dir.path().join("gone").display(),
    )
}

fn collected(addr: std::net::SocketAddr, section: &str) -> Value {
    wait_for(Duration::from_secs(10), section, || {
        let d = get_json(addr, &format!("/status/{section}"));
        d["meta"][section]["collected_at"].is_string().then_some(d)
    })
}

#[test]
fn repos_match_the_git_cli() {
    let world = build();
    lock(&world);
    // Ground truth first: the CLI may refresh the index, which we then no longer touch.
    let names = [
        "ahead",
        "behind",
        "merge",
        "rebase",
        "detached",
        "untracked",
        "staged",
        "ignored",
        "locked",
    ];
    let truths: BTreeMap<&str, Truth> = names.iter().map(|n| (*n, truth(&world.wt(n)))).collect();
    let main_sha = git(&world.main(), &["rev-parse", "HEAD"]);
    let unpushed: u64 = git(&world.main(), &["rev-list", "--count", "@{u}..HEAD"])
        .parse()
        .unwrap();
    let main_dirty = !git(&world.main(), &["status", "--porcelain"]).is_empty();

    let run = start_in(world.dir.path(), &config(&world, ""), vec![]);
    let doc = collected(run.addr, "repos");
    let repo = &doc["repos"]["me/app"];
    assert_eq!(repo["head_sha"], json!(main_sha));
    assert_eq!(repo["unpushed_commits"], json!(unpushed));
    assert_eq!(unpushed, 1);
    assert_eq!(repo["dirty"], json!(main_dirty));
    assert_eq!(
        repo["dirty"],
        json!(false),
        "an ignored file never makes a tree dirty"
    );
    assert_eq!(repo["error"], Value::Null);
    let wts = repo["worktrees"].as_object().unwrap();
    for (name, t) in &truths {
        let w = &wts[*name];
        assert_eq!(w["sha"], t.sha, "{name} sha");
        assert_eq!(w["dirty"], t.dirty, "{name} dirty");
        assert_eq!(w["ahead"], t.ahead, "{name} ahead");
        assert_eq!(w["behind"], t.behind, "{name} behind");
        assert_eq!(w["conflict"], t.conflict, "{name} conflict");
        assert_eq!(w["branch"], t.branch, "{name} branch");
    }
    // The states the fixture was built to have, so the comparison above means something.
    assert_eq!(wts["ahead"]["ahead"], json!(2));
    assert_eq!(wts["behind"]["behind"], json!(2));
    assert_eq!(wts["merge"]["conflict"], json!(true));
    assert_eq!(wts["rebase"]["conflict"], json!(true));
    assert_eq!(wts["untracked"]["dirty"], json!(true));
    assert_eq!(wts["staged"]["dirty"], json!(true));
    assert_eq!(wts["ignored"]["dirty"], json!(false));
    assert_eq!(wts["detached"]["branch"], Value::Null);
    assert!(wts["detached"]["error"]
        .as_str()
        .unwrap()
        .contains("detached"));
    assert!(wts["locked"]["error"]
        .as_str()
        .unwrap()
        .contains("index.lock"));
    for clean in ["ahead", "behind", "untracked", "ignored"] {
        assert_eq!(wts[clean]["error"], Value::Null, "{clean}");
    }
    for alien in ["stranger", "plain"] {
        let w = &wts[alien];
        assert!(w["error"].is_string(), "{alien}: {w}");
        assert_eq!(w["sha"], Value::Null);
    }
    // A missing repo path reports an error; the other repo is unaffected.
    let gone = &doc["repos"]["me/gone"];
    assert_eq!(gone["error"], json!("path does not exist"));
    assert_eq!(gone["head_sha"], Value::Null);
    assert_eq!(doc["meta"]["repos"]["error"], Value::Null);
}

#[test]
fn deploy_matches_the_git_cli() {
    let world = build();
    let run = start_in(world.dir.path(), &config(&world, ""), vec![]);
    let doc = collected(run.addr, "deploy");
    let d = &doc["deploy"];
    assert_eq!(
        d["head_sha"],
        json!(git(&world.main(), &["rev-parse", "HEAD"]))
    );
    assert_eq!(
        d["head_commit"],
        json!(git(&world.main(), &["log", "-1", "--format=%s"]))
    );
    assert_eq!(d["dirty"], json!(false));
    assert_eq!(d["unpushed_commits"], json!(1));
    // No database: the deploy rows are null, not an error of this section.
    assert_eq!(d["last_deploy_at"], Value::Null);
    assert_eq!(d["last_deploy_sha"], Value::Null);
    assert!(
        !world.dir.path().join("no.db").exists(),
        "the database is never created"
    );

    // Dirty, and on a branch without an upstream: unpushed still counts
    // against origin's default branch, as pynchy counts it.
    std::fs::write(world.main().join("other.py"), "b = 2\n").unwrap();
    git_ok(&world.main(), &["checkout", "-q", "-b", "no-upstream"]);
    let h = get(run.addr, "/health").json();
    assert_eq!(h["head_sha"], d["head_sha"]);
    drop(run);
    let run = start_in(world.dir.path(), &config(&world, ""), vec![]);
    let d = collected(run.addr, "deploy")["deploy"].clone();
    assert_eq!(d["dirty"], json!(true));
    let truth: u64 = git(&world.main(), &["rev-list", "--count", "origin/main..HEAD"])
        .parse()
        .unwrap();
    assert_eq!(d["unpushed_commits"], json!(truth));
}

#[test]
fn unborn_repo_reports_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    git_ok(&empty, &["init", "-q", "-b", "main"]);
    let cfg = "[pynchy]\nroot = \"empty\"\n[[repos]]\nslug = \"a/b\"\npath = \"empty\"\n[sections.service]\ninterval = \"1h\"\n";
    let run = start_in(dir.path(), cfg, vec![]);
    let doc = collected(run.addr, "repos");
    let r = &doc["repos"]["a/b"];
    assert!(r["error"].as_str().unwrap().contains("unborn"), "{r}");
    assert_eq!(r["head_sha"], Value::Null);
    assert_eq!(r["dirty"], json!(false));
    let d = collected(run.addr, "deploy")["deploy"].clone();
    assert_eq!(d["head_sha"], Value::Null);
}

#[test]
fn missing_pynchy_root_is_a_deploy_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(
        dir.path(),
        "[pynchy]\nroot = \"nowhere\"\n[sections.service]\ninterval = \"1h\"\n",
        vec![],
    );
    let doc = wait_for(Duration::from_secs(10), "deploy error", || {
        let d = get_json(run.addr, "/status/deploy");
        d["meta"]["deploy"]["error"].is_string().then_some(d)
    });
    let err = doc["meta"]["deploy"]["error"].as_str().unwrap();
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(doc["deploy"], Value::Null);
}

#[test]
fn never_writes_under_dot_git() {
    let world = build();
    lock(&world);
    // Settle the index stat caches with the CLI first, as a running pynchy would.
    for n in [
        "ahead",
        "behind",
        "untracked",
        "ignored",
        "staged",
        "detached",
    ] {
        let _ = git(&world.wt(n), &["status", "--porcelain"]);
    }
    let _ = git(&world.main(), &["status", "--porcelain"]);
    let mut before = BTreeMap::new();
    for n in ["ahead", "merge"] {
        before.insert(
            world.wt(n).join(".git"),
            xxhash_rust::xxh3::xxh3_64(&std::fs::read(world.wt(n).join(".git")).unwrap()),
        );
    }
    checksums(&world.main().join(".git"), &mut before);
    for n in ["ahead", "merge", "stranger"] {
        checksums(
            &PathBuf::from(git(&world.wt(n), &["rev-parse", "--absolute-git-dir"])),
            &mut before,
        );
    }
    let run = start_in(
        world.dir.path(),
        &config(
            &world,
            "[sections.repos]\ninterval = \"100ms\"\n[sections.deploy]\ninterval = \"100ms\"\n",
        ),
        vec![],
    );
    // Thirty reads of each (about 3 s at 100 ms), then compare.
    let doc = wait_collections(run.addr, &["repos", "deploy"], 30);
    drop(run);
    assert_eq!(doc["meta"]["repos"]["error"], Value::Null);
    let mut after = BTreeMap::new();
    for n in ["ahead", "merge"] {
        after.insert(
            world.wt(n).join(".git"),
            xxhash_rust::xxh3::xxh3_64(&std::fs::read(world.wt(n).join(".git")).unwrap()),
        );
    }
    checksums(&world.main().join(".git"), &mut after);
    for n in ["ahead", "merge", "stranger"] {
        checksums(
            &PathBuf::from(git(&world.wt(n), &["rev-parse", "--absolute-git-dir"])),
            &mut after,
        );
    }
    assert_eq!(
        before.len(),
        after.len(),
        "no file appeared or vanished under .git"
    );
    for (path, sum) in &before {
        assert_eq!(after.get(path), Some(sum), "{} changed", path.display());
    }
}

#[test]
fn repo_owned_by_another_user_is_an_error() {
    // Only root can give a folder to another user.
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        missing_part("root (to chown a repo to another user)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    git_ok(&theirs, &["init", "-q", "-b", "main"]);
    commit(&theirs, "a.txt", "a", "a");
    let st = Command::new("chown")
        .args(["-R", "12345:12345"])
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(st.success());
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    git_ok(&mine, &["init", "-q", "-b", "main"]);
    commit(&mine, "a.txt", "a", "a");
    let cfg = "[pynchy]\nroot = \"mine\"\n[[repos]]\nslug = \"x/theirs\"\npath = \"theirs\"\n[[repos]]\nslug = \"x/mine\"\npath = \"mine\"\n[sections.service]\ninterval = \"1h\"\n";
    let run = start_in(dir.path(), cfg, vec![]);
    let doc = collected(run.addr, "repos");
    let e = doc["repos"]["x/theirs"]["error"].as_str().unwrap();
    assert!(e.contains("not owned by current user"), "{e}");
    assert_eq!(
        doc["repos"]["x/mine"]["head_sha"],
        json!(git(&mine, &["rev-parse", "HEAD"]))
    );
}
