//! The fault matrix: for each fault, the other sections keep updating, the
//! faulty one keeps its last good body with `error` set and turns `stale` on
//! time, and it recovers within one interval after the fault clears.
//! (LiteLLM hung / 500 / garbage: tests/gateway.rs; a panicking and a hung
//! collector: tests/poller.rs, plus the 10 s one here.)

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use pynchy_status::sections::{CollectError, Schedule, Section, Work};
use serde_json::{json, Value};

/// Fast schedules: 200 ms interval, 1 s timeout, 1 s stale_after.
fn fast(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "[sections.{n}]\ninterval = \"200ms\"\ntimeout = \"1s\"\nstale_after = \"1s\"\n"
            )
        })
        .collect()
}

const STALE_AFTER: Duration = Duration::from_secs(1);

fn world() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let checkout = pynchy_status::demo::build_git(dir.path()).unwrap();
    pynchy_status::demo::build_db(&checkout.join("data/messages.db")).unwrap();
    let cfg = format!(
        "[pynchy]\nroot = \"pynchy\"\n[[repos]]\nslug = \"me/pynchy\"\npath = \"pynchy\"\nworktrees = \"pynchy/{}\"\n\
         [gateway]\nmode = \"none\"\n{}",
        pynchy_status::demo::WORKTREES,
        fast(&["messages", "tasks", "host_jobs", "groups", "repos", "deploy"])
    );
    (dir, cfg)
}

/// When the section's body was last confirmed (read, or its source said it
/// had not changed): what staleness counts from, in event and poll mode alike.
fn checked_at(doc: &Value, name: &str) -> Option<DateTime<Utc>> {
    doc["meta"][name]["checked_at"].as_str()?.parse().ok()
}

/// Runs one fault through its life and checks every promise.
fn fault_case(
    addr: std::net::SocketAddr,
    faulty: &str,
    other: &str,
    needle: &str,
    inject: impl FnOnce(),
    clear: impl FnOnce(),
) {
    let good = wait_for(Duration::from_secs(10), "a good body", || {
        let d = get_json(addr, &format!("/status/{faulty}"));
        (d["meta"][faulty]["error"].is_null() && d["meta"][faulty]["stale"] == json!(false))
            .then_some(d)
    });
    let good_body = good[faulty].clone();
    inject();
    let faulted = wait_for(Duration::from_secs(5), "the fault reported", || {
        let d = get_json(addr, "/status");
        d["meta"][faulty]["error"]
            .as_str()
            .is_some_and(|e| e.contains(needle))
            .then_some(d)
    });
    assert_eq!(faulted[faulty], good_body, "{faulty}: last good body kept");
    let last_good = checked_at(&faulted, faulty).unwrap();
    let other_before = checked_at(&faulted, other).unwrap();
    // Stale on time: stale_after after the last good confirmation.
    let flipped = wait_for(Duration::from_secs(5), "stale", || {
        let d = get_json(addr, &format!("/status/{faulty}"));
        (d["meta"][faulty]["stale"] == json!(true)).then(Utc::now)
    });
    let late = (flipped - last_good).to_std().unwrap();
    assert!(
        late >= STALE_AFTER - Duration::from_millis(50)
            && late < STALE_AFTER + Duration::from_millis(800),
        "{faulty} stale {late:?} after its last good collection"
    );
    let d = get_json(addr, "/status");
    assert_eq!(d[faulty], good_body, "{faulty}: still the last good body");
    let other_now = checked_at(&d, other).unwrap();
    assert!(
        other_now > other_before,
        "{other} kept updating during the {faulty} fault"
    );
    assert_eq!(d["meta"][other]["stale"], json!(false));
    // Recovery within one interval (200 ms) of the fault clearing, plus slack.
    clear();
    let cleared = Instant::now();
    wait_for(Duration::from_secs(3), "recovery", || {
        let d = get_json(addr, &format!("/status/{faulty}"));
        (d["meta"][faulty]["error"].is_null() && d["meta"][faulty]["stale"] == json!(false))
            .then_some(())
    });
    assert!(
        cleared.elapsed() < Duration::from_millis(1500),
        "recovered after {:?}",
        cleared.elapsed()
    );
}

fn db_path(dir: &Path) -> std::path::PathBuf {
    dir.join("pynchy/data/messages.db")
}

#[test]
fn database_deleted_and_restored() {
    let (dir, cfg) = world();
    let run = start_in(dir.path(), &cfg, vec![]);
    let db = db_path(dir.path());
    let saved = std::fs::read(&db).unwrap();
    fault_case(
        run.addr,
        "messages",
        "repos",
        "does not exist",
        || std::fs::remove_file(&db).unwrap(),
        || std::fs::write(&db, &saved).unwrap(),
    );
}

