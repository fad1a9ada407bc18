//! Hostile and unlucky inputs: pushes with data after the JSON value or a
//! foreign `Host`, HEAD requests on the event stream, durations out of range,
//! a symlink loop as a repo path. Each is refused or reported clearly, and the
//! daemon keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use common::*;
use pynchy_status::config::Config;
use serde_json::json;

/// A push with a `Host` header of our choosing; returns the status code.
fn push_with_host(addr: SocketAddr, host: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT /push/channels HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn pushes_are_validated_whole_and_addressed_to_loopback() {
    let (dir, cfg) = demo_world("");
    let run = start_in(dir.path(), &cfg, vec![]);
    let body = r#"{"slack": {"connected": true}}"#;
    // DNS rebinding: a page's own name resolved to 127.0.0.1.
    assert_eq!(push_with_host(run.addr, "evil.example:8485", body), 403);
    // A Host is a host and a port: user info is not a loopback address.
    for bad in [
        "127.0.0.1:80@evil.com",
        "127.0.0.1:80/x",
        "[::1]:80@evil.com",
        "localhost:",
    ] {
        assert_eq!(push_with_host(run.addr, bad, body), 403, "{bad}");
    }
    assert_eq!(push_with_host(run.addr, "localhost", body), 200);
    assert_eq!(push_with_host(run.addr, &run.addr.to_string(), body), 200);
    assert_eq!(push_with_host(run.addr, "[::1]:8485", body), 200);
    // Two values, or trailing garbage: 400, and the last push stands.
    for bad in [format!("{body}{body}"), format!("{body} garbage")] {
        let r = request(run.addr, "PUT", "/push/channels", &[], bad.as_bytes());
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    }
    let d = get_json(run.addr, "/status/channels");
    assert_eq!(
        d["channels"]["channels"],
        json!({"slack": {"connected": true}})
    );
}

#[test]
fn head_on_the_stream_takes_no_slot() {
    let (dir, cfg) = demo_world("[server]\nmax_streams = 4\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    for _ in 0..100 {
        let r = request(run.addr, "HEAD", "/status/stream", &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
    }
    // Every slot is still free: a GET streams.
    open_stream(run.addr);
}

/// A `GET /status/stream` that must be let in (its status read).
fn open_stream(addr: SocketAddr) -> Sse {
    try_stream(addr, TcpStream::connect(addr).unwrap()).expect("a stream slot")
}

/// A `GET /status/stream` on `s`: the stream if let in within 5 s, else None.
fn try_stream(addr: SocketAddr, s: TcpStream) -> Option<Sse> {
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    Sse::open_on(s, addr, &[])
        .ok()
        .filter(|sse| sse.status == 200)
}

fn config_error(text: &str) -> String {
    Config::parse(text, Path::new("/")).unwrap_err().to_string()
}

#[test]
fn durations_out_of_range_are_config_errors_naming_the_key() {
    for (text, key) in [
        (
            "[sections.deploy]\ninterval = \"1ns\"\n",
            "sections.deploy.interval",
        ),
        (
            "[sections.deploy]\ninterval = \"300000000000y\"\n",
            "sections.deploy.interval",
        ),
        (
            "[sections.deploy]\nstale_after = \"300000000000y\"\n",
            "sections.deploy.stale_after",
        ),
        ("[push]\nttl = \"300000000000y\"\n", "push.ttl"),
        ("[push]\nttl = \"1ns\"\n", "push.ttl"),
        // actix-web panics past 512 workers: refused at load.
        ("[server]\nworkers = 513\n", "server.workers"),
        ("[server]\nworkers = 0\n", "server.workers"),
        ("[pynchy]\nurl = \"https://127.0.0.1:8484\"\n", "pynchy.url"),
        ("[pynchy]\nmax_concurrent = 0\n", "pynchy.max_concurrent"),
        (
            "[sections.repos]\ninterval = \"10s\"\nstale_after = \"5s\"\n",
            "sections.repos.stale_after",
        ),
    ] {
        let e = config_error(text);
        assert!(e.contains(key), "{text}: {e}");
    }
    // The binary: exit 2, not a panic.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[sections.deploy]\ninterval = \"300000000000y\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_symlink_loop_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(dir.path().join("loop"), dir.path().join("loop")).unwrap();
    let cfg = "[[repos]]\nslug = \"me/loop\"\npath = \"loop\"\n[gateway]\nmode = \"none\"\n";
    let run = start_in(dir.path(), cfg, vec![]);
    let d = wait_for(std::time::Duration::from_secs(10), "repos", || {
        let d = get_json(run.addr, "/status/repos");
        d["repos"]["me/loop"]["error"].is_string().then_some(d)
    });
    let e = d["repos"]["me/loop"]["error"].as_str().unwrap();
    assert!(e.contains("symlink"), "{e}");
}

#[test]
fn streams_of_killed_clients_give_their_slots_back() {
    let (dir, cfg) = demo_world("[server]\nmax_streams = 100\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    let open = |n: usize| -> Vec<Sse> { (0..n).map(|_| open_stream(run.addr)).collect() };
    // 100 clients take every slot, then die without a word.
    let clients = open(100);
    assert_eq!(get(run.addr, "/status/stream").status, 503);
    drop(clients);
    // Soon (the keep-alives, every 2 s, find them gone) every slot is free
    // again: 100 new clients all stream.
    let mut again = Vec::new();
    wait_for(std::time::Duration::from_secs(20), "100 free slots", || {
        while again.len() < 100 {
            again.push(try_stream(run.addr, TcpStream::connect(run.addr).ok()?)?);
        }
        Some(())
    });
}

#[test]
fn streams_whose_clients_stop_reading_are_closed() {
    let (dir, cfg) = demo_world("[server]\nmax_streams = 2\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    // Two clients with a tiny receive buffer read the status line, then
    // nothing: the first snapshot (KBs) already fills their window.
    let stalled: Vec<Sse> = (0..2)
        .map(|_| {
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.set_recv_buffer_size(1024).unwrap();
            sock.connect(&run.addr.into()).unwrap();
            try_stream(run.addr, sock.into()).expect("a stream slot")
        })
        .collect();
    assert_eq!(get(run.addr, "/status/stream").status, 503);
    // Within the stall bound (10 s without the client taking data, counted
    // by the kernel's zero-window probes) their slots are free again.
    let mut fresh = None;
    wait_for(std::time::Duration::from_secs(60), "a free slot", || {
        fresh = try_stream(run.addr, TcpStream::connect(run.addr).ok()?);
        fresh.as_ref().map(|_| ())
    });
    // And the stalled connections were closed (reset), not left open.
    for mut s in stalled {
        s.reader
            .get_ref()
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut sink = Vec::new();
        let end = s.reader.read_to_end(&mut sink);
        assert!(
            end.as_ref().is_err_and(|e| !common::sse::timed_out(e)),
            "reset after {} bytes",
            sink.len()
        );
    }
}

/// `serve` with these arguments: its exit code and stderr, or a failure when
/// it still runs after 30 s (it must refuse to start at once).
fn refused(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("still running after 30 s: {args:?}");
        }
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (status.code(), err)
}

#[test]
fn endless_files_are_refused_by_name_with_the_cap() {
    let zero = Path::new("/dev/zero");
    // pynchy's .env, then its config.toml.
    for name in [".env", "config.toml"] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pynchy");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(zero, root.join(name)).unwrap();
        let (code, err) = refused(&["--pynchy-root".as_ref(), root.as_os_str()]);
        assert_eq!(code, Some(2), "{name}: {err}");
        let path = root.join(name);
        assert!(
            err.contains(&path.display().to_string()) && err.contains("larger than 1 MiB"),
            "{name}: {err}"
        );
    }
    // The gateway's CA file.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[gateway]\nca_file = \"/dev/zero\"\n").unwrap();
    let (code, err) = refused(&["--config".as_ref(), cfg.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("gateway.ca_file") && err.contains("/dev/zero is larger than 4 MiB"),
        "{err}"
    );
}
