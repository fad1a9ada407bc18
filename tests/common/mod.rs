//! Test helpers: start the real server on port 0 and speak raw HTTP/1.1 to it,
//! wait on what the server shows (never on the clock), and guards that stop
//! whatever a test started even when an assertion fails.
#![allow(dead_code)]

pub mod books;
/// The one reader of a process's resident memory, shared with the benches.
#[path = "../../benches/support/proc.rs"]
pub mod proc;
pub mod sse;
#[allow(unused_imports)]
pub use sse::Sse;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pynchy_status::app::{Daemon, Running};
use pynchy_status::config::Config;
use pynchy_status::sections::{Schedule, Section};
use serde_json::{json, Value};

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
    pub fn json(&self) -> Value {
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
            let chunked = headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
            });
            if chunked {
                body = dechunk(&body);
            }
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

/// A chunked HTTP/1.1 body (Alertmanager answers so), decoded.
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol]).unwrap_or("0");
        let n =
            usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        let start = eol + 2;
        if n == 0 || rest.len() < start + n {
            break;
        }
        out.extend_from_slice(&rest[start..start + n]);
        rest = &rest[(start + n + 2).min(rest.len())..];
    }
    out
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

pub fn get_json(addr: SocketAddr, path: &str) -> Value {
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
    start_with(dir, config_toml, extra, |d| d)
}

