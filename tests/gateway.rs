//! gateway: container states from a real (private) dockerd, model health from a
//! stand-in LiteLLM on 127.0.0.1 that speaks the proxy's wire format
//! (its documented `/health` answer). The real proxy is in `tests/litellm_real.rs`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-standin-master-key-5f2a";

/// How the stand-in answers `/health`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Healthy,
    Empty,
    Error500,
    Garbage,
    Hang,
}

struct StandIn {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
}

fn respond(stream: &mut std::net::TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A LiteLLM stand-in: 401 without a key, 400 `no_db_connection` with a wrong
/// one, and with the master key a 200 shaped like the real proxy's.
fn stand_in(mode: Mode) -> StandIn {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mode = Arc::new(Mutex::new(mode));
    let m = mode.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let m = m.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut auth = None;
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let readiness = line.contains(" /health/readiness ");
                line.clear();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("authorization:") {
                        auth = Some(v.trim().to_string());
                    }
                    line.clear();
                }
                let mode = *m.lock().unwrap();
                if mode == Mode::Hang {
                    std::thread::sleep(Duration::from_secs(30));
                    return;
                }
                // The free probe: no key needed, no model asked.
                if readiness {
                    respond(
                        &mut stream,
                        "200 OK",
                        r#"{"status": "healthy", "db": "Not connected"}"#,
                    );
                    return;
                }
                match auth.as_deref() {
                    None => respond(
                        &mut stream,
                        "401 Unauthorized",
                        r#"{"error": {"message": "Authentication Error, No api key passed in.", "type": "auth_error", "param": "None", "code": "401"}}"#,
                    ),
                    Some(a) if a != format!("bearer {}", KEY.to_ascii_lowercase()) => respond(
                        &mut stream,
                        "400 Bad Request",
                        r#"{"error": {"message": "No connected db.", "type": "no_db_connection", "param": null, "code": "400"}}"#,
                    ),
                    Some(_) => match mode {
                        Mode::Healthy => respond(
                            &mut stream,
                            "200 OK",
                            &format!(
                                r#"{{"healthy_endpoints": [{{"api_base": "http://127.0.0.1:9/v1", "model": "openai/fast-local", "model_id": "a1"}}],
                               "unhealthy_endpoints": [{{"api_base": "http://127.0.0.1:1/v1", "model": "openai/dead-upstream", "model_id": "b2",
                                 "error": "litellm.APIConnectionError: Traceback (most recent call last): secret-upstream-detail",
                                 "exception_status": 500,
                                 "raw_request_typed_dict": {{"raw_request_api_base": "http://127.0.0.1:1/v1", "raw_request_body": {{}}, "raw_request_headers": {{"Authorization": "Bearer {KEY}"}}}}}}],
                               "healthy_count": 1, "unhealthy_count": 1}}"#
                            ),
                        ),
                        Mode::Empty => respond(&mut stream, "200 OK", "{}"),
                        Mode::Error500 => respond(
                            &mut stream,
                            "500 Internal Server Error",
                            r#"{"error": "boom secret-upstream-detail"}"#,
                        ),
                        Mode::Garbage => respond(
                            &mut stream,
                            "200 OK",
                            "<html>not json secret-upstream-detail",
                        ),
                        Mode::Hang => {}
                    },
                }
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest);
            });
        }
    });
    StandIn { addr, mode }
}

fn gateway_config(url: &str, docker_host: &str, extra: &str) -> String {
    format!(
        "[pynchy]\nroot = \"nowhere\"\n[gateway]\nmode = \"litellm\"\nurl = \"{url}\"\nkey_env = \"PYNCHY_TEST_GATEWAY_KEY\"\nmodels_interval = \"1s\"\nmodels_min_gap = \"0s\"\ndocker_host = \"{docker_host}\"\nlitellm_container = \"pst-none-litellm\"\npostgres_container = \"pst-none-db\"\n[sections.gateway]\ninterval = \"200ms\"\ntimeout = \"1s\"\n[sections.service]\ninterval = \"1h\"\n{extra}"
    )
}

