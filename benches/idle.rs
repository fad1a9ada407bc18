//! What an unchanged world costs, and how soon a change shows: the release
//! daemon beside a big pynchy install — one repo of 20,000 tracked files with
//! 5 linked worktrees (six full checkouts) and 1,000,000 messages — with
//! default settings, nobody asking, in event mode and in polling mode
//! (`[watch] enabled = false`), same run. Also the demo world.
//!
//! Reports CPU time per minute (the scheduler's count per thread, in ns, after a
//! warm-up) as a share of one core; the time from a change to `/status` (p50
//! and max over the trials) for a file edited in a worktree, a commit on a
//! worktree branch and a message inserted; and for a `git checkout` switching
//! every file of one worktree, how many collections it caused and the CPU;
//! and, beside the demo world, a container stopped and started (the Docker
//! daemon of `scripts/dockerd`, PYNCHY_TEST_DOCKER_HOST).
//!
//! `cargo bench --bench idle` (IDLE_SECONDS per measurement, default 60;
//! IDLE_TRIALS, default 20). Beside the demo world, its stand-in pynchy
//! runs (probed as an unpatched pynchy is); its process killed and a new one
//! started, and an agent container started and removed, each until `/status`
//! shows it. Under `cargo test` a small world and short runs.
//! Loopback only; bounded in time and count.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Size {
    files: usize,
    worktrees: usize,
    messages: u64,
    seconds: u64,
    trials: usize,
}

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@b")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@b")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sqlite(db: &Path, sql: &str) -> String {
    use std::io::Write;
    let mut c = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A pynchy install: the repo at the root, its worktrees under data/worktrees.
fn big_world(root: &Path, size: &Size) -> Vec<PathBuf> {
    std::fs::create_dir_all(root).unwrap();
    run(root, &["git", "init", "-q", "-b", "main"]);
    std::fs::write(root.join(".gitignore"), "data/\nconfig.toml\n.env\n").unwrap();
    for i in 0..size.files {
        let d = root.join(format!("src/m{:03}", i / 100));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}.py")), format!("X = {i}\n")).unwrap();
    }
    run(root, &["git", "add", "-A"]);
    run(root, &["git", "commit", "-qm", "big"]);
    // A branch rewriting every file, for the checkout measurement.
    run(root, &["git", "checkout", "-q", "-b", "rewrite"]);
    for i in 0..size.files {
        let f = root.join(format!("src/m{:03}/f{i}.py", i / 100));
        std::fs::write(f, format!("X = {}\n", i + 1)).unwrap();
    }
    run(root, &["git", "commit", "-qam", "rewrite"]);
    run(root, &["git", "checkout", "-q", "main"]);
    let mut wts = Vec::new();
    for n in 0..size.worktrees {
        let p = root.join(format!("data/worktrees/acme/big/agent{n}"));
        let b = format!("worktree/agent{n}");
        run(
            root,
            &[
                "git",
                "worktree",
                "add",
                "-q",
                "-b",
                &b,
                p.to_str().unwrap(),
                "main",
            ],
        );
        wts.push(p);
    }
    std::fs::write(
        root.join("config.toml"),
        "[repos.\"acme/big\"]\npath = \".\"\n",
    )
    .unwrap();
    let db = root.join("data/messages.db");
    let sql = format!(
        "{}\nBEGIN;\nWITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {})\n\
         INSERT INTO messages SELECT 'm' || x, 'chat' || (x % 50), 'u', 'User', 'text ' || x,\n\
         strftime('%Y-%m-%dT%H:%M:%S+00:00', 1700000000 + x * 30, 'unixepoch'), x % 4 = 3, 'user', NULL FROM n;\nCOMMIT;",
        pynchy_status::demo::SCHEMA,
        size.messages
    );
    sqlite(&db, &sql);
    wts
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis the state is field 3, so utime
    // (field 14) and stime (field 15) are the 12th and 13th words.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

const TICKS_PER_SECOND: f64 = 100.0;

struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn get(addr: SocketAddr, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return serde_json::Value::Null;
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

fn start(root: &Path, poll: bool) -> Daemon {
    start_with(root, poll, "")
}

fn start_with(root: &Path, poll: bool, extra: &str) -> Daemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bin = std::env::var("PYNCHY_STATUS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pynchy-status").to_string());
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--listen", &addr.to_string(), "--pynchy-root"])
        .arg(root);
    let cfg = root
        .parent()
        .unwrap()
        .join(if poll { "poll.toml" } else { "event.toml" });
    std::fs::write(&cfg, format!("[watch]\nenabled = {}\n{extra}", !poll)).unwrap();
    cmd.arg("--config").arg(&cfg);
    let child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon { child, addr };
    let t = Instant::now();
    while get(addr, "/readyz")["ready"] != serde_json::json!(true) {
        assert!(t.elapsed() < Duration::from_secs(120), "daemon not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    d
}

/// CPU time of every thread of `pid`, in ns, from `/proc/<pid>/task/*/schedstat`
/// (the scheduler's own count: no 10 ms tick).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Share of one core over `secs`: the scheduler's count (ns) where it is
/// there, else utime + stime (10 ms ticks). Threads that end inside the window
/// are missed by the first; the runtime keeps its blocking threads 10 min.
fn idle_cpu(d: &Daemon, secs: u64) -> f64 {
    let pid = d.child.id();
    let (ns, ticks) = (cpu_ns(pid), cpu_ticks(pid));
    std::thread::sleep(Duration::from_secs(secs));
    let (ns2, ticks2) = (cpu_ns(pid), cpu_ticks(pid));
    if ns > 0 {
        (ns2.saturating_sub(ns)) as f64 / 1e9 / secs as f64 * 100.0
    } else {
        (ticks2 - ticks) as f64 / TICKS_PER_SECOND / secs as f64 * 100.0
    }
}

/// Time until `check` holds on `/status`, after `change` ran (at most 30 s).
fn latency(
    addr: SocketAddr,
    change: impl FnOnce(),
    check: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    change();
    let t = Instant::now();
    while !check(&get(addr, "/status")) {
        if t.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.0} ms, max {:.0} ms ({} trials)",
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        v.len()
    )
}

fn latencies(root: &Path, wts: &[PathBuf], d: &Daemon, trials: usize) {
    let wt = &wts[0];
    let dirty =
        |v: &serde_json::Value| v["repos"]["acme/big"]["worktrees"]["agent0"]["dirty"].clone();
    let ahead =
        |v: &serde_json::Value| v["repos"]["acme/big"]["worktrees"]["agent0"]["ahead"].as_u64();
    let (mut edit, mut commit, mut message) = (vec![], vec![], vec![]);
    let db = root.join("data/messages.db");
    for i in 0..trials {
        let f = wt.join("src/m000/f0.py");
        edit.push(latency(
            d.addr,
            || std::fs::write(&f, format!("X = {i}!\n")).unwrap(),
            |v| dirty(v) == serde_json::json!(true),
        ));
        let before = ahead(&get(d.addr, "/status")).unwrap_or(0);
        commit.push(latency(
            d.addr,
            || run(wt, &["git", "commit", "-qam", "t"]),
            |v| ahead(v) == Some(before + 1),
        ));
        let n = get(d.addr, "/status")["messages"]["total_inbound"]
            .as_u64()
            .unwrap_or(0);
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sql = format!("INSERT INTO messages VALUES ('b{id}','chat1','u','U','x','2026-11-28T00:00:00+00:00',0,'user',NULL);");
        message.push(latency(
            d.addr,
            || {
                sqlite(&db, &sql);
            },
            |v| v["messages"]["total_inbound"].as_u64() == Some(n + 1),
        ));
    }
    println!(
        "    file edited in a worktree -> dirty:      {}",
        stats(edit)
    );
    println!(
        "    commit on a worktree branch -> ahead:    {}",
        stats(commit)
    );
    println!(
        "    message inserted -> total_inbound:       {}",
        stats(message)
    );
}

/// A `git checkout` rewriting every file of one worktree: collections of
/// `repos` it caused (distinct `attempted_at`s seen) and CPU spent.
fn checkout_cost(wts: &[PathBuf], d: &Daemon) {
    let wt = &wts[wts.len() - 1];
    let before_cpu = cpu_ticks(d.child.id());
    let attempted = || get(d.addr, "/status")["meta"]["repos"]["attempted_at"].clone();
    let first = attempted();
    let mut seen = std::collections::BTreeSet::new();
    let t = Instant::now();
    run(wt, &["git", "checkout", "-q", "rewrite"]);
    let git_took = t.elapsed();
    while t.elapsed() < git_took + Duration::from_secs(3) {
        let a = attempted();
        if a != first {
            seen.insert(a.to_string());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu = (cpu_ticks(d.child.id()) - before_cpu) as f64 / TICKS_PER_SECOND;
    println!(
        "    git checkout rewriting every file of one worktree ({:.1} s): {} collections, {:.2} CPU s (10 ms resolution)",
        git_took.as_secs_f64(),
        seen.len(),
        cpu
    );
    run(
        wt,
        &["git", "checkout", "-q", "-B", "worktree/agent4", "main"],
    );
}

fn docker(host: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A container stopped (`docker stop -t 0`) and started again: time until
/// `gateway.litellm_container` shows its new state. Needs the private
/// dockerd of `scripts/dockerd` (PYNCHY_TEST_DOCKER_HOST); says so if absent.
fn container_latency(root: &Path, poll: bool, trials: usize) {
    let Some(host) = std::env::var("PYNCHY_TEST_DOCKER_HOST")
        .ok()
        .filter(|h| docker(h, &["version"]).is_some())
    else {
        let why = "SKIPPED: container rows need a Docker daemon (PYNCHY_TEST_DOCKER_HOST from scripts/dockerd)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        println!("    !!! {why} !!!");
        return;
    };
    let tag = format!("psidle{}{}", std::process::id(), u8::from(poll));
    let names = [format!("{tag}-litellm"), format!("{tag}-db")];
    for n in &names {
        let args = ["run", "-d", "--network", "none", "--name", n];
        let img = ["pynchy-status-test/busybox:latest", "sleep", "3600"];
        let all: Vec<&str> = args.iter().chain(img.iter()).copied().collect();
        assert!(docker(&host, &all).is_some(), "docker run {n}");
    }
    let extra = format!(
        "[gateway]\nmode = \"litellm\"\nurl = \"http://127.0.0.1:9\"\nmodels_interval = \"off\"\n\
         docker_host = \"{host}\"\nlitellm_container = \"{}\"\npostgres_container = \"{}\"\n",
        names[0], names[1]
    );
    let d = start_with(root, poll, &extra);
    let state = |v: &serde_json::Value| v["gateway"]["litellm_container"].clone();
    let (mut stop, mut start) = (vec![], vec![]);
    for _ in 0..trials {
        let t = Instant::now();
        while state(&get(d.addr, "/status")) != serde_json::json!("running") {
            assert!(t.elapsed() < Duration::from_secs(60), "never running");
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.push(latency(
            d.addr,
            || assert!(docker(&host, &["stop", "-t", "0", &names[0]]).is_some()),
            |v| state(v) != serde_json::json!("running"),
        ));
        start.push(latency(
            d.addr,
            || assert!(docker(&host, &["start", &names[0]]).is_some()),
            |v| state(v) == serde_json::json!("running"),
        ));
    }
    drop(d);
    for n in &names {
        let _ = docker(&host, &["rm", "-f", n]);
    }
    println!(
        "    container stopped -> state:              {}",
        stats(stop)
    );
    println!(
        "    container started -> running:            {}",
        stats(start)
    );
}

/// The stand-in pynchy's process ending (SIGKILL) and a new one taking its
/// port, each until `/status` shows it; and, with Docker, an agent container
/// started and stopped until the queue shows it.
fn pynchy_latency(world: &pynchy_status::demo::World, trials: usize) {
    let bin = std::env::var("PYNCHY_STATUS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pynchy-status").to_string());
    let mut pynchy = Some(world.start_pynchy(Path::new(&bin)).unwrap());
    let d = start(&world.pynchy_root(), false);
    let status = |v: &serde_json::Value| v["service"]["status"].clone();
    let (mut died, mut back) = (vec![], vec![]);
    for _ in 0..trials {
        let t = Instant::now();
        while status(&get(d.addr, "/status")) != serde_json::json!("ok") {
            assert!(t.elapsed() < Duration::from_secs(60), "pynchy never ok");
            std::thread::sleep(Duration::from_millis(10));
        }
        died.push(latency(
            d.addr,
            || drop(pynchy.take()),
            |v| status(v) == serde_json::json!("down"),
        ));
        back.push(latency(
            d.addr,
            || pynchy = Some(world.start_pynchy(Path::new(&bin)).unwrap()),
            |v| status(v) == serde_json::json!("ok"),
        ));
    }
    println!(
        "    pynchy killed -> service down:            {}",
        stats(died)
    );
    println!(
        "    new pynchy on its port -> ok:             {}",
        stats(back)
    );
    drop(d);
    let Some(host) = std::env::var("PYNCHY_TEST_DOCKER_HOST")
        .ok()
        .filter(|h| docker(h, &["version"]).is_some())
    else {
        return;
    };
    let folder = format!("psidle{}", std::process::id());
    let ipc = world.pynchy_root().join("data/ipc").join(&folder);
    std::fs::create_dir_all(&ipc).unwrap();
    let name = format!("pynchy-{folder}");
    let mount = format!("{}:/workspace/ipc", ipc.display());
    let extra = format!("[gateway]\nmode = \"none\"\ndocker_host = \"{host}\"\n");
    let d = start_with(&world.pynchy_root(), false, &extra);
    let group = |v: &serde_json::Value| v["queue"]["per_group"][&folder]["active"].clone();
    let (mut up, mut down) = (vec![], vec![]);
    for _ in 0..trials {
        up.push(latency(
            d.addr,
            || {
                let args = [
                    "run",
                    "-d",
                    "--network",
                    "none",
                    "--name",
                    &name,
                    "-v",
                    &mount,
                ];
                let img = ["pynchy-status-test/busybox:latest", "sleep", "3600"];
                let all: Vec<&str> = args.iter().chain(img.iter()).copied().collect();
                assert!(docker(&host, &all).is_some(), "docker run {name}");
            },
            |v| group(v) == serde_json::json!(true),
        ));
        down.push(latency(
            d.addr,
            || assert!(docker(&host, &["rm", "-f", &name]).is_some()),
            |v| group(v) != serde_json::json!(true),
        ));
    }
    let _ = docker(&host, &["rm", "-f", &name]);
    println!("    agent container started -> queue:        {}", stats(up));
    println!(
        "    agent container removed -> queue:        {}",
        stats(down)
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let size = if bench {
        Size {
            files: 20_000,
            worktrees: 5,
            messages: 1_000_000,
            seconds: env("IDLE_SECONDS", 60),
            trials: env("IDLE_TRIALS", 20) as usize,
        }
    } else {
        Size {
            files: 200,
            worktrees: 2,
            messages: 1_000,
            seconds: 2,
            trials: 2,
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pynchy");
    let t = Instant::now();
    // IDLE_WORLDS=demo measures the demo world alone.
    let big = std::env::var("IDLE_WORLDS").map_or(true, |w| w != "demo");
    let wts = if big {
        big_world(&root, &size)
    } else {
        Vec::new()
    };
    if big {
        println!(
            "idle: {} files x {} checkouts, {} messages (built in {:.0} s)",
            size.files,
            size.worktrees + 1,
            size.messages,
            t.elapsed().as_secs_f64()
        );
    }
    // IDLE_MODES=events (or polling) measures one mode only.
    let modes = std::env::var("IDLE_MODES").unwrap_or_default();
    let wanted = |poll: bool| modes.is_empty() || modes == if poll { "polling" } else { "events" };
    for poll in [false, true].into_iter().filter(|p| big && wanted(*p)) {
        let d = start(&root, poll);
        std::thread::sleep(Duration::from_secs(if bench { 10 } else { 1 }));
        let cpu = idle_cpu(&d, size.seconds);
        let mode = if poll { "polling" } else { "events" };
        println!(
            "  {mode}: idle {cpu:.2} % of one core over {} s",
            size.seconds
        );
        // Polling takes up to an interval (15 s for repos) per trial: fewer.
        let trials = match (poll, bench) {
            (false, _) => size.trials,
            (true, true) => size.trials.min(5),
            (true, false) => 0,
        };
        if trials > 0 {
            latencies(&root, &wts, &d, trials);
        }
        checkout_cost(&wts, &d);
    }
    let world = pynchy_status::demo::build("127.0.0.1:0").unwrap();
    // The demo's unpatched pynchy: probed every 10 s, /health every minute.
    let bin = std::env::var("PYNCHY_STATUS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pynchy-status").to_string());
    let pynchy = world.start_pynchy(Path::new(&bin)).unwrap();
    for poll in [false, true].into_iter().filter(|p| wanted(*p)) {
        let d = start(&world.pynchy_root(), poll);
        std::thread::sleep(Duration::from_secs(if bench { 10 } else { 1 }));
        let cpu = idle_cpu(&d, size.seconds);
        let mode = if poll { "polling" } else { "events" };
        println!(
            "  demo world, {mode}: idle {cpu:.3} % of one core over {} s",
            size.seconds
        );
        drop(d);
        let trials = match (poll, bench) {
            (false, _) => size.trials,
            (true, true) => size.trials.min(5),
            (true, false) => 0,
        };
        if trials > 0 {
            container_latency(&world.pynchy_root(), poll, trials);
        }
    }
    drop(pynchy);
    if wanted(false) {
        pynchy_latency(&world, size.trials);
    }
}