/// [`start_in`], with `adjust` applied to the daemon before it starts (for
/// settings that are not in the config file, such as the keep-alive period).
pub fn start_with(
    dir: &Path,
    config_toml: &str,
    extra: Vec<Arc<dyn Extra>>,
    adjust: impl FnOnce(Daemon) -> Daemon,
) -> Running {
    test_env();
    let path = dir.join("pynchy-status.toml");
    std::fs::write(&path, config_toml).unwrap();
    let cfg = Config::load(&path).expect("config");
    let mut daemon = Daemon::new(cfg).expect("daemon");
    for s in extra {
        daemon = daemon.with_section(s.name(), s.default_schedule(), s);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    adjust(daemon).spawn(listener).expect("spawn")
}

/// Polls `f` every `every` until it returns Some; None once `limit` has passed.
pub fn poll<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Polls `f` every 20 ms until it returns Some, or panics after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll(limit, Duration::from_millis(20), f)
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Waits until `/readyz` says 200: every section has had its first attempt.
pub fn ready(addr: SocketAddr) {
    wait_for(Duration::from_secs(10), "first round", || {
        (get(addr, "/readyz").status == 200).then_some(())
    });
}

/// Waits until each of `sections` has been attempted at least `n` more times
/// than when this was called, as `/status` shows it (each new
/// `meta.<section>.attempted_at` is one more attempt; polls every 20 ms, so
/// attempts closer together than that count once, and the wait only runs
/// longer). Returns the `/status` document that showed the last of them.
///
/// A test that checks that nothing changed waits with this, not with a sleep:
/// "N more collections happened and nothing changed" holds on a slow machine too.
pub fn wait_collections(addr: SocketAddr, sections: &[&str], n: usize) -> Value {
    let attempted = |d: &Value, s: &str| d["meta"][s]["attempted_at"].as_str().map(String::from);
    let first = get_json(addr, "/status");
    let mut seen: BTreeMap<&str, (Option<String>, usize)> = sections
        .iter()
        .map(|s| (*s, (attempted(&first, s), 0)))
        .collect();
    // Generous: three times the slowest interval per attempt, plus start-up.
    let slowest = sections
        .iter()
        .map(|s| {
            first["meta"][*s]["interval_seconds"]
                .as_f64()
                .unwrap_or(1.0)
        })
        .fold(0.0, f64::max);
    let limit = Duration::from_secs(10) + Duration::from_secs_f64(slowest * 3.0 * n as f64);
    wait_for(
        limit,
        &format!("{n} more attempts of each of {sections:?}"),
        || {
            let d = get_json(addr, "/status");
            for (s, (last, count)) in seen.iter_mut() {
                let now = attempted(&d, s);
                if now.is_some() && now != *last {
                    *last = now;
                    *count += 1;
                }
            }
            seen.values().all(|(_, c)| *c >= n).then_some(d)
        },
    )
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

/// True when the `sqlite3` CLI (the ground truth of the database tests) is here.
pub fn sqlite3_present() -> bool {
    std::process::Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_ok()
}

/// What `sqlite3 -readonly` prints for `sql` on `db`, trimmed.
pub fn sqlite3_read(db: &Path, sql: &str) -> String {
    let out = std::process::Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `sql` with the sqlite3 CLI as a writer (on its standard input, so
/// a script starting with `--` comments is fine); its trimmed output.
pub fn sqlite3_write(db: &Path, sql: &str) -> String {
    let mut child = std::process::Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sqlite3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Skips loudly outside CI, fails in CI.
/// The image `scripts/dockerd` makes with `docker import` (busybox: `sh`,
/// `sleep`, `true`).
pub const TEST_IMAGE: &str = "pynchy-status-test/busybox:latest";

/// The tests' Docker daemon (`scripts/dockerd`'s, in `PYNCHY_TEST_DOCKER_HOST`)
/// when it answers; else None, said loudly ([`missing_part`]).
pub fn test_docker() -> Option<String> {
    let host = std::env::var("PYNCHY_TEST_DOCKER_HOST")
        .ok()
        .filter(|h| docker(h, &["version"]).is_some());
    if host.is_none() {
        missing_part("a Docker daemon (PYNCHY_TEST_DOCKER_HOST from scripts/dockerd)");
    }
    host
}

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

/// Every section is collected once an hour: after the first round the snapshot
/// holds still (the others fail: no repo, no database, and keep no deadline).
pub const STILL: &str = "[pynchy]\nurl = \"http://127.0.0.1:9\"\nsystemd_bus = \"off\"\n\
    [sections.service]\ninterval = \"1h\"\n\
    [sections.deploy]\ninterval = \"1h\"\n[sections.repos]\ninterval = \"1h\"\n\
    [sections.messages]\ninterval = \"1h\"\n[sections.tasks]\ninterval = \"1h\"\n\
    [sections.host_jobs]\ninterval = \"1h\"\n[sections.groups]\ninterval = \"1h\"\n";

/// A daemon on [`STILL`], ready: every section has had its first attempt, so
/// nothing changes now.
pub fn still() -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), STILL, vec![]);
    ready(run.addr);
    (dir, run)
}

/// The demo's world (repos with a conflict, a database with an overdue task
/// and 2 pending deliveries) and a config for it, with `extra` appended.
pub fn demo_world(extra: &str) -> (tempfile::TempDir, String) {
    // Before libgit2 runs in any test of the file: see test_env.
    test_env();
    let dir = tempfile::tempdir().unwrap();
    let checkout = pynchy_status::demo::build_git(dir.path()).unwrap();
    pynchy_status::demo::build_db(&checkout.join("data/messages.db")).unwrap();
    let cfg = format!(
        "[pynchy]\nroot = \"pynchy\"\nurl = \"http://127.0.0.1:9\"\nsystemd_bus = \"off\"\n[[repos]]\nslug = \"me/pynchy\"\npath = \"pynchy\"\nworktrees = \"pynchy/{}\"\n\
         [gateway]\nmode = \"none\"\n{extra}",
        pynchy_status::demo::WORKTREES
    );
    (dir, cfg)
}

/// The rollup's reasons as "section: reason" lines.
pub fn reasons(doc: &Value) -> Vec<String> {
    doc["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r["section"].as_str().unwrap(),
                r["reason"].as_str().unwrap()
            )
        })
        .collect()
}

/// True when some reason contains `needle`.
pub fn has_reason(doc: &Value, needle: &str) -> bool {
    reasons(doc).iter().any(|r| r.contains(needle))
}

/// `PUT /push/{section}` with `body`, which must be accepted.
pub fn push(addr: SocketAddr, section: &str, body: Value) {
    let r = request(
        addr,
        "PUT",
        &format!("/push/{section}"),
        &[],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Pushes a running pynchy's service state.
pub fn healthy_service(addr: SocketAddr) {
    push(
        addr,
        "service",
        json!({"status": "ok", "started_at": chrono::Utc::now().to_rfc3339()}),
    );
}

/// A child process a test started: killed and reaped when dropped, so that a
/// failed assertion leaves nothing running. Derefs to the [`Child`].
pub struct ChildGuard(Child);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<ChildGuard> {
        cmd.spawn().map(ChildGuard)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the exit; panics (and the guard kills it) after `limit`.
    pub fn wait_within(&mut self, limit: Duration) -> ExitStatus {
        let what = format!("process {} to exit", self.0.id());
        wait_for(limit, &what, || self.0.try_wait().expect("try_wait"))
    }

    /// What `Child::wait_with_output` gives (the piped stdout and stderr, read
    /// to their end), waiting at most `limit`.
    pub fn output_within(mut self, limit: Duration) -> Output {
        fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut v);
                }
                v
            })
        }
        drop(self.0.stdin.take());
        let stdout = drain(self.0.stdout.take());
        let stderr = drain(self.0.stderr.take());
        let status = self.wait_within(limit);
        Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }
}

