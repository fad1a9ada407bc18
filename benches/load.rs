//! Load run: `/status` served from the snapshot against a bare actix-web handler
//! returning the same bytes from memory, in the same process and the same run.
//!
//! `cargo bench --bench load` (env: LOAD_SECONDS per round, default 5; LOAD_ROUNDS,
//! default 3). Loopback only, bounded in count and time. Prints requests/s and
//! latency percentiles for 64 connections and one client, and the ratios.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use pynchy_status::app::Daemon;
use pynchy_status::config::Config;
use pynchy_status::sections::{Schedule, Section, Work};

#[path = "support/client.rs"]
mod client;

/// Pads the document so `/status` is about 4 KB, like a real server's.
struct Padding(usize);

const PADDING: Schedule = Schedule::every(Duration::from_secs(3600), Duration::from_secs(1));

impl Section for Padding {
    type Body = serde_json::Value;
    fn collect(&self) -> Work<serde_json::Value> {
        let n = self.0;
        Work::future(async move { Ok(serde_json::json!({ "pad": "x".repeat(n) })) })
    }
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
        .with_section("padding", PADDING, Padding(0))
        .spawn(listener)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let size_now = rt.block_on(client::fetch(running.addr, "/status")).len();
    drop(running);
    // Restart with padding that brings the document to ~4 KB.
    let pad = 4096usize.saturating_sub(size_now + 16);
    let cfg = Config::load(&world.config_path).expect("config");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let running = Daemon::new(cfg)
        .unwrap()
        .with_section("padding", PADDING, Padding(pad))
        .spawn(listener)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status_addr = running.addr;
    let body = rt.block_on(client::fetch(status_addr, "/status"));

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
            let b = rt.block_on(client::drive(base_addr, &["/static"], conns, dur));
            let s = rt.block_on(client::drive(status_addr, &["/status"], conns, dur));
            errors += b.errors + s.errors;
            b_rps.push(b.rps());
            s_rps.push(s.rps());
            b_p50.push(b.p(0.5));
            s_p50.push(s.p(0.5));
            b_p99.push(b.p(0.99));
            s_p99.push(s.p(0.99));
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