fn gateway_once(addr: SocketAddr) -> Value {
    wait_for(Duration::from_secs(10), "gateway", || {
        let d = get_json(addr, "/status/gateway");
        d["meta"]["gateway"]["collected_at"]
            .is_string()
            .then_some(d)
    })
}

fn set_key() {
    // The key is in common::TEST_ENV, set once before any daemon starts.
    test_env();
    assert_eq!(std::env::var("PYNCHY_TEST_GATEWAY_KEY").as_deref(), Ok(KEY));
}

#[test]
fn model_counts_and_names_never_secrets() {
    set_key();
    let s = stand_in(Mode::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let cfg = gateway_config(
        &format!("http://{}", s.addr),
        "unix:///nonexistent/docker.sock",
        "",
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    let doc = gateway_once(run.addr);
    let g = &doc["gateway"];
    assert_eq!(g["mode"], "litellm");
    assert_eq!(g["healthy_models"], json!(1));
    assert_eq!(g["unhealthy_models"], json!(1));
    assert_eq!(g["unhealthy"], json!(["openai/dead-upstream"]));
    assert_eq!(g["models_error"], Value::Null);
    // No Docker here: unreachable, and the model counts are unaffected.
    assert_eq!(g["docker"], "unreachable");
    assert_eq!(g["litellm_container"], "unreachable");
    let all = String::from_utf8(get(run.addr, "/status").body).unwrap();
    for secret in [
        KEY,
        "secret-upstream-detail",
        "127.0.0.1:1/v1",
        "api_base",
        "raw_request",
    ] {
        assert!(!all.contains(secret), "{secret} leaked into /status");
    }
}

#[test]
fn unknown_counts_are_null_not_zero() {
    set_key();
    let s = stand_in(Mode::Empty);
    let dir = tempfile::tempdir().unwrap();
    let cfg = gateway_config(
        &format!("http://{}", s.addr),
        "unix:///nonexistent/docker.sock",
        "",
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    let expect = |mode: Mode, err: &str| {
        *s.mode.lock().unwrap() = mode;
        let d = wait_for(Duration::from_secs(5), err, || {
            let d = get_json(run.addr, "/status/gateway");
            d["gateway"]["models_error"]
                .as_str()
                .is_some_and(|e| e.contains(err))
                .then_some(d)
        });
        assert_eq!(d["gateway"]["healthy_models"], Value::Null, "{mode:?}");
        assert_eq!(d["gateway"]["unhealthy_models"], Value::Null, "{mode:?}");
        assert_eq!(d["gateway"]["unhealthy"], Value::Null, "{mode:?}");
        assert!(!d.to_string().contains("secret-upstream-detail"));
        assert_eq!(
            d["meta"]["gateway"]["error"],
            Value::Null,
            "the section itself is fine"
        );
    };
    expect(Mode::Empty, "no model counts");
    expect(Mode::Error500, "HTTP 500");
    expect(Mode::Garbage, "not valid JSON");
    expect(Mode::Hang, "did not answer");
    // And back: counts return within an interval.
    *s.mode.lock().unwrap() = Mode::Healthy;
    wait_for(Duration::from_secs(5), "recovery", || {
        let d = get_json(run.addr, "/status/gateway");
        (d["gateway"]["healthy_models"] == json!(1)).then_some(())
    });
}

#[test]
fn wrong_or_missing_key_is_an_http_error() {
    let s = stand_in(Mode::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let cfg = gateway_config(
        &format!("http://{}", s.addr),
        "unix:///nonexistent/docker.sock",
        "",
    )
    .replace("PYNCHY_TEST_GATEWAY_KEY", "PYNCHY_TEST_GATEWAY_KEY_UNSET");
    let run = start_in(dir.path(), &cfg, vec![]);
    let g = gateway_once(run.addr)["gateway"].clone();
    assert_eq!(g["models_error"], json!("gateway answered HTTP 401"));
    assert_eq!(g["healthy_models"], Value::Null);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = gateway_config(
        &format!("http://{closed}"),
        "unix:///nonexistent/docker.sock",
        "",
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    let g = gateway_once(run.addr)["gateway"].clone();
    assert_eq!(g["models_error"], json!("gateway unreachable"));
}

#[test]
fn builtin_and_none_modes_are_the_mode_alone() {
    for mode in ["builtin", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!("[gateway]\nmode = \"{mode}\"\n[sections.service]\ninterval = \"1h\"\n");
        let run = start_in(dir.path(), &cfg, vec![]);
        assert_eq!(gateway_once(run.addr)["gateway"], json!({ "mode": mode }));
    }
}

#[test]
fn docker_that_accepts_and_never_answers_is_unreachable_without_delaying_models() {
    set_key();
    let dir = tempfile::tempdir().unwrap();
    let sock = silent_socket(dir.path());
    let s = stand_in(Mode::Healthy);
    let cfg = gateway_config(
        &format!("http://{}", s.addr),
        &format!("unix://{}", sock.display()),
        "",
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    let d = gateway_once(run.addr);
    assert_eq!(d["gateway"]["docker"], "unreachable");
    assert_eq!(d["gateway"]["litellm_container"], "unreachable");
    assert_eq!(d["gateway"]["healthy_models"], json!(1));
    // Both ran at once: the attempt took about one timeout, not two.
    let ms = d["meta"]["gateway"]["duration_ms"].as_f64().unwrap();
    assert!(ms < 1000.0, "{ms} ms");
}

/// The private dockerd from `scripts/dockerd`, if it answers.
const IMAGE: &str = TEST_IMAGE;

#[test]
fn container_states_match_docker_inspect() {
    set_key();
    let Some(host) = test_docker() else {
        return;
    };
    let tag = format!(
        "pst{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let name = |s: &str| format!("{tag}-{s}");
    // Every container made here is removed when the test ends, however it
    // ends (common::Containers; each name is added before it is created).
    let mut c = Containers::new(&host);
    fn run_args(n: &str) -> Vec<&str> {
        vec![
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            n,
            IMAGE,
            "sleep",
            "600",
        ]
    }
    let (running, exited, created, paused) = (
        name("running"),
        name("exited"),
        name("created"),
        name("paused"),
    );
    for (state, steps) in [
        ("running", vec![run_args(&running)]),
        (
            "exited",
            vec![vec![
                "run",
                "--network",
                "none",
                "--name",
                &exited,
                IMAGE,
                "true",
            ]],
        ),
        (
            "created",
            vec![vec![
                "create",
                "--network",
                "none",
                "--name",
                &created,
                IMAGE,
                "sleep",
                "600",
            ]],
        ),
        ("paused", vec![run_args(&paused), vec!["pause", &paused]]),
    ] {
        c.names.push(name(state));
        for step in steps {
            let refs: Vec<&str> = step.to_vec();
            assert!(docker(&host, &refs).is_some(), "docker {refs:?}");
        }
    }
    let s = stand_in(Mode::Healthy);
    for (litellm, postgres) in [
        ("running", "exited"),
        ("created", "paused"),
        ("running", "missing"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = gateway_config(&format!("http://{}", s.addr), &host, "")
            .replace("pst-none-litellm", &name(litellm))
            .replace("pst-none-db", &name(postgres));
        let run = start_in(dir.path(), &cfg, vec![]);
        let g = gateway_once(run.addr)["gateway"].clone();
        let truth = |n: &str| {
            docker(&host, &["inspect", "-f", "{{.State.Status}}", &name(n)])
                .unwrap_or("not_found".into())
        };
        assert_eq!(g["litellm_container"], json!(truth(litellm)), "{litellm}");
        assert_eq!(
            g["postgres_container"],
            json!(truth(postgres)),
            "{postgres}"
        );
        assert_eq!(g["docker"], "ok");
    }
    assert_eq!(
        docker(
            &host,
            &["inspect", "-f", "{{.State.Status}}", &name("paused")]
        )
        .unwrap(),
        "paused"
    );
}