impl Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Already ended and reaped: std then sends no signal.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `Command::output`, but the process is killed (and the test fails) if it
/// has not ended within `limit`: a command that hangs cannot hang the test run
/// or outlive it.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = ChildGuard::spawn(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child.output_within(limit)
}

/// The `docker` CLI against `host`: its trimmed stdout if it succeeded.
pub fn docker(host: &str, args: &[&str]) -> Option<String> {
    let bin = if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    };
    let out = Command::new(bin)
        .arg("-H")
        .arg(host)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Containers a test makes on a Docker daemon: each is removed (`docker rm -f`)
/// when this is dropped. Add a name before creating the container, so that a
/// half-made one goes too.
pub struct Containers {
    pub host: String,
    pub names: Vec<String>,
}

impl Containers {
    pub fn new(host: &str) -> Containers {
        Containers {
            host: host.to_string(),
            names: vec![],
        }
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = docker(&self.host, &["rm", "-f", n]);
        }
    }
}

/// Runs `pynchy-status check --url url args...` (with `env` set) and returns
/// its exit code and everything it printed.
pub fn check_command(url: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pynchy-status"));
    cmd.args(["check", "--url", url]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = output_within(&mut cmd, Duration::from_secs(30));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Sends `sig` (`"-HUP"`, `"-TERM"`, …) to process `pid` with the `kill`
/// command, which must succeed.
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// A unix socket in `dir` that accepts every connection and never answers
/// (a Docker daemon that hangs); its path.
pub fn silent_socket(dir: &Path) -> std::path::PathBuf {
    let sock = dir.join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    sock
}

/// A loopback port nobody listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary, `serve --config c.toml` in `dir`, listening on a free
/// loopback port: `config` is everything after `listen = …`, `env` is set
/// for it, stderr is piped (for tests reading the log). Returns once
/// `/livez` answers.
pub fn spawn_serve(dir: &Path, config: &str, env: &[(&str, &str)]) -> (ChildGuard, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    std::fs::write(dir.join("c.toml"), format!("listen = \"{addr}\"\n{config}")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pynchy-status"));
    cmd.args(["serve", "--config", "c.toml"])
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = ChildGuard::spawn(&mut cmd).unwrap();
    wait_for(Duration::from_secs(20), "the daemon", || {
        TcpStream::connect(addr).ok()?;
        (get(addr, "/livez").status == 200).then_some(())
    });
    (child, addr)
}

/// What a stand-in answers on a path.
#[derive(Clone)]
pub enum Answer {
    /// A JSON body, whole.
    Json(String),
    /// `200` with a chunked body that never ends (until the client leaves).
    Endless,
}

/// An HTTP server on loopback answering `route(path)` (the request's path),
/// one thread per client: a stand-in speaking an outside system's wire format.
pub fn stand_in(route: impl Fn(&str) -> Answer + Send + Sync + 'static) -> String {
    stand_in_on(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), route)
}

/// [`stand_in`] on a listener of the caller's (a port chosen before it listens).
pub fn stand_in_on(
    listener: std::net::TcpListener,
    route: impl Fn(&str) -> Answer + Send + Sync + 'static,
) -> String {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let route = std::sync::Arc::new(route);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let route = route.clone();
            std::thread::spawn(move || answer(stream, &*route));
        }
    });
    url
}

fn answer(stream: TcpStream, route: &dyn Fn(&str) -> Answer) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut h = String::new();
    while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
        h.clear();
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut s = stream;
    match route(&path) {
        Answer::Json(body) => {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Answer::Endless => {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "[".repeat(64 * 1024));
            // At most 4 GiB, then the server gives up: bounded either way.
            for _ in 0..65_536 {
                if s.write_all(chunk.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}