#[test]
fn database_exclusively_locked() {
    let (dir, cfg) = world();
    let run = start_in(dir.path(), &cfg, vec![]);
    let db = db_path(dir.path());
    let mut writer = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    let w = std::cell::RefCell::new(&mut writer);
    fault_case(
        run.addr,
        "groups",
        "repos",
        "locked",
        || {
            w.borrow_mut()
                .batch_execute("BEGIN EXCLUSIVE; INSERT INTO sessions VALUES ('x','y');")
                .unwrap()
        },
        || w.borrow_mut().batch_execute("ROLLBACK;").unwrap(),
    );
}

#[test]
fn database_replaced_by_garbage() {
    let (dir, cfg) = world();
    let run = start_in(dir.path(), &cfg, vec![]);
    let db = db_path(dir.path());
    let saved = std::fs::read(&db).unwrap();
    fault_case(
        run.addr,
        "tasks",
        "repos",
        "not a database",
        || std::fs::write(&db, vec![0x42u8; 16384]).unwrap(),
        || std::fs::write(&db, &saved).unwrap(),
    );
}

#[test]
fn database_table_dropped() {
    let (dir, cfg) = world();
    let run = start_in(dir.path(), &cfg, vec![]);
    let db = db_path(dir.path());
    let exec = |sql: &str| {
        SqliteConnection::establish(&db.to_string_lossy())
            .unwrap()
            .batch_execute(sql)
            .unwrap();
    };
    fault_case(
        run.addr,
        "host_jobs",
        "messages",
        "no such table: host_jobs",
        || exec("ALTER TABLE host_jobs RENAME TO host_jobs_away;"),
        || exec("ALTER TABLE host_jobs_away RENAME TO host_jobs;"),
    );
}

#[test]
fn repo_path_removed() {
    let (dir, cfg) = world();
    let run = start_in(dir.path(), &cfg, vec![]);
    let root = dir.path().join("pynchy");
    let away = dir.path().join("pynchy-away");
    // (The database lives inside the checkout here, so `repos` is the witness:
    // it keeps answering, with the repo's own entry in error.)
    fault_case(
        run.addr,
        "deploy",
        "repos",
        "does not exist",
        || std::fs::rename(&root, &away).unwrap(),
        || std::fs::rename(&away, &root).unwrap(),
    );
}

#[test]
fn index_lock_left_behind() {
    let (dir, cfg) = world();
    let run = start_in(dir.path(), &cfg, vec![]);
    let lock = dir
        .path()
        .join("pynchy/.git/worktrees/docs-writer/index.lock");
    let wt = |d: &Value| d["repos"]["me/pynchy"]["worktrees"]["docs-writer"].clone();
    let before = wt(&wait_for(Duration::from_secs(10), "repos", || {
        let d = get_json(run.addr, "/status/repos");
        d["repos"].is_object().then_some(d)
    }));
    assert_eq!(before["error"], Value::Null);
    std::fs::write(&lock, "").unwrap();
    let d = wait_for(Duration::from_secs(3), "index.lock reported", || {
        let d = get_json(run.addr, "/status");
        wt(&d)["error"]
            .as_str()
            .is_some_and(|e| e.contains("index.lock"))
            .then_some(d)
    });
    // The values are still read (git itself reads a locked index), and the
    // other worktrees and sections are unaffected.
    assert_eq!(wt(&d)["sha"], before["sha"]);
    assert_eq!(
        d["repos"]["me/pynchy"]["worktrees"]["code-improver"]["error"],
        Value::Null
    );
    assert_eq!(d["meta"]["messages"]["error"], Value::Null);
    std::fs::remove_file(&lock).unwrap();
    wait_for(Duration::from_millis(1500), "lock cleared", || {
        wt(&get_json(run.addr, "/status"))
            .get("error")
            .filter(|e| e.is_null())
            .map(|_| ())
    });
    assert!(lock.parent().unwrap().exists());
}

/// Takes 10 s on every collection after the first.
struct TenSeconds(std::sync::atomic::AtomicU64);

impl Extra for TenSeconds {
    fn name(&self) -> &'static str {
        "slowpoke"
    }
    fn default_schedule(&self) -> Schedule {
        Schedule {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            stale_after: STALE_AFTER,
            verify: pynchy_status::sections::VERIFY_INTERVAL,
        }
    }
}

impl Section for TenSeconds {
    type Body = Value;
    fn collect(&self) -> Work<Value> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Work::blocking(move || {
            if n > 0 {
                std::thread::sleep(Duration::from_secs(10));
                return Err(CollectError::new("too late"));
            }
            Ok(json!({"first": true}))
        })
    }
}

