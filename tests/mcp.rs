//! The `mcp` section against the private dockerd of scripts/dockerd:
//! containers named `pynchy-mcp-*` (running, exited, and one its restart
//! policy keeps restarting) as `docker inspect` itself tells them; the
//! restarting one raises `mcp_restarting`, the exited one nothing; other
//! containers are not listed; outside `litellm` mode the section is empty;
//! Docker away is the section's error.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn config(host: &str, mode: &str) -> String {
    format!(
        "[pynchy]\nroot = \".\"\n[gateway]\nmode = \"{mode}\"\nurl = \"http://127.0.0.1:9\"\n\
         models_interval = \"off\"\ndocker_host = \"{host}\"\n\
         [sections.mcp]\ninterval = \"300ms\"\n[rollup]\nmcp_restarts_max = 1\n"
    )
}

fn inspect(host: &str, name: &str, format: &str) -> String {
    docker(host, &["inspect", "-f", format, name]).unwrap_or_default()
}

#[test]
fn mcp_containers_as_docker_tells_them() {
    let Some(host) = test_docker() else {
        return;
    };
    let tag = format!("t{}", std::process::id());
    let (up, done, flappy, other) = (
        format!("pynchy-mcp-{tag}-up"),
        format!("pynchy-mcp-{tag}-done"),
        format!("pynchy-mcp-{tag}-flappy"),
        format!("pynchy-{tag}-agent"),
    );
    let mut c = Containers::new(&host);
    let image = TEST_IMAGE;
    for (name, restart, cmd) in [
        (&up, "no", vec!["sleep", "600"]),
        (&done, "no", vec!["true"]),
        (&flappy, "always", vec!["sh", "-c", "sleep 0.2; exit 1"]),
        (&other, "no", vec!["sleep", "600"]),
    ] {
        c.names.push(name.clone());
        let mut args = vec![
            "run",
            "-d",
            "--network",
            "none",
            "--restart",
            restart,
            "--name",
            name,
            image,
        ];
        args.extend(cmd);
        assert!(docker(&host, &args).is_some(), "docker run {name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), &config(&host, "litellm"), vec![]);
    // The flappy one restarts (Docker backs off: 100 ms, doubling).
    let body = wait_for(Duration::from_secs(30), "restarts seen", || {
        let d = get_json(run.addr, "/status/mcp");
        let b = d["mcp"].clone();
        let restarts = b[&flappy]["restarts_last_hour"].as_u64().unwrap_or(0);
        let exited = b[&done]["state"] == json!("exited");
        (restarts >= 2 && exited).then_some(d)
    });
    let b = &body["mcp"];
    assert!(
        b.get(&other).is_none(),
        "{other} is not an MCP container: {b:#}"
    );
    // Ground truth: docker inspect, for the two that hold still.
    for name in [&up, &done] {
        assert_eq!(
            b[name]["state"],
            json!(inspect(&host, name, "{{.State.Status}}"))
        );
        assert_eq!(
            b[name]["restart_count"],
            json!(inspect(&host, name, "{{.RestartCount}}")
                .parse::<u64>()
                .unwrap())
        );
        let started = inspect(&host, name, "{{.State.StartedAt}}");
        let ours = b[name]["started_at"].as_str().unwrap_or("");
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(ours).ok(),
            chrono::DateTime::parse_from_rfc3339(&started).ok(),
            "{name}: {ours} vs {started}"
        );
        assert_eq!(b[name]["health"], Value::Null);
    }
    assert_eq!(b[&up]["state"], json!("running"));
    let count = inspect(&host, &flappy, "{{.RestartCount}}")
        .parse::<u64>()
        .unwrap();
    assert!(b[&flappy]["restart_count"].as_u64().unwrap() <= count);
    // The flapping one is a reason; the exited one is normal.
    let d = get_json(run.addr, "/status");
    let mine: Vec<String> = reasons(&d)
        .into_iter()
        .filter(|r| r.contains(&tag))
        .collect();
    assert!(
        mine.iter()
            .all(|r| r.starts_with(&format!("mcp: MCP container {flappy}"))),
        "{mine:?}"
    );
    assert!(!mine.is_empty(), "{:?}", reasons(&d));
    let m = String::from_utf8(get(run.addr, "/metrics").body).unwrap();
    assert!(
        m.contains(&format!(
            "pynchy_mcp_container_running{{container=\"{up}\",state=\"running\"}} 1"
        )),
        "{m}"
    );
    drop(run);

    // Outside litellm mode there are no MCP containers to speak of.
    let run = start_in(dir.path(), &config(&host, "builtin"), vec![]);
    ready(run.addr);
    assert_eq!(get_json(run.addr, "/status/mcp")["mcp"], json!({}));
}

#[test]
fn docker_away_is_the_sections_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("unix:///nonexistent/pynchy-status-mcp.sock", "litellm");
    let run = start_in(dir.path(), &cfg, vec![]);
    let d = wait_for(Duration::from_secs(10), "the error", || {
        let d = get_json(run.addr, "/status/mcp");
        d["meta"]["mcp"]["error"].is_string().then_some(d)
    });
    assert_eq!(
        d["meta"]["mcp"]["error"],
        json!("Docker socket /nonexistent/pynchy-status-mcp.sock does not exist")
    );
    assert_eq!(d["mcp"], Value::Null);
}
