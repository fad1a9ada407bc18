//! No paid LLM calls while idle: the LiteLLM proxy's `/health` makes one real
//! request per model, so the gateway asks it once at start-up, then once per
//! `[gateway] models_interval` (10 min) or on `POST /refresh/gateway`, and
//! probes the free `/health/readiness` every interval. A stand-in speaking
//! the proxy's wire format counts the calls.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// A LiteLLM stand-in on loopback: `/health` answers one healthy model,
/// `/health/readiness` answers ready. Counts every path asked.
fn stand_in() -> (String, Counts) {
    let counts: Counts = Arc::default();
    let c = counts.clone();
    let url = common::stand_in(move |path| {
        *c.lock().unwrap().entry(path.to_string()).or_default() += 1;
        let body = match path {
            "/health" => json!({"healthy_endpoints": [{"model": "openai/m"}],
                "unhealthy_endpoints": [], "healthy_count": 1, "unhealthy_count": 0}),
            _ => json!({"status": "healthy", "db": "Not connected"}),
        };
        Answer::Json(body.to_string())
    });
    (url, counts)
}

fn count(c: &Counts, path: &str) -> u64 {
    c.lock().unwrap().get(path).copied().unwrap_or(0)
}

fn config(url: &str, extra: &str) -> String {
    format!(
        "[gateway]\nmode = \"litellm\"\nurl = \"{url}\"\nkey_env = \"PYNCHY_TEST_GATEWAY_KEY\"\n\
         docker_host = \"unix:///nonexistent/pynchy-status-models.sock\"\n{extra}\n\
         [sections.gateway]\ninterval = \"200ms\"\n"
    )
}

fn gateway(addr: std::net::SocketAddr) -> Value {
    get_json(addr, "/status/gateway")["gateway"].clone()
}

#[test]
fn the_model_check_runs_once_per_interval_not_per_poll() {
    let (url, counts) = stand_in();
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), &config(&url, "models_min_gap = \"0s\""), vec![]);
    // Many gateway collections (every 200 ms), one paid check.
    wait_for(Duration::from_secs(20), "15 readiness probes", || {
        (count(&counts, "/health/readiness") >= 15).then_some(())
    });
    assert_eq!(count(&counts, "/health"), 1, "{:?}", counts.lock().unwrap());
    let g = gateway(run.addr);
    assert_eq!(g["proxy"], json!("ready"));
    assert_eq!(g["healthy_models"], json!(1));
    let checked = g["models_checked_at"].as_str().unwrap().to_string();

    // On demand: one more, and the body says when.
    let r = request(run.addr, "POST", "/refresh/gateway", &[], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(count(&counts, "/health"), 2);
    assert_ne!(gateway(run.addr)["models_checked_at"], json!(checked));
    assert_eq!(
        request(run.addr, "POST", "/refresh/weather", &[], b"").status,
        404
    );
    assert_eq!(
        request(run.addr, "GET", "/refresh/gateway", &[], b"").status,
        405
    );
}

#[test]
fn off_means_never_and_says_nothing() {
    let (url, counts) = stand_in();
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(
        dir.path(),
        &config(&url, "models_interval = \"off\""),
        vec![],
    );
    wait_for(Duration::from_secs(20), "5 readiness probes", || {
        (count(&counts, "/health/readiness") >= 5).then_some(())
    });
    assert_eq!(count(&counts, "/health"), 0);
    let d = get_json(run.addr, "/status");
    assert_eq!(d["gateway"]["models_checked_at"], Value::Null);
    let model_reasons: Vec<&Value> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["section"] == "gateway" && r["reason"].as_str().unwrap_or("").contains("model")
        })
        .collect();
    assert!(model_reasons.is_empty(), "{model_reasons:?}");
}

#[test]
fn models_interval_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    for (value, expect) in [("\"100ms\"", "at least 1s"), ("\"sometimes\"", "off")] {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("[gateway]\nmodels_interval = {value}\n")).unwrap();
        let e = pynchy_status::config::Config::load(&path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("gateway.models_interval") && e.contains(expect),
            "{e}"
        );
    }
}

