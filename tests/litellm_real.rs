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
use serde_json::json;

const MASTER_KEY: &str = "sk-pynchy-status-real-master-7d1c";
const UPSTREAM_KEY: &str = "sk-upstream-never-shown-93ab";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An OpenAI-compatible upstream: answers `POST /v1/chat/completions`.
fn openai_stub() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
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
    port
}

#[test]
fn real_litellm_counts_names_and_no_secrets() {
    let Ok(litellm) = std::env::var("PYNCHY_TEST_LITELLM") else {
        return missing_part("the LiteLLM proxy (PYNCHY_TEST_LITELLM from scripts/litellm)");
    };
    if !std::path::Path::new(&litellm).exists() {
        return missing_part(&format!("the LiteLLM proxy at {litellm}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let stub = openai_stub();
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
    let log = std::fs::File::create(dir.path().join("litellm.log")).unwrap();
    // Both killed when the test ends, however it ends.
    let _proxy = ChildGuard::spawn(
        Command::new(&litellm)
            .args([
                "--config",
                "litellm.yaml",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .current_dir(dir.path())
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
