//! The monitoring mixin against the real tools: `promtool check rules` and
//! `promtool test rules` on examples/prometheus, and Debian's real
//! `prometheus` server on loopback scraping the demo world every second.
//! After two scrapes, every query of the alert rules and of every Grafana
//! panel (examples/grafana) must return at least one series: a query that
//! returns nothing is a broken alert or panel.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn tool(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin").join(name);
    path.exists().then_some(path)
}

#[test]
fn promtool_checks_and_unit_tests_the_alerts() {
    let Some(promtool) = tool("promtool") else {
        return missing_part("promtool (Debian's prometheus package, from scripts/setup)");
    };
    let dir = examples().join("prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = output_within(
            Command::new(&promtool).args(&args).current_dir(&dir),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert has a unit test.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                tests.contains(&format!("alertname: {name}")),
                "{name} has no test"
            );
        }
    }
}

/// The LiteLLM proxy's wire format: one healthy and one unhealthy model.
fn litellm_stand_in() -> String {
    stand_in(|path| {
        let body = if path == "/health" {
            json!({"healthy_endpoints": [{"model": "openai/good"}],
                "unhealthy_endpoints": [{"model": "openai/bad"}],
                "healthy_count": 1, "unhealthy_count": 1})
        } else {
            json!({"status": "healthy"})
        };
        Answer::Json(body.to_string())
    })
}

/// `GET {path}?query={q}` against Prometheus' HTTP API: the result list.
fn query(prom: SocketAddr, q: &str) -> Vec<Value> {
    let mut enc = String::new();
    for b in q.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                enc.push(b as char)
            }
            _ => enc.push_str(&format!("%{b:02X}")),
        }
    }
    if TcpStream::connect(prom).is_err() {
        return Vec::new();
    }
    // The shared client decodes Prometheus' chunked answers.
    let body = get(prom, &format!("/api/v1/query?query={enc}")).body;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The part of an alert's expression that must return series whatever the
/// state: the selector left of a threshold, what `absent` looks for, each
/// side of an `or`.
fn alert_selectors(expr: &str) -> Vec<String> {
    let expr = expr
        .strip_prefix("absent(")
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or(expr);
    expr.split(" or ")
        .map(|part| {
            [" == ", " > ", " < ", " >= ", " <= ", " != "]
                .iter()
                .fold(part.to_string(), |p, op| {
                    p.split(op).next().unwrap_or("").to_string()
                })
                .trim()
                .to_string()
        })
        .collect()
}

#[test]
fn a_real_prometheus_finds_every_alert_and_panel_query() {
    let Some(prometheus) = tool("prometheus") else {
        return missing_part("prometheus (Debian's prometheus package, from scripts/setup)");
    };
    let litellm = litellm_stand_in();
    let (dir, cfg) = demo_world("");
    // An unpatched pynchy: its stand-in process; service and channels observed.
    let port = free_port();
    let pynchy = pynchy_status::demo::start_pynchy(
        std::path::Path::new(env!("CARGO_BIN_EXE_pynchy-status")),
        port,
        &dir.path().join("pynchy/data/messages.db"),
        true,
    )
    .unwrap();
    let cfg = cfg
        .replace(
            "[gateway]\nmode = \"none\"\n",
            &format!(
                "[gateway]\nmode = \"litellm\"\nurl = \"{litellm}\"\n\
                 docker_host = \"unix:///nonexistent/pynchy-status-prom.sock\"\n"
            ),
        )
        .replace(
            "url = \"http://127.0.0.1:9\"",
            &format!("url = \"http://{}\"", pynchy.addr),
        );
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    wait_for(Duration::from_secs(20), "pynchy observed", || {
        let d = get_json(run.addr, "/status");
        (d["service"]["status"] == "ok" && d["channels"]["connected"] == true).then_some(())
    });
    // The queue's groups_waiting panel needs a push (pynchy's memory alone knows it).
    push(
        run.addr,
        "queue",
        json!({"active_containers": 1, "max_concurrent": 4, "groups_waiting": 0, "per_group": {}}),
    );
    wait_for(Duration::from_secs(20), "the model check", || {
        let g = get_json(run.addr, "/status/gateway")["gateway"].clone();
        (g["unhealthy_models"] == json!(1)).then_some(())
    });

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prom: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let work = tempfile::tempdir().unwrap();
    let rules = examples().join("prometheus/alerts.yml");
    std::fs::write(
        work.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: pynchy-status\n    static_configs:\n      - targets: ['{}']\n",
            rules.display(),
            run.addr
        ),
    )
    .unwrap();
    let _prometheus = ChildGuard::spawn(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                work.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    // Two scrapes of the daemon, both up.
    wait_for(Duration::from_secs(60), "two scrapes", || {
        let r = query(prom, "count_over_time(up{job=\"pynchy-status\"}[1m]) >= 2");
        (!r.is_empty()).then_some(())
    });
    let up = query(prom, "up{job=\"pynchy-status\"}");
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0]["value"][1], json!("1"), "{up:?}");

    let mut queries: Vec<(String, String)> = Vec::new();
    let alerts = std::fs::read_to_string(&rules).unwrap();
    for line in alerts.lines() {
        if let Some(expr) = line.trim().strip_prefix("expr: ") {
            for sel in alert_selectors(expr) {
                queries.push((format!("alert `{expr}`"), sel));
            }
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(examples().join("grafana/pynchy-status.json")).unwrap(),
    )
    .unwrap();
    let instance = regex_quote(&run.addr.to_string());
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let title = panel["title"].as_str().unwrap();
            queries.push((
                format!("panel `{title}`"),
                expr.replace("$instance", &instance),
            ));
        }
    }
    let var = dashboard["templating"]["list"][1]["definition"]
        .as_str()
        .unwrap();
    assert_eq!(var, "label_values(pynchy_status_rollup, instance)");
    queries.push((
        "the instance variable".into(),
        "pynchy_status_rollup".into(),
    ));
    assert!(queries.len() > 20, "{queries:?}");
    // The demo has no LiteLLM, so no `pynchy_llm_*` series: those queries
    // are held by tests/llm.rs (every name in /metrics beside the LiteLLM
    // stand-in) and by promtool's unit tests of the alerts.
    queries.retain(|(_, q)| !q.contains("pynchy_llm_"));
    // Nor notify targets: tests/notify.rs checks those series in /metrics.
    queries.retain(|(_, q)| !q.contains("pynchy_status_notif"));
    let empty: Vec<String> = queries
        .iter()
        .filter(|(_, q)| query(prom, q).is_empty())
        .map(|(what, q)| format!("{what}: {q}"))
        .collect();
    assert!(empty.is_empty(), "queries with no series: {empty:#?}");
}

/// `s` as a regex matching itself (Grafana's `=~"$instance"`).
fn regex_quote(s: &str) -> String {
    s.chars()
        .map(|c| {
            if ".[]()*+?{}|^$\\".contains(c) {
                format!("\\\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}
