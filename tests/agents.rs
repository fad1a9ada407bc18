//! `queue` without a push, from Docker: busybox containers on the private
//! dockerd of scripts/dockerd, named and mounted as pynchy names and mounts
//! its agent containers (`pynchy-<folder>` with `data/ipc/<folder>` at
//! `/workspace/ipc`; `pynchy-<folder>-<epoch ms>` for a task's run). Each
//! group's containers equal what `docker inspect` says; the LiteLLM pair, an
//! MCP container and a container without the IPC mount are never counted;
//! a container started or stopped shows at once (Docker's event stream).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const IMAGE: &str = TEST_IMAGE;

fn inspect(host: &str, name: &str, format: &str) -> String {
    docker(host, &["inspect", "-f", format, name]).unwrap_or_default()
}

/// `docker run -d` of `name`, sleeping, with `ipc` (a folder) mounted at
/// `/workspace/ipc` when given.
fn run_container(c: &mut Containers, name: &str, ipc: Option<&std::path::Path>) {
    c.names.push(name.to_string());
    let mount = ipc.map(|p| format!("{}:/workspace/ipc", p.display()));
    let mut args = vec!["run", "-d", "--network", "none", "--name", name];
    if let Some(m) = &mount {
        args.extend(["-v", m.as_str()]);
    }
    args.extend([IMAGE, "sleep", "600"]);
    assert!(docker(&c.host, &args).is_some(), "docker run {name}");
}

fn queue(addr: std::net::SocketAddr) -> Value {
    get_json(addr, "/status/queue")["queue"].clone()
}

