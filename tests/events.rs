//! Collection follows change: file events for the checkouts and the database,
//! Docker's event stream for the containers. Every section here has an
//! interval of an hour, so whatever shows within a second or two came from an
//! event, not a poll. Ground truth from git, sqlite3 and docker.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Every section at one hour: only events make anything move.
fn slow(extra: &str) -> String {
    let mut s: String = [
        "deploy",
        "repos",
        "messages",
        "tasks",
        "host_jobs",
        "groups",
        "gateway",
    ]
    .iter()
    .map(|n| format!("[sections.{n}]\ninterval = \"1h\"\ntimeout = \"20s\"\n"))
    .collect();
    // Events on whatever PYNCHY_STATUS_WATCH says: these tests are about them.
    s.push_str("[watch]\nenabled = true\n");
    s.push_str(extra);
    s
}

fn wt(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join("pynchy")
        .join(pynchy_status::demo::WORKTREES)
        .join(name)
}

/// Waits (up to 3 s: events land within about 200 ms) for `f` on `/status`.
fn soon(addr: std::net::SocketAddr, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(3), what, || {
        let d = get_json(addr, "/status");
        f(&d).then_some(d)
    })
}

#[test]
fn worktree_and_database_changes_show_within_a_second() {
    let (dir, cfg) = demo_world(&slow(""));
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let d = get_json(run.addr, "/status");
    for s in [
        "deploy",
        "repos",
        "messages",
        "tasks",
        "host_jobs",
        "groups",
    ] {
        assert_eq!(d["meta"][s]["refresh"], json!("event"), "{s}");
    }
    let docs = |d: &Value| d["repos"]["me/pynchy"]["worktrees"]["docs-writer"].clone();
    assert_eq!(docs(&d)["dirty"], json!(false));

    // A file edited in a worktree: dirty turns true, as git says.
    let docs_dir = wt(dir.path(), "docs-writer");
    std::fs::write(docs_dir.join("README.md"), "# edited\n").unwrap();
    assert!(!git(&docs_dir, &["status", "--porcelain"]).is_empty());
    soon(run.addr, "dirty", |d| docs(d)["dirty"] == json!(true));

    // A commit on the worktree's branch: ahead moves to what git counts.
    git_ok(&docs_dir, &["commit", "-qam", "docs: edit"]);
    let ahead: u64 = git(&docs_dir, &["rev-list", "--count", "main..HEAD"])
        .parse()
        .unwrap();
    soon(run.addr, "ahead", |d| {
        docs(d)["ahead"] == json!(ahead) && docs(d)["dirty"] == json!(false)
    });

    // A message inserted: total_inbound follows sqlite3.
    let db = dir.path().join("pynchy/data/messages.db");
    sqlite3_write(
        &db,
        "INSERT INTO messages VALUES ('new1','admin@g.us','u1','Ada','hi','2026-11-28T00:00:00+00:00',0,'user',NULL)",
    );
    let truth: u64 = sqlite3_read(&db, "SELECT COUNT(*) FROM messages WHERE is_from_me = 0")
        .parse()
        .unwrap();
    soon(run.addr, "total_inbound", |d| {
        d["messages"]["total_inbound"] == json!(truth)
    });

    // A new worktree appears, a removed one goes.
    let main = dir.path().join("pynchy");
    let fresh = wt(dir.path(), "fresh-one");
    git_ok(
        &main,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "worktree/fresh-one",
            fresh.to_str().unwrap(),
            "main",
        ],
    );
    soon(run.addr, "new worktree", |d| {
        d["repos"]["me/pynchy"]["worktrees"]["fresh-one"]["branch"] == json!("worktree/fresh-one")
    });
    git_ok(
        &main,
        &["worktree", "remove", "--force", fresh.to_str().unwrap()],
    );
    soon(run.addr, "worktree gone", |d| {
        d["repos"]["me/pynchy"]["worktrees"]
            .get("fresh-one")
            .is_none()
    });
}

#[test]
fn ignored_paths_and_reads_cause_no_collection() {
    let (dir, cfg) = demo_world(&slow(""));
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let attempted = |d: &Value| d["meta"]["repos"]["attempted_at"].clone();
    let before = attempted(&get_json(run.addr, "/status"));
    // An ignored file in the main checkout, one in a worktree's build folder,
    // and a read of every file: none of it is a change git would report.
    let main = dir.path().join("pynchy");
    std::fs::write(main.join("service.log"), "more\n").unwrap();
    std::fs::write(main.join("data/cache.bin"), "x").unwrap();
    let _ = std::fs::read_to_string(main.join("README.md"));
    let moved = poll(
        Duration::from_millis(1500),
        Duration::from_millis(50),
        || {
            let d = get_json(run.addr, "/status");
            (attempted(&d) != before).then_some(d)
        },
    );
    assert!(moved.is_none(), "an ignored change caused a collection");
}

#[test]
fn a_replaced_database_is_followed() {
    let (dir, cfg) = demo_world(&slow(""));
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let db = dir.path().join("pynchy/data/messages.db");
    // pynchy's restore: a new file moved into place.
    let other = dir.path().join("restored.db");
    std::fs::copy(&db, &other).unwrap();
    sqlite3_write(&other, "DELETE FROM messages WHERE rowid % 2 = 0");
    let truth: u64 = sqlite3_read(&other, "SELECT COUNT(*) FROM messages WHERE is_from_me = 0")
        .parse()
        .unwrap();
    std::fs::rename(&other, &db).unwrap();
    soon(run.addr, "the restored count", |d| {
        d["messages"]["total_inbound"] == json!(truth)
    });
}

