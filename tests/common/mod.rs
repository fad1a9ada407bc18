//! Test helpers: start the real server on port 0 and speak raw HTTP/1.1 to it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pynchy_status::app::{Daemon, Running};
use pynchy_status::config::Config;
use pynchy_status::sections::{Schedule, Section};

/// A section a test adds beside the built-in ones, with its name and schedule.
pub trait Extra: Section<Body = serde_json::Value> {
    fn name(&self) -> &'static str;
    fn default_schedule(&self) -> Schedule;
}

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "PUT" || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    // Read the head, then exactly Content-Length bytes (or to the end).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).expect("read response");
        assert!(n > 0, "connection closed before the end of the headers");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let bodiless = method == "HEAD" || status == 304 || status == 204;
    match length {
        _ if bodiless => body.clear(),
        Some(len) => {
            while body.len() < len {
                let n = s.read(&mut buf).expect("read body");
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..n]);
            }
            body.truncate(len);
        }
        None => {
            s.read_to_end(&mut body).expect("read body");
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

pub fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let r = get(addr, path);
    assert_eq!(
        r.status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// The secrets tests configure through env vars, and their values.
pub const TEST_ENV: [(&str, &str); 4] = [
    ("PYNCHY_TEST_GATEWAY_KEY", "sk-standin-master-key-5f2a"),
    ("PST_INGEST_TOKEN_A", "s3cret-push-token"),
    ("PST_SERVER_TOKEN_T", "view-token-1"),
    ("PST_STREAM_TOKEN", "stream-secret"),
];

/// Sets [`TEST_ENV`] once per test process, as early as a daemon starts, so no
/// test changes the environment while others run (C code reading it, such as
/// libgit2's getenv, is not behind std's lock).
pub fn test_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (k, v) in TEST_ENV {
            std::env::set_var(k, v);
        }
    });
}

/// Starts a daemon for `config_toml` (paths relative to `dir`) plus extra sections.
pub fn start_in(dir: &Path, config_toml: &str, extra: Vec<Arc<dyn Extra>>) -> Running {
    test_env();
    let path = dir.join("pynchy-status.toml");
    std::fs::write(&path, config_toml).unwrap();
    let cfg = Config::load(&path).expect("config");
    let mut daemon = Daemon::new(cfg).expect("daemon");
    for s in extra {
        daemon = daemon.with_section(s.name(), s.default_schedule(), s);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    daemon.spawn(listener).expect("spawn")
}

/// Polls `f` every 20 ms until it returns Some, or panics after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Decodes gzip bytes.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

/// True when `CI=true`: a missing part is then a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Skips loudly outside CI, fails in CI.
pub fn missing_part(what: &str) {
    if in_ci() {
        panic!("CI=true and a part this test needs is missing: {what}");
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    let _ = std::io::stderr().write_all(
        format!("\n!!! SKIPPED: {what} is missing; run scripts/setup first !!!\n\n").as_bytes(),
    );
}

fn git_command(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs")
}

/// What the git CLI prints (trimmed), whether or not it succeeded.
pub fn git(dir: &Path, args: &[&str]) -> String {
    String::from_utf8_lossy(&git_command(dir, args).stdout)
        .trim()
        .to_string()
}

/// Runs the git CLI and insists that it succeeds.
pub fn git_ok(dir: &Path, args: &[&str]) {
    let out = git_command(dir, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file below `dir` with a hash of its contents.
pub fn checksums(dir: &Path, out: &mut std::collections::BTreeMap<std::path::PathBuf, u64>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            checksums(&p, out);
        } else {
            out.insert(
                p.clone(),
                xxhash_rust::xxh3::xxh3_64(&std::fs::read(&p).unwrap()),
            );
        }
    }
}
