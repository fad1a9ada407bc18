//! Soak run: the real binary serving the demo world with every poller at 1 s,
//! driven at full rate on `/status`, `/health` and `/status/repos` from a Rust
//! keep-alive client over loopback for SOAK_SECONDS (default 60), while the
//! sample pynchy state is pushed every 5 s. Reports requests/s, p50/p99/max,
//! errors (must be 0) and the daemon's RSS at start and end (growth < 10%).
//!
//! `cargo bench --bench soak`. Bounded in time and count; stops by itself.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/client.rs"]
mod client;
#[path = "support/proc.rs"]
mod proc;
use proc::rss_kib;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let secs: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 60 } else { 2 })
        .clamp(1, 600);
    let conns: usize = if bench { 64 } else { 4 };

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let world = pynchy_status::demo::build(&listen).expect("demo world");
    let every_second: String = [
        "deploy",
        "repos",
        "messages",
        "tasks",
        "host_jobs",
        "groups",
        "gateway",
        "channels",
        "queue",
    ]
    .iter()
    .map(|n| format!("[sections.{n}]\ninterval = \"1s\"\n"))
    .collect();
    let mut cfg = std::fs::read_to_string(&world.config_path).unwrap();
    cfg = cfg.replace("[sections.service]\ninterval = \"1s\"\n", "");
    cfg.push_str("[sections.service]\ninterval = \"1s\"\n");
    cfg.push_str(&every_second);
    std::fs::write(&world.config_path, cfg).unwrap();
    // PYNCHY_STATUS_BIN: soak another build of the binary (comparing release profiles).
    let bin = std::env::var("PYNCHY_STATUS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pynchy-status").to_string());
    let mut daemon = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&world.config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the daemon starts");
    let addr: SocketAddr = listen.parse().unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "daemon did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started_at = chrono::Utc::now() - chrono::Duration::hours(2);
    let push_all = || {
        for (section, body) in pynchy_status::demo::sample_pushes(started_at) {
            let _ = pynchy_status::demo::push(addr, section, &body);
        }
    };
    push_all();
    let pusher_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pusher = {
        let stop = pusher_stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (section, body) in pynchy_status::demo::sample_pushes(started_at) {
                    let _ = pynchy_status::demo::push(addr, section, &body);
                }
                std::thread::sleep(Duration::from_secs(5));
            }
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Warm up, then take the starting RSS.
    rt.block_on(client::drive(
        addr,
        &["/status"],
        conns,
        Duration::from_secs(2),
    ));
    let rss_start = rss_kib(daemon.id());
    let run = rt.block_on(client::drive(
        addr,
        &["/status", "/health", "/status/repos"],
        conns,
        Duration::from_secs(secs),
    ));
    let rss_end = rss_kib(daemon.id());
    pusher_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = pusher.join();
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let exit = daemon.wait().unwrap();
    let growth = (rss_end as f64 - rss_start as f64) / rss_start.max(1) as f64 * 100.0;
    println!(
        "soak: {secs}s, {conns} connections, /status + /health + /status/repos, every poller at 1s"
    );
    println!(
        "  {} requests, {:.0} req/s, p50 {} us, p99 {} us, max {} us, errors {}",
        run.requests,
        run.rps(),
        run.p(0.5),
        run.p(0.99),
        run.hist.max(),
        run.errors
    );
    println!(
        "  daemon RSS {:.1} MiB at start, {:.1} MiB at end ({growth:+.1}%), exit {exit}",
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    assert_eq!(run.errors, 0, "requests failed");
    assert!(growth < 10.0, "RSS grew {growth:.1}%");
    assert!(exit.success(), "the daemon exits 0 on SIGTERM");
    drop(world);
}