#[test]
fn a_ten_second_collector_never_delays_the_others() {
    let (dir, cfg) = world();
    let run = start_in(
        dir.path(),
        &cfg,
        vec![Arc::new(TenSeconds(Default::default()))],
    );
    let first = wait_for(Duration::from_secs(5), "first bodies", || {
        let d = get_json(run.addr, "/status");
        (d["slowpoke"].is_object() && d["messages"].is_object()).then_some(d)
    });
    let t0 = checked_at(&first, "messages").unwrap();
    let d = wait_for(
        Duration::from_secs(5),
        "slowpoke stale and timed out",
        || {
            let d = get_json(run.addr, "/status");
            (d["meta"]["slowpoke"]["stale"] == json!(true)
                && d["meta"]["slowpoke"]["error"].is_string())
            .then_some(d)
        },
    );
    assert_eq!(d["slowpoke"], json!({"first": true}));
    assert!(d["meta"]["slowpoke"]["error"]
        .as_str()
        .unwrap()
        .contains("timed out after 1s"));
    // Meanwhile the others were confirmed every 200 ms.
    let t1 = checked_at(&d, "messages").unwrap();
    assert!(
        (t1 - t0).num_milliseconds() >= 600,
        "messages kept collecting: {t0} → {t1}"
    );
    for s in ["messages", "repos", "tasks", "deploy"] {
        assert_eq!(d["meta"][s]["stale"], json!(false), "{s}");
        let ms = d["meta"][s]["duration_ms"].as_f64().unwrap();
        assert!(ms < 1000.0, "{s} took {ms} ms");
    }
}

/// A private dockerd started with `scripts/dockerd` (state in `state`):
/// stopped when this is dropped, so it goes away even when an assertion fails.
struct StopDockerd<'a> {
    script: &'a Path,
    state: &'a Path,
}

impl Drop for StopDockerd<'_> {
    fn drop(&mut self) {
        // Stopping twice is harmless; no panic here, this may run while unwinding.
        let _ = Command::new("bash")
            .arg(self.script)
            .arg("stop")
            .env("PYNCHY_DOCKERD_STATE", self.state)
            .status();
    }
}

#[test]
fn docker_stopped_and_started_again() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dockerd");
    if Command::new("dockerd").arg("--version").output().is_err() {
        return missing_part("dockerd (Debian package docker.io)");
    }
    // A private dockerd this test owns.
    let state = tempfile::Builder::new()
        .prefix("pst-dockerd-")
        .tempdir_in("/tmp")
        .unwrap();
    let start = || {
        let out = Command::new("bash")
            .arg(&script)
            .env("PYNCHY_DOCKERD_STATE", state.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let stop = || {
        let st = Command::new("bash")
            .arg(&script)
            .arg("stop")
            .env("PYNCHY_DOCKERD_STATE", state.path())
            .status()
            .unwrap();
        assert!(st.success());
    };
    // Stopped when the test ends, however it ends.
    let _dockerd = StopDockerd {
        script: &script,
        state: state.path(),
    };
    let host = start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[pynchy]\nroot = \".\"\n[gateway]\nmode = \"litellm\"\nurl = \"http://127.0.0.1:9\"\ndocker_host = \"{host}\"\n\
         litellm_container = \"pst-absent\"\npostgres_container = \"pst-absent-db\"\n{}",
        fast(&["gateway", "messages"])
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    let gw = |d: &Value| d["gateway"].clone();
    wait_for(Duration::from_secs(10), "docker ok", || {
        (gw(&get_json(run.addr, "/status"))["docker"] == "ok").then_some(())
    });
    assert_eq!(
        gw(&get_json(run.addr, "/status"))["litellm_container"],
        "not_found"
    );
    stop();
    let d = wait_for(Duration::from_secs(5), "docker unreachable", || {
        let d = get_json(run.addr, "/status");
        (gw(&d)["docker"] == "unreachable").then_some(d)
    });
    assert_eq!(gw(&d)["litellm_container"], "unreachable");
    assert!(d["reasons"]
        .to_string()
        .contains("Docker daemon unreachable"));
    let t0 = checked_at(&d, "gateway").unwrap();
    let d = wait_collections(run.addr, &["gateway"], 3);
    assert!(
        checked_at(&d, "gateway").unwrap() > t0,
        "the gateway section keeps answering"
    );
    assert_eq!(d["meta"]["gateway"]["stale"], json!(false));
    start();
    let restarted = Instant::now();
    wait_for(Duration::from_secs(5), "docker ok again", || {
        (gw(&get_json(run.addr, "/status"))["docker"] == "ok").then_some(())
    });
    assert!(
        restarted.elapsed() < Duration::from_secs(2),
        "{:?}",
        restarted.elapsed()
    );
    stop();
}
