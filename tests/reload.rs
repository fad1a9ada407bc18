//! Signals on the real binary: SIGHUP reads the config file again and applies
//! it — tokens, rule severities, repos, intervals — on the same listener,
//! with open streams and pushed state kept; an invalid file is logged and the
//! old config stays. SIGUSR1 stops the daemon in order, as SIGTERM does.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

fn write_config(dir: &Path, addr: SocketAddr, extra: &str) {
    std::fs::write(
        dir.join("c.toml"),
        format!("listen = \"{addr}\"\n[pynchy]\nroot = \".\"\n[gateway]\nmode = \"none\"\n{extra}"),
    )
    .unwrap();
}

fn start(dir: &Path, extra: &str) -> (ChildGuard, SocketAddr) {
    let config = format!("[pynchy]\nroot = \".\"\n[gateway]\nmode = \"none\"\n{extra}");
    let env = [
        ("PST_RELOAD_ONE", "token-one"),
        ("PST_RELOAD_TWO", "token-two"),
    ];
    let (child, addr) = spawn_serve(dir, &config, &env);
    wait_for(Duration::from_secs(20), "ready", || {
        (get(addr, "/readyz").status == 200).then_some(())
    });
    (child, addr)
}

fn status(addr: SocketAddr, token: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let r = request(addr, "GET", "/status", &[("Authorization", &auth)], b"");
    let v = if r.status == 200 {
        r.json()
    } else {
        serde_json::Value::Null
    };
    (r.status, v)
}

fn repo(dir: &Path) {
    git_ok(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "pynchy\n").unwrap();
    git_ok(dir, &["add", "README.md"]);
    git_ok(dir, &["commit", "-qm", "first"]);
}

#[test]
fn sighup_applies_a_new_config_and_keeps_streams_and_pushes() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path());
    let (mut child, addr) = start(dir.path(), "[server]\ntoken_env = \"PST_RELOAD_ONE\"\n");
    let (code, before) = status(addr, "token-one");
    assert_eq!(code, 200);
    assert!(
        has_reason(&before, "database cannot be read"),
        "{}",
        before["reasons"]
    );
    assert_eq!(before["repos"], json!({}));
    push(addr, "channels", json!({"slack": {"connected": true}}));
    // A stream open across the reload.
    let mut stream = Sse::open(addr, &[("Authorization", "Bearer token-one")]);
    assert_eq!(stream.status, 200);
    stream.next();

    write_config(
        dir.path(),
        addr,
        "[server]\ntoken_env = \"PST_RELOAD_ONE\"\n\
         [[repos]]\nslug = \"me/pynchy\"\npath = \".\"\n\
         [rollup.severity]\ndatabase_unreadable = \"ignore\"\n\
         [sections.deploy]\ninterval = \"250ms\"\n",
    );
    signal(child.id(), "-HUP");
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let after = wait_for(Duration::from_secs(10), "the new config", || {
        let (code, d) = status(addr, "token-one");
        (code == 200 && d["repos"]["me/pynchy"]["head_sha"] == json!(head)).then_some(d)
    });
    assert!(
        !has_reason(&after, "database cannot be read"),
        "{}",
        after["reasons"]
    );
    assert_eq!(after["meta"]["deploy"]["interval_seconds"], json!(0.25));
    assert_eq!(
        after["channels"]["channels"],
        json!({"slack": {"connected": true}})
    );
    // The stream is still open and still sends.
    assert!(
        stream.try_next_event().is_some(),
        "the stream ended at the reload"
    );

    // Another token: the old one is refused, and the stream opened under it ends.
    write_config(
        dir.path(),
        addr,
        "[server]\ntoken_env = \"PST_RELOAD_TWO\"\n[[repos]]\nslug = \"me/pynchy\"\npath = \".\"\n",
    );
    signal(child.id(), "-HUP");
    wait_for(Duration::from_secs(10), "the new token", || {
        (status(addr, "token-two").0 == 200).then_some(())
    });
    assert_eq!(status(addr, "token-one").0, 401, "the old token is gone");
    assert!(
        stream.ended(100),
        "a stream opened under the old token ended"
    );

    // An invalid file: logged, and the running config stays. It is handed
    // over through a FIFO, so the daemon is known to have read it; reloads are
    // taken in order, so once a valid one after it shows, it was handled.
    let c = dir.path().join("c.toml");
    std::fs::remove_file(&c).unwrap();
    assert!(Command::new("mkfifo").arg(&c).status().unwrap().success());
    signal(child.id(), "-HUP");
    let mut fifo = std::fs::OpenOptions::new().write(true).open(&c).unwrap();
    fifo.write_all(b"listen = 5\n").unwrap();
    drop(fifo);
    std::fs::remove_file(&c).unwrap();
    write_config(
        dir.path(),
        addr,
        "[server]\ntoken_env = \"PST_RELOAD_TWO\"\n[[repos]]\nslug = \"me/pynchy\"\npath = \".\"\n\
         [sections.deploy]\ninterval = \"300ms\"\n",
    );
    signal(child.id(), "-HUP");
    wait_for(Duration::from_secs(10), "the valid reload after it", || {
        let (code, d) = status(addr, "token-two");
        (code == 200 && d["meta"]["deploy"]["interval_seconds"] == json!(0.3)).then_some(())
    });
    assert!(child.try_wait().unwrap().is_none(), "still running");

    signal(child.id(), "-TERM");
    let exit = child.wait_within(Duration::from_secs(5));
    assert!(exit.success(), "{exit:?}");
    let out = child.output_within(Duration::from_secs(5));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("config reloaded"), "{log}");
    assert!(
        log.contains("the config was not reloaded; still running on the old one"),
        "{log}"
    );
    assert!(log.contains("listen"), "{log}");
}

#[test]
fn sigusr1_stops_in_order() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path());
    let (mut child, addr) = start(dir.path(), "");
    assert_eq!(get(addr, "/readyz").status, 200);
    signal(child.id(), "-USR1");
    let exit = child.wait_within(Duration::from_secs(5));
    assert!(exit.success(), "{exit:?}");
    let out = child.output_within(Duration::from_secs(5));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("SIGUSR1"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn sigterm_stops_while_a_reload_is_stuck_reading() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path());
    let (mut child, addr) = start(dir.path(), "");
    // The config file becomes a FIFO whose writer never writes.
    let fifo = dir.path().join("c.toml");
    std::fs::remove_file(&fifo).unwrap();
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    signal(child.id(), "-HUP");
    // Opening the writing end returns once the daemon opened it to read.
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    assert_eq!(get(addr, "/readyz").status, 200, "still serving");
    signal(child.id(), "-TERM");
    let exit = child.wait_within(Duration::from_secs(5));
    assert!(exit.success(), "{exit:?}");
    drop(writer);
    let out = child.output_within(Duration::from_secs(5));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("SIGTERM"), "{log}");
}