#[test]
fn a_check_that_never_reached_the_proxy_runs_again_once_it_is_up() {
    // At boot pynchy starts the proxy's container after this daemon: the
    // start-up check finds no one listening (it cost nothing, proved nothing).
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), &config(&url, ""), vec![]);
    wait_for(
        Duration::from_secs(10),
        "the first check, unreached",
        || (gateway(run.addr)["models_error"] == "gateway unreachable").then_some(()),
    );
    // A few collections later the proxy comes up: checked again at once,
    // not in 10 min.
    wait_collections(run.addr, &["gateway"], 3);
    let counts: Counts = Arc::default();
    let c = counts.clone();
    stand_in_on(
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
        move |path| {
            *c.lock().unwrap().entry(path.to_string()).or_default() += 1;
            let body = match path {
                "/health" => json!({"healthy_endpoints": [{"model": "openai/m"}],
                    "unhealthy_endpoints": [], "healthy_count": 1, "unhealthy_count": 0}),
                _ => json!({"status": "healthy", "db": "Not connected"}),
            };
            Answer::Json(body.to_string())
        },
    );
    wait_for(Duration::from_secs(10), "the check, reached", || {
        (gateway(run.addr)["healthy_models"] == 1).then_some(())
    });
    assert!(!has_reason(
        &get_json(run.addr, "/status"),
        "model health unknown"
    ));
    // Once reached, the interval holds: one paid check, however many polls.
    wait_for(Duration::from_secs(20), "10 readiness probes", || {
        (count(&counts, "/health/readiness") >= 10).then_some(())
    });
    assert_eq!(count(&counts, "/health"), 1, "{:?}", counts.lock().unwrap());
}

/// `POST /refresh/gateway` with these headers; the status code.
fn refresh_with(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> u16 {
    request(addr, "POST", "/refresh/gateway", headers, b"x").status
}

#[test]
fn refreshes_from_other_sites_are_refused_and_paid_checks_keep_their_gap() {
    let (url, counts) = stand_in();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_serve(dir.path(), &config(&url, ""), &[]);
    wait_for(Duration::from_secs(20), "the first check", || {
        (count(&counts, "/health") == 1 && count(&counts, "/health/readiness") >= 3).then_some(())
    });
    // A simple cross-site request (no preflight), and a fetch saying so.
    let evil = [
        ("Origin", "http://evil.example"),
        ("Content-Type", "text/plain"),
    ];
    assert_eq!(refresh_with(addr, &evil), 403);
    assert_eq!(refresh_with(addr, &[("Sec-Fetch-Site", "cross-site")]), 403);
    assert_eq!(refresh_with(addr, &[("Sec-Fetch-Site", "same-site")]), 403);
    // The page itself (same origin), and tools sending neither header.
    let own = format!("http://{addr}");
    assert_eq!(
        refresh_with(addr, &[("Origin", &own), ("Sec-Fetch-Site", "same-origin")]),
        200
    );
    // 50 refreshes within the minimum gap (1 min): answered, none paid.
    for _ in 0..50 {
        assert_eq!(refresh_with(addr, &[]), 200);
    }
    // 20 reloads: none paid (the last check is kept across a reload). Each is
    // seen applied by the gateway's interval alternating.
    let c = dir.path().join("c.toml");
    for i in 0..20 {
        let (from, to) = if i % 2 == 0 {
            ("200ms", "300ms")
        } else {
            ("300ms", "200ms")
        };
        let text = std::fs::read_to_string(&c).unwrap().replace(from, to);
        std::fs::write(&c, text).unwrap();
        signal(child.id(), "-HUP");
        let want = if to == "300ms" { 0.3 } else { 0.2 };
        wait_for(Duration::from_secs(20), "the reload", || {
            let d = get_json(addr, "/status");
            (d["meta"]["gateway"]["interval_seconds"] == json!(want)).then_some(())
        });
    }
    assert_eq!(count(&counts, "/health"), 1, "{:?}", counts.lock().unwrap());
    signal(child.id(), "-TERM");
    child.wait_within(Duration::from_secs(5));
}
