//! The gateway section against the real LiteLLM proxy (installed by
//! `scripts/litellm`, started here offline on 127.0.0.1): one model served by a
//! local OpenAI-compatible stub (healthy), one pointing at a closed port
//! (unhealthy). Checks the counts, the unhealthy name, and that neither the key
//! nor any upstream error text reaches `/status` or the daemon's log.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const MASTER_KEY: &str = "sk-pynchy-status-real-master-7d1c";
const UPSTREAM_KEY: &str = "sk-upstream-never-shown-93ab";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type Calls = std::sync::Arc<std::sync::atomic::AtomicUsize>;

/// An OpenAI-compatible upstream: answers `POST /v1/chat/completions`,
/// counting those calls (paid requests, were it real).
fn openai_stub() -> (u16, Calls) {
    let calls = Calls::default();
    let counted = calls.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 2 {
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        line.clear();
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let answer = if first.contains("/chat/completions") {
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        json!({
                            "id": "chatcmpl-stub", "object": "chat.completion", "created": 1_700_000_000,
                            "model": "good-model",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": "pong"}}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                        })
                        .to_string()
                    } else {
                        json!({"object": "list", "data": []}).to_string()
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                }
            });
        }
    });
    (port, calls)
}

/// The real proxy's executable (`scripts/litellm`), or a loud skip (a
/// failure with CI=true) when it is not installed.
fn litellm_bin() -> Option<String> {
    let Ok(litellm) = std::env::var("PYNCHY_TEST_LITELLM") else {
        missing_part("the LiteLLM proxy (PYNCHY_TEST_LITELLM from scripts/litellm)");
        return None;
    };
    if !std::path::Path::new(&litellm).exists() {
        missing_part(&format!("the LiteLLM proxy at {litellm}"));
        return None;
    }
    Some(litellm)
}

