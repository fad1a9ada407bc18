//! Graceful shutdown of the real binary: on SIGTERM or SIGINT `service.status`
//! turns `shutting_down` in the snapshot, open streams get that last snapshot,
//! the listener closes, and the process exits 0 within 5 s.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The daemon, killed by the guard if the test fails before it exits.
fn start(dir: &std::path::Path) -> (ChildGuard, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\n[gateway]\nmode = \"none\"\n[pynchy]\nroot = \".\"\n"
        ),
    )
    .unwrap();
    let child = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
            .args(["serve", "--config", "c.toml"])
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(Duration::from_secs(10), "the daemon", || {
        TcpStream::connect(addr).ok()?;
        (get(addr, "/readyz").status == 200).then_some(())
    });
    (child, addr)
}

#[test]
fn sigterm_says_shutting_down_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path());
    // An open event stream sees the last snapshot before the end.
    let mut sse = Sse::open(addr, &[]);
    let sent = Instant::now();
    signal(child.id(), "-TERM");
    let mut saw = false;
    while let Some((_, doc)) = sse.try_next_event() {
        if doc["service"]["status"] == "shutting_down" {
            saw = true;
            assert_eq!(doc["status"], "down");
        }
    }
    assert!(saw, "the stream carried service.status = shutting_down");
    let st = child.wait_within(Duration::from_secs(5));
    assert!(st.success(), "{st:?}");
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("listening on")).collect();
    assert_eq!(ours.len(), 1, "{err}");
    assert!(
        ours[0].contains(&format!("http://{addr}")) && ours[0].contains("service="),
        "{err}"
    );
    assert!(
        !err.contains("actix_server"),
        "one start-up line, no worker chatter: {err}"
    );
}

#[test]
fn sigint_exits_0_and_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path());
    // Keep-alive clients hammering /status while the signal lands: every
    // request that got an answer got a whole one.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut whole = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        break;
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    if write!(
                        s,
                        "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    .is_err()
                    {
                        break;
                    }
                    let mut raw = Vec::new();
                    if s.read_to_end(&mut raw).is_err() || raw.is_empty() {
                        break;
                    }
                    let text = String::from_utf8_lossy(&raw);
                    let (head, body) = text.split_once("\r\n\r\n").unwrap();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert_eq!(body.len(), len, "a whole answer");
                    serde_json::from_str::<serde_json::Value>(body).unwrap();
                    whole += 1;
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                whole
            })
        })
        .collect();
    // The signal lands while they are at it: after their first answers.
    wait_for(
        Duration::from_secs(10),
        "whole answers before the signal",
        || (answered.load(std::sync::atomic::Ordering::Relaxed) >= 20).then_some(()),
    );
    signal(child.id(), "-INT");
    let st = child.wait_within(Duration::from_secs(5));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: i32 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(st.success(), "{st:?}");
    assert!(total > 10, "{total} whole answers before the stop");
}
