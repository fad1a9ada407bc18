//! Load run: `/status` served from the snapshot against a bare actix-web handler
//! returning the same bytes from memory, in the same process and the same run.
//!
//! `cargo bench --bench load` (env: LOAD_SECONDS per round, default 5; LOAD_ROUNDS,
//! default 3). Loopback only, bounded in count and time. Prints requests/s and
//! latency percentiles for 64 connections and one client, and the ratios.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;
use pynchy_status::app::Daemon;
use pynchy_status::config::Config;
use pynchy_status::sections::{Schedule, Section, Work};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Pads the document so `/status` is about 4 KB, like a real server's.
struct Padding(usize);

impl Section for Padding {
    fn name(&self) -> &'static str {
        "padding"
    }
    fn default_schedule(&self) -> Schedule {
        Schedule::every(Duration::from_secs(3600), Duration::from_secs(1))
    }
    fn collect(&self) -> Work {
        let n = self.0;
        Work::future(async move { Ok(serde_json::json!({ "pad": "x".repeat(n) })) })
    }
}

async fn one_request(
    stream: &mut BufReader<TcpStream>,
    req: &[u8],
    line: &mut String,
    body: &mut Vec<u8>,
) -> std::io::Result<()> {
    stream.get_mut().write_all(req).await?;
    let mut len = 0usize;
    let mut first = true;
    loop {
        line.clear();
        if stream.read_line(line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if first {
            if !line.starts_with("HTTP/1.1 200") {
                return Err(std::io::Error::other(format!("bad status: {line}")));
            }
            first = false;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line
            .strip_prefix("content-length:")
            .or_else(|| line.strip_prefix("Content-Length:"))
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    body.resize(len, 0);
    stream.read_exact(body).await?;
    Ok(())
}

struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}

async fn drive(addr: SocketAddr, path: &str, conns: usize, dur: Duration) -> Run {
    let req: Arc<[u8]> = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
        .into_bytes()
        .into();
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(200_000);
            let mut errors = 0u64;
            let Ok(s) = TcpStream::connect(addr).await else {
                return (lat, 1);
            };
            let _ = s.set_nodelay(true);
            let mut s = BufReader::new(s);
            let (mut line, mut body) = (String::new(), Vec::new());
            while Instant::now() < deadline {
                let t = Instant::now();
                match one_request(&mut s, &req, &mut line, &mut body).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u32),
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    Run {
        rps: all.len() as f64 / secs,
        p50_us: pct(&all, 0.5),
        p99_us: pct(&all, 0.99),
        errors,
    }
}

async fn fetch_status(addr: SocketAddr) -> Bytes {
    let mut s = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
    let (mut l, mut b) = (String::new(), Vec::new());
    one_request(
        &mut s,
        b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut l,
        &mut b,
    )
    .await
    .expect("GET /status");
    Bytes::from(b)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs a short smoke run.
    let bench = std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 5.0 } else { 0.3 });
    let rounds: usize = std::env::var("LOAD_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 3 } else { 1 });

    // The real daemon on the demo world, padded to ~4 KB.
    let world = pynchy_status::demo::build("127.0.0.1:0").expect("demo world");
    let cfg = Config::load(&world.config_path).expect("config");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let running = Daemon::new(cfg)
        .unwrap()
        .with_section(Arc::new(Padding(0)))
        .spawn(listener)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let size_now = rt.block_on(fetch_status(running.addr)).len();
    drop(running);
    // Restart with padding that brings the document to ~4 KB.
    let pad = 4096usize.saturating_sub(size_now + 16);
    let cfg = Config::load(&world.config_path).expect("config");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let running = Daemon::new(cfg)
        .unwrap()
        .with_section(Arc::new(Padding(pad)))
        .spawn(listener)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status_addr = running.addr;
    let body = rt.block_on(fetch_status(status_addr));

    // The baseline: the same bytes from a bare handler, same worker count.
    let base_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_addr = base_listener.local_addr().unwrap();
    let static_body = body.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let b = static_body.clone();
            HttpServer::new(move || {
                let b = b.clone();
                App::new().route(
                    "/static",
                    web::get().to(move || {
                        let b = b.clone();
                        async move { HttpResponse::Ok().content_type("application/json").body(b) }
                    }),
                )
            })
            .workers(2)
            .disable_signals()
            .listen(base_listener)
            .unwrap()
            .run()
            .await
        })
    });
    std::thread::sleep(Duration::from_millis(300));

    println!(
        "load run: /status body {} bytes, {rounds} rounds of {secs}s, loopback",
        body.len()
    );
    let dur = Duration::from_secs_f64(secs);
    for conns in [64usize, 1] {
        let (mut b_rps, mut s_rps, mut b_p50, mut s_p50, mut b_p99, mut s_p99) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut errors = 0;
        assert!(rounds > 0, "LOAD_ROUNDS must be at least 1");
        for _ in 0..rounds {
            let b = rt.block_on(drive(base_addr, "/static", conns, dur));
            let s = rt.block_on(drive(status_addr, "/status", conns, dur));
            errors += b.errors + s.errors;
            b_rps.push(b.rps);
            s_rps.push(s.rps);
            b_p50.push(b.p50_us);
            s_p50.push(s.p50_us);
            b_p99.push(b.p99_us);
            s_p99.push(s.p99_us);
        }
        let ratios: Vec<f64> = s_rps.iter().zip(&b_rps).map(|(s, b)| s / b).collect();
        let p99_ratios: Vec<f64> = s_p99.iter().zip(&b_p99).map(|(s, b)| s / b).collect();
        println!(
            "{conns:>3} conn  static: {:>9.0} req/s p50 {:>5.0} us p99 {:>6.0} us | /status: {:>9.0} req/s p50 {:>5.0} us p99 {:>6.0} us | ratio req/s {:.3} (median of rounds), p99 {:.3} | errors {errors}",
            median(b_rps.clone()),
            median(b_p50.clone()),
            median(b_p99.clone()),
            median(s_rps.clone()),
            median(s_p50.clone()),
            median(s_p99.clone()),
            median(ratios),
            median(p99_ratios),
        );
        assert_eq!(errors, 0, "requests failed during the load run");
    }
    drop(running);
    drop(world);
}