/// The real proxy on `port`, with `litellm.yaml` in `dir`; killed when the
/// guard drops, however the test ends. Returns once it answers.
fn start_proxy(litellm: &str, dir: &std::path::Path, port: u16) -> ChildGuard {
    let log = std::fs::File::create(dir.join("litellm.log")).unwrap();
    let proxy = ChildGuard::spawn(
        Command::new(litellm)
            .args([
                "--config",
                "litellm.yaml",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .current_dir(dir)
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("NO_PROXY", "*")
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    )
    .expect("litellm starts");
    let proxy_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(
        Duration::from_secs(90),
        "the LiteLLM proxy to answer",
        || {
            std::net::TcpStream::connect(proxy_addr).ok()?;
            (request(proxy_addr, "GET", "/health/liveliness", &[], b"").status == 200).then_some(())
        },
    );
    proxy
}

#[test]
fn real_litellm_counts_names_and_no_secrets() {
    let Some(litellm) = litellm_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stub, _) = openai_stub();
    let closed = free_port();
    let port = free_port();
    std::fs::write(
        dir.path().join("litellm.yaml"),
        format!(
            "model_list:\n\
             \x20 - model_name: local-good\n\
             \x20   litellm_params:\n\
             \x20     model: openai/good-model\n\
             \x20     api_base: http://127.0.0.1:{stub}/v1\n\
             \x20     api_key: {UPSTREAM_KEY}\n\
             \x20 - model_name: local-dead\n\
             \x20   litellm_params:\n\
             \x20     model: openai/dead-model\n\
             \x20     api_base: http://127.0.0.1:{closed}/v1\n\
             \x20     api_key: {UPSTREAM_KEY}\n\
             general_settings:\n\
             \x20 master_key: {MASTER_KEY}\n"
        ),
    )
    .unwrap();
    let _proxy = start_proxy(&litellm, dir.path(), port);

    let listen = free_port();
    std::fs::write(
        dir.path().join("status.toml"),
        format!(
            "listen = \"127.0.0.1:{listen}\"\n[pynchy]\nroot = \"nowhere\"\n\
             [gateway]\nmode = \"litellm\"\nurl = \"http://127.0.0.1:{port}\"\nkey_env = \"PST_REAL_KEY\"\n\
             docker_host = \"unix:///nonexistent.sock\"\n[sections.gateway]\ninterval = \"1s\"\ntimeout = \"5s\"\n"
        ),
    )
    .unwrap();
    let daemon_log = dir.path().join("daemon.log");
    let _daemon = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
            .args(["serve", "--config", "status.toml"])
            .current_dir(dir.path())
            .env("PST_REAL_KEY", MASTER_KEY)
            .env("RUST_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&daemon_log).unwrap()),
    )
    .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
    let g = wait_for(
        Duration::from_secs(60),
        "model counts from the real proxy",
        || {
            std::net::TcpStream::connect(addr).ok()?;
            let d = get_json(addr, "/status/gateway");
            d["gateway"]["healthy_models"].is_u64().then_some(d)
        },
    );
    let gw = &g["gateway"];
    assert_eq!(gw["healthy_models"], json!(1), "{g}");
    assert_eq!(gw["unhealthy_models"], json!(1), "{g}");
    assert_eq!(gw["unhealthy"], json!(["openai/dead-model"]), "{g}");
    let status = String::from_utf8(get(addr, "/status").body).unwrap();
    let logged = std::fs::read_to_string(&daemon_log).unwrap();
    for secret in [
        MASTER_KEY,
        UPSTREAM_KEY,
        &format!("127.0.0.1:{closed}"),
        "Traceback",
        "raw_request",
    ] {
        assert!(!status.contains(secret), "{secret} in /status");
        assert!(!logged.contains(secret), "{secret} in the daemon's log");
    }
}

/// The `llm` section beside the real proxy without a database, as pynchy's
/// tests can run it offline: "spend tracking off" and no reason; the
/// provider budget of `provider_budget_config` and a deployment's
/// `max_budget` read from the proxy's memory; and, from the proxy's own
/// access log, no LLM call, no paid `/health`, no heavy `/spend/logs`, and
/// nothing database-backed asked after the first readiness answer.
#[test]
fn real_litellm_without_a_database_spend_tracking_off() {
    let Some(litellm) = litellm_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stub, chat_calls) = openai_stub();
    let port = free_port();
    std::fs::write(
        dir.path().join("litellm.yaml"),
        format!(
            "model_list:\n\
             \x20 - model_name: local-good\n\
             \x20   litellm_params:\n\
             \x20     model: openai/good-model\n\
             \x20     api_base: http://127.0.0.1:{stub}/v1\n\
             \x20     api_key: {UPSTREAM_KEY}\n\
             \x20     max_budget: 25.0\n\
             \x20     budget_duration: 1d\n\
             \x20   model_info:\n\
             \x20     id: good-deployment\n\
             router_settings:\n\
             \x20 cooldown_time: 600\n\
             \x20 allowed_fails: 1\n\
             \x20 provider_budget_config:\n\
             \x20   openai:\n\
             \x20     budget_limit: 50.0\n\
             \x20     time_period: 1d\n\
             general_settings:\n\
             \x20 master_key: {MASTER_KEY}\n"
        ),
    )
    .unwrap();
    let _proxy = start_proxy(&litellm, dir.path(), port);
    let config = format!(
        "[pynchy]\nurl = \"http://127.0.0.1:9\"\nsystemd_bus = \"off\"\n\
         [gateway]\nmode = \"litellm\"\nurl = \"http://127.0.0.1:{port}\"\nkey_env = \"PST_REAL_KEY\"\n\
         models_interval = \"off\"\ndocker_host = \"unix:///nonexistent.sock\"\n\
         [sections.llm]\ninterval = \"1s\"\ntimeout = \"10s\"\n"
    );
    let (_daemon, addr) = spawn_serve(dir.path(), &config, &[("PST_REAL_KEY", MASTER_KEY)]);
    let l = wait_for(Duration::from_secs(60), "the llm section's budgets", || {
        let l = get_json(addr, "/status/llm")["llm"].clone();
        (l["state"] == "spend_tracking_off" && l["budgets"].as_array()?.len() == 2).then_some(l)
    });
    let budget = |kind: &str| {
        l["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["kind"] == kind)
            .unwrap()
            .clone()
    };
    let p = budget("provider");
    assert_eq!(
        (p["name"].clone(), p["limit"].clone()),
        (json!("openai"), json!(50.0)),
        "{l}"
    );
    assert_eq!(p["period"], "1d");
    let d = budget("deployment");
    assert_eq!(d["limit"], 25.0, "{l}");
    assert_eq!(d["approximate"], true);
    assert_eq!(l["cooldown_time_seconds"], 600.0, "{l}");
    assert!(l["spend"].is_null() && l["totals"].is_null(), "{l}");
    // A few more collections, then what the proxy was asked.
    let mut last = l["as_of"].clone();
    for _ in 0..3 {
        last = wait_for(Duration::from_secs(30), "one more collection", || {
            let now = get_json(addr, "/status/llm")["llm"]["as_of"].clone();
            (now != last).then_some(now)
        });
    }
    let status = get_json(addr, "/status");
    let llm_reasons: Vec<&Value> = status["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["section"] == "llm")
        .collect();
    assert!(
        llm_reasons.is_empty(),
        "spend tracking off is no reason: {llm_reasons:?}"
    );
    assert_eq!(
        chat_calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "an LLM call was made"
    );
    let log = std::fs::read_to_string(dir.path().join("litellm.log")).unwrap();
    let asked: Vec<&str> = log.lines().filter(|l| l.contains("\"GET /")).collect();
    assert!(
        asked.iter().any(|l| l.contains("GET /provider/budgets")),
        "the proxy's access log shows no request: {}",
        &log[log.len().saturating_sub(3000)..]
    );
    // Without a database: the memory reads once (within budgets_interval),
    // then only the free readiness probe.
    let count = |path: &str| {
        asked
            .iter()
            .filter(|l| l.contains(&format!("GET {path} ")))
            .count()
    };
    assert_eq!(
        (
            count("/provider/budgets"),
            count("/model/info"),
            count("/router/settings")
        ),
        (1, 1, 1),
        "{asked:#?}"
    );
    assert!(count("/health/readiness") >= 4, "{asked:#?}");
    for line in &asked {
        for never in [
            "GET /health ",
            "GET /health?",
            "GET /spend/",
            "GET /global/",
            "GET /key/",
            "GET /user/",
        ] {
            assert!(!line.contains(never), "asked {never}: {line}");
        }
    }
}
