//! Bursts of idle connections and what they leave behind: the release daemon
//! (gateway off, no repos) takes ten bursts of BURST_CONNECTIONS (default
//! 15,000) loopback connections that send nothing, each held for a second and
//! then closed; after each burst the daemon gets 6 s to drop what it no
//! longer needs (its idle connections time out after 5 s). Reports the
//! daemon's RSS at start, at its highest and at the end, for the default
//! `[server] max_connections` (512) and, as the baseline in the same run,
//! for max_connections = 1,000,000 (what actix allows per worker by default).
//!
//! `cargo bench --bench burst`. Under `cargo test`: 200 connections, 2
//! bursts. Loopback only; bounded in count and time.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/proc.rs"]
mod proc;
use proc::rss_kib;

/// This process's soft limit on open files.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ready(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

fn start(dir: &std::path::Path, max_connections: usize) -> (Daemon, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = dir.join(format!("burst-{max_connections}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "listen = \"{addr}\"\n[pynchy]\nroot = \".\"\n[gateway]\nmode = \"none\"\n\
             [server]\nmax_connections = {max_connections}\n"
        ),
    )
    .unwrap();
    let bin = std::env::var("PYNCHY_STATUS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pynchy-status").to_string());
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&cfg)
        .current_dir(dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon(child);
    let t = Instant::now();
    while !ready(addr) {
        assert!(t.elapsed() < Duration::from_secs(60), "daemon not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (d, addr)
}

/// Opens up to `n` connections from 8 threads, each thread stopping after 3
/// connects in a row that take over a second (the daemon's accept queue is
/// full: it takes no more), holds them a second, closes them. Returns how
/// many were opened.
fn burst(addr: SocketAddr, n: usize) -> usize {
    const THREADS: usize = 8;
    let opened: Vec<Vec<TcpStream>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(move || {
                    let mut open = Vec::with_capacity(n / THREADS + 1);
                    let mut misses = 0;
                    while open.len() < n / THREADS && misses < 3 {
                        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                            Ok(s) => {
                                open.push(s);
                                misses = 0;
                            }
                            Err(_) => misses += 1,
                        }
                    }
                    open
                })
            })
            .collect();
        workers.into_iter().filter_map(|w| w.join().ok()).collect()
    });
    std::thread::sleep(Duration::from_secs(1));
    opened.iter().map(Vec::len).sum()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let wanted: usize = std::env::var("BURST_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 15_000 } else { 200 });
    // Our side of each connection is one open file.
    let n = wanted.min(open_files_limit().saturating_sub(200));
    let (bursts, settle) = if bench {
        (10, Duration::from_secs(6))
    } else {
        (2, Duration::from_secs(1))
    };
    let dir = tempfile::tempdir().unwrap();
    println!("burst: {bursts} bursts of {n} idle connections, {settle:?} between");
    // BURST_MAX=256,512 measures other settings (the baseline always runs).
    let mut maxes: Vec<usize> = std::env::var("BURST_MAX")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![pynchy_status::config::defaults::MAX_CONNECTIONS]);
    maxes.push(1_000_000);
    for max in maxes {
        let (d, addr) = start(dir.path(), max);
        std::thread::sleep(Duration::from_secs(1));
        let pid = d.0.id();
        let first = rss_kib(pid);
        let mut peak = first;
        let mut opened = 0;
        for _ in 0..bursts {
            opened += burst(addr, n);
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(settle);
            peak = peak.max(rss_kib(pid));
        }
        let end = rss_kib(pid);
        assert!(ready(addr), "the daemon still answers");
        println!(
            "  max_connections = {max}: RSS start {:.1} MiB, peak {:.1} MiB, end {:.1} MiB \
             (end/start {:.2}); {opened} connections opened",
            first as f64 / 1024.0,
            peak as f64 / 1024.0,
            end as f64 / 1024.0,
            end as f64 / first.max(1) as f64
        );
    }
}