#[test]
fn agent_containers_as_docker_tells_them() {
    let Some(host) = test_docker() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("t{}", std::process::id());
    let (chat, ops) = (format!("{tag}_chat"), format!("{tag}-ops"));
    let ipc = |f: &str| {
        let p = dir.path().join("data/ipc").join(f);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let mut c = Containers::new(&host);
    // pynchy writes `_` as `-` in names; the mount says the folder exactly.
    let session = format!("pynchy-{}", chat.replace('_', "-"));
    let task = format!("pynchy-{ops}-1767225600000");
    run_container(&mut c, &session, Some(&ipc(&chat)));
    run_container(&mut c, &task, Some(&ipc(&ops)));
    // Never agents: no IPC mount; an MCP server's name.
    run_container(&mut c, &format!("pynchy-{tag}-x"), None);
    run_container(&mut c, &format!("pynchy-mcp-{tag}"), Some(&ipc("mcp")));
    let cfg = format!(
        "[pynchy]\nroot = \".\"\nurl = \"http://127.0.0.1:{}\"\nsystemd_bus = \"off\"\n\
         max_concurrent = 3\ncontainer_timeout = \"1h\"\n\
         [gateway]\nmode = \"none\"\ndocker_host = \"{host}\"\n",
        free_port()
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    let q = wait_for(Duration::from_secs(15), "both groups", || {
        let q = queue(run.addr);
        (q["per_group"][&chat]["active"] == true && q["per_group"][&ops]["active"] == true)
            .then_some(q)
    });
    assert_eq!(q["source"], "observed");
    assert_eq!(q["docker"], "ok");
    assert_eq!(q["max_concurrent"], 3);
    assert_eq!(q["groups_waiting"], Value::Null);
    // Only ours run on this daemon's test image among pynchy-* names? Other
    // tests may run theirs: count only this test's groups.
    let mine: Vec<&String> = q["per_group"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.contains(&tag))
        .collect();
    assert_eq!(mine.len(), 2, "{q:#}");
    for (folder, name, kind) in [(&chat, &session, "session"), (&ops, &task, "task")] {
        let g = &q["per_group"][folder];
        assert_eq!(g["is_task"], json!(kind == "task"));
        assert_eq!(g["pending_tasks"], Value::Null);
        let list = g["containers"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{g:#}");
        let k = &list[0];
        assert_eq!(k["name"], json!(name));
        assert_eq!(k["kind"], kind);
        assert_eq!(k["state"], json!(inspect(&host, name, "{{.State.Status}}")));
        let truth = inspect(&host, name, "{{.State.StartedAt}}");
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(k["started_at"].as_str().unwrap()).ok(),
            chrono::DateTime::parse_from_rfc3339(&truth).ok()
        );
    }
    // Stopped: gone at once (the event stream); the group, not a registered
    // one, with it.
    assert!(docker(&host, &["stop", "-t", "0", &task]).is_some());
    let gone = poll(Duration::from_secs(5), Duration::from_millis(20), || {
        let q = queue(run.addr);
        (q["per_group"].get(&ops).is_none() && q["active_containers"] == 1).then_some(())
    });
    assert!(
        gone.is_some(),
        "the task's container still there: {:#}",
        get_json(run.addr, "/status/queue")
    );
    // Started again: back at once.
    assert!(docker(&host, &["start", &task]).is_some());
    wait_for(Duration::from_secs(5), "the task's container back", || {
        let g = queue(run.addr)["per_group"][&ops].clone();
        (g["containers"].as_array().is_some_and(|l| l.len() == 1)).then_some(())
    });
    // Nothing here runs past pynchy's timeout: no reason from the queue.
    let d = get_json(run.addr, "/status");
    assert!(
        reasons(&d).iter().all(|r| !r.starts_with("queue:")),
        "{:?}",
        reasons(&d)
    );
    drop(run);

    // With a 1 s timeout and no slack, the task's container is stuck.
    let cfg = cfg.replace(
        "container_timeout = \"1h\"",
        "container_timeout = \"1s\"\nagent_slack = \"0s\"",
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    let d = wait_for(Duration::from_secs(15), "agent_overrun", || {
        let d = get_json(run.addr, "/status");
        has_reason(&d, &format!("agent container {task}")).then_some(d)
    });
    // The session container is kept warm by design: never stuck.
    assert!(!has_reason(&d, &format!("agent container {session}")));
}

#[test]
fn the_demo_runs_agent_containers_where_docker_is_there() {
    let Some(host) = test_docker() else {
        return;
    };
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pynchy-status"));
    cmd.args([
        "demo",
        "--listen",
        &addr.to_string(),
        "--agent-image",
        IMAGE,
    ])
    .env("DOCKER_HOST", &host)
    .env("RUST_LOG", "warn")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    let mut demo = ChildGuard::spawn(&mut cmd).unwrap();
    let q = wait_for(Duration::from_secs(30), "the demo's agents", || {
        std::net::TcpStream::connect(addr).ok()?;
        let q = queue(addr);
        (q["per_group"]["code-improver"]["active"] == true
            && q["per_group"]["admin"]["active"] == true)
            .then_some(q)
    });
    // As Docker tells them: the session kept warm, the task's run.
    let session = &q["per_group"]["code-improver"]["containers"][0];
    assert_eq!(session["name"], "pynchy-code-improver");
    assert_eq!(session["kind"], "session");
    assert_eq!(
        session["state"],
        json!(inspect(&host, "pynchy-code-improver", "{{.State.Status}}"))
    );
    let task = &q["per_group"]["admin"]["containers"][0];
    let name = task["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("pynchy-admin-"), "{name}");
    assert_eq!(task["kind"], "task");
    let mount = inspect(&host, &name, "{{range .Mounts}}{{.Destination}}{{end}}");
    assert_eq!(mount, "/workspace/ipc");
    // Healthy otherwise: no reason from the queue.
    let d = get_json(addr, "/status");
    assert!(
        !reasons(&d).iter().any(|r| r.starts_with("queue")),
        "{:?}",
        reasons(&d)
    );
    // Stopped: its containers go with it.
    signal(demo.id(), "-TERM");
    demo.wait_within(Duration::from_secs(10));
    for n in ["pynchy-code-improver", name.as_str()] {
        let left =
            docker(&host, &["ps", "-aq", "--filter", &format!("name=^{n}$")]).unwrap_or_default();
        assert!(left.trim().is_empty(), "{n} left behind");
    }
}