#[test]
fn without_events_every_section_polls() {
    let (dir, cfg) = demo_world("[watch]\nenabled = false\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let d = get_json(run.addr, "/status");
    for s in [
        "deploy",
        "repos",
        "messages",
        "tasks",
        "host_jobs",
        "groups",
    ] {
        assert_eq!(d["meta"][s]["refresh"], json!("poll"), "{s}");
    }
    let m = String::from_utf8(get(run.addr, "/metrics").body).unwrap();
    assert!(
        m.contains("pynchy_status_section_event_driven{section=\"repos\"} 0"),
        "{m}"
    );
}

#[test]
fn a_stopped_container_shows_within_a_second() {
    let Some(host) = test_docker() else {
        return;
    };
    let tag = format!("pste{}", std::process::id());
    let (litellm, pg) = (format!("{tag}-litellm"), format!("{tag}-db"));
    let mut c = Containers::new(&host);
    for n in [&litellm, &pg] {
        c.names.push(n.clone());
        let args = [
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            n,
            TEST_IMAGE,
            "sleep",
            "600",
        ];
        assert!(docker(&host, &args).is_some(), "docker run {n}");
    }
    let extra = format!(
        "[gateway]\nmode = \"litellm\"\nurl = \"http://127.0.0.1:9\"\nmodels_interval = \"off\"\n\
         docker_host = \"{host}\"\nlitellm_container = \"{litellm}\"\npostgres_container = \"{pg}\"\n"
    );
    let (dir, _) = demo_world("");
    let cfg = format!("[pynchy]\nroot = \"pynchy\"\n{}{extra}", slow(""));
    let run = start_in(dir.path(), &cfg, vec![]);
    let gw = |d: &Value| d["gateway"].clone();
    soon(run.addr, "running, by events", |d| {
        gw(d)["litellm_container"] == json!("running")
            && d["meta"]["gateway"]["refresh"] == json!("event")
    });
    assert!(docker(&host, &["stop", "-t", "0", &litellm]).is_some());
    let state = docker(&host, &["inspect", "-f", "{{.State.Status}}", &litellm]).unwrap();
    soon(run.addr, "stopped", |d| {
        gw(d)["litellm_container"] == json!(state.trim())
    });
    assert!(docker(&host, &["start", &litellm]).is_some());
    soon(run.addr, "running again", |d| {
        gw(d)["litellm_container"] == json!("running")
    });
}

#[test]
fn a_repo_replaced_by_a_fresh_clone_is_followed() {
    let extra = "[[repos]]\nslug = \"me/other\"\npath = \"other\"\n";
    let (dir, cfg) = demo_world(&slow(extra));
    let origin = dir.path().join("origin.git");
    git_ok(
        dir.path(),
        &["clone", "-q", origin.to_str().unwrap(), "other"],
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let head = |d: &Value| d["repos"]["me/other"]["head_sha"].clone();
    let first = git(&dir.path().join("other"), &["rev-parse", "HEAD"]);
    soon(run.addr, "the first clone", |d| head(d) == json!(first));
    // A fresh clone with a new commit, moved into place.
    git_ok(
        dir.path(),
        &["clone", "-q", origin.to_str().unwrap(), "other.new"],
    );
    let fresh = dir.path().join("other.new");
    std::fs::write(fresh.join("NEW.md"), "new\n").unwrap();
    git_ok(&fresh, &["add", "NEW.md"]);
    git_ok(&fresh, &["commit", "-qm", "fresh clone"]);
    let second = git(&fresh, &["rev-parse", "HEAD"]);
    std::fs::rename(dir.path().join("other"), dir.path().join("other.old")).unwrap();
    std::fs::rename(&fresh, dir.path().join("other")).unwrap();
    soon(run.addr, "the fresh clone", |d| head(d) == json!(second));
    // And it is watched: a later edit shows too.
    std::fs::write(dir.path().join("other/NEW.md"), "edited\n").unwrap();
    soon(run.addr, "an edit in the fresh clone", |d| {
        d["repos"]["me/other"]["dirty"] == json!(true)
    });
}

#[test]
fn a_worktrees_folder_made_again_is_followed() {
    // A repo whose worktrees folder lives outside its checkout, as pynchy's
    // do (`data/worktrees/<owner>/<repo>` beside `data/repos/...`).
    let extra = "[[repos]]\nslug = \"me/other\"\npath = \"other\"\nworktrees = \"wts\"\n";
    let (dir, cfg) = demo_world(&slow(extra));
    let origin = dir.path().join("origin.git");
    git_ok(
        dir.path(),
        &["clone", "-q", origin.to_str().unwrap(), "other"],
    );
    let (repo, folder) = (dir.path().join("other"), dir.path().join("wts"));
    std::fs::create_dir(&folder).unwrap();
    let add = |name: &str| {
        let path = folder.join(name);
        git_ok(
            &repo,
            &["worktree", "add", "-q", "-b", name, path.to_str().unwrap()],
        );
        path
    };
    add("first-agent");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let wt = |d: &Value, name: &str| d["repos"]["me/other"]["worktrees"][name].clone();
    soon(run.addr, "the first worktree", |d| {
        wt(d, "first-agent").is_object()
    });
    // The worktrees folder removed and made again, with a new worktree.
    std::fs::remove_dir_all(&folder).unwrap();
    git_ok(&repo, &["worktree", "prune"]);
    std::fs::create_dir(&folder).unwrap();
    let new = add("fresh-agent");
    soon(run.addr, "the new worktree", |d| {
        wt(d, "fresh-agent").is_object()
    });
    // Its edits are seen by events again (every interval is an hour).
    std::fs::write(new.join("EDIT.md"), "edited\n").unwrap();
    let d = soon(run.addr, "an edit in the new worktree", |d| {
        wt(d, "fresh-agent")["dirty"] == json!(true)
    });
    assert_eq!(d["meta"]["repos"]["refresh"], json!("event"));
}
