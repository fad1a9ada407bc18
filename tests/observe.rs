//! `service` and `channels` beside an unpatched pynchy: a stand-in of
//! pynchy's HTTP server (`pynchy-status stand-in`, its wire format) run as a
//! real process on pynchy's port, nothing pushed. Ground truth for its start
//! from `ps -o lstart`; SIGKILL, SIGSTOP, a new process on the port and a
//! deploy-style restart (`router_state.last_deploy_at` written with the
//! sqlite3 CLI, as pynchy's `finalize_deploy` writes it) each show as pynchy's
//! state says; the stand-in's request counts show what is never asked.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const EXE: &str = env!("CARGO_BIN_EXE_pynchy-status");

/// A healthy pynchy install with nothing wrong: pynchy's schema, one
/// registered group, no repos, no gateway.
fn healthy_install(dir: &Path) -> std::path::PathBuf {
    // pynchy's checkout, clean, with one commit.
    git_ok(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join(".gitignore"), "data/\npynchy-status.toml\n").unwrap();
    git_ok(dir, &["add", "."]);
    git_ok(dir, &["commit", "-q", "-m", "pynchy"]);
    let db = dir.join("data/messages.db");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let sql = format!(
        "{}\nINSERT INTO registered_groups (jid, name, folder, trigger_pattern, added_at) \
         VALUES ('120363@g.us', 'Admin', 'admin', '@pynchy', '2026-01-01T00:00:00+00:00');",
        pynchy_status::demo::SCHEMA
    );
    sqlite3_write(&db, &sql);
    db
}

/// A healthy install with pynchy's stand-in on a free port of its own.
struct World {
    dir: tempfile::TempDir,
    db: std::path::PathBuf,
    port: u16,
    pynchy: pynchy_status::demo::Pynchy,
}

/// [`World`], its channels connected or not; `None` (said loudly) without
/// the sqlite3 CLI.
fn world(channels_connected: bool) -> Option<World> {
    if !sqlite3_present() {
        missing_part("the sqlite3 CLI");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = healthy_install(dir.path());
    let port = free_port();
    let pynchy =
        pynchy_status::demo::start_pynchy(Path::new(EXE), port, &db, channels_connected).unwrap();
    Some(World {
        dir,
        db,
        port,
        pynchy,
    })
}

fn config(port: u16, extra: &str) -> String {
    format!(
        "[pynchy]\nroot = \".\"\nurl = \"http://127.0.0.1:{port}\"\nsystemd_bus = \"off\"\n\
         {extra}\n[gateway]\nmode = \"none\"\n\
         [sections.service]\ninterval = \"1s\"\ntimeout = \"3s\"\n"
    )
}

fn service(addr: std::net::SocketAddr) -> Value {
    get_json(addr, "/status/service")["service"].clone()
}

/// `ps -o lstart=` of `pid`, in UTC: when the kernel says it started.
fn ps_started(pid: u32) -> chrono::DateTime<chrono::Utc> {
    let out = std::process::Command::new("ps")
        .args(["-o", "lstart=", "-p", &pid.to_string()])
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .expect("ps runs");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let naive = chrono::NaiveDateTime::parse_from_str(&text, "%a %b %e %H:%M:%S %Y")
        .unwrap_or_else(|e| panic!("ps said {text:?}: {e}"));
    naive.and_utc()
}

fn counts(pynchy: &pynchy_status::demo::Pynchy) -> Value {
    get_json(pynchy.addr, "/__stand_in/counts")
}

/// Adds what this stand-in was asked to `asked` (request line -> count): read
/// before each stand-in goes, so every process of the run is counted.
fn tally(
    pynchy: &pynchy_status::demo::Pynchy,
    asked: &mut std::collections::BTreeMap<String, u64>,
) {
    for (k, v) in counts(pynchy).as_object().cloned().unwrap_or_default() {
        *asked.entry(k).or_default() += v.as_u64().unwrap_or(0);
    }
}

#[test]
fn an_unpatched_pynchy_observed_from_outside() {
    let began = Instant::now();
    let mut asked = std::collections::BTreeMap::new();
    let Some(World {
        dir,
        db,
        port,
        pynchy,
    }) = world(true)
    else {
        return;
    };
    let run = start_in(
        dir.path(),
        &config(port, "unresponsive_grace = \"4s\"\nrestart_grace = \"40s\""),
        vec![],
    );
    // Healthy and unpatched: ok, with no reason at all, and /health 200.
    let doc = wait_for(Duration::from_secs(15), "ok with no reasons", || {
        let d = get_json(run.addr, "/status");
        (d["status"] == "ok"
            && d["service"]["status"] == "ok"
            && d["channels"]["connected"] == true)
            .then_some(d)
    });
    assert_eq!(doc["reasons"], json!([]), "{doc:#}");
    assert_eq!(get(run.addr, "/health").status, 200);
    let s = &doc["service"];
    assert_eq!(s["source"], "observed");
    assert_eq!(s["process"], "readable");
    assert_eq!(s["pid"], json!(pynchy.pid()));
    let ours = chrono::DateTime::parse_from_rfc3339(s["started_at"].as_str().unwrap()).unwrap();
    let truth = ps_started(pynchy.pid());
    assert!(
        (ours.timestamp() - truth.timestamp()).abs() <= 1,
        "started_at {ours} vs ps {truth}"
    );
    assert_eq!(doc["channels"]["source"], "observed");
    assert_eq!(doc["queue"]["per_group"]["admin"]["idle"], true);
    assert_eq!(doc["queue"]["max_concurrent"], 10);
    assert_eq!(doc["queue"]["groups_waiting"], Value::Null);

    // SIGSTOP: holds the port, answers nothing: unresponsive, then down.
    let pid = pynchy.pid();
    let signal = |sig: &str| signal(pid, sig);
    signal("-STOP");
    wait_for(Duration::from_secs(10), "unresponsive", || {
        (service(run.addr)["status"] == "unresponsive").then_some(())
    });
    let d = get_json(run.addr, "/status");
    assert_eq!(d["status"], "degraded", "{:?}", reasons(&d));
    assert!(has_reason(&d, "does not answer"), "{:?}", reasons(&d));
    wait_for(Duration::from_secs(15), "down past the grace", || {
        (service(run.addr)["status"] == "down").then_some(())
    });
    assert!(has_reason(
        &get_json(run.addr, "/status"),
        "event loop is stuck"
    ));
    signal("-CONT");
    wait_for(Duration::from_secs(10), "ok again", || {
        (service(run.addr)["status"] == "ok").then_some(())
    });

    // SIGKILL: down (its pidfd), then a new process on the port: ok again,
    // one restart counted.
    tally(&pynchy, &mut asked);
    drop(pynchy);
    wait_for(Duration::from_secs(3), "down after SIGKILL", || {
        (service(run.addr)["status"] == "down").then_some(())
    });
    let d = get_json(run.addr, "/status");
    assert_eq!(d["status"], "down");
    assert!(
        has_reason(&d, &format!("nothing listens on port {port}")),
        "{:?}",
        reasons(&d)
    );
    let pynchy = pynchy_status::demo::start_pynchy(Path::new(EXE), port, &db, true).unwrap();
    let s = wait_for(Duration::from_secs(5), "the new process", || {
        let s = service(run.addr);
        (s["status"] == "ok" && s["pid"] == json!(pynchy.pid())).then_some(s)
    });
    assert_eq!(s["restarts_last_10m"], 1);
    assert_eq!(s["deploys_last_10m"], 0);

    // A deploy's restart: pynchy writes last_deploy_at, then stops itself;
    // its unit starts it again later (20 s here): restarting, never down.
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00");
    let write = format!(
        "INSERT OR REPLACE INTO router_state (key, value) VALUES ('last_deploy_at', '{now}');"
    );
    sqlite3_write(&db, &write);
    tally(&pynchy, &mut asked);
    drop(pynchy);
    let gone = Instant::now();
    wait_for(Duration::from_secs(3), "restarting", || {
        (service(run.addr)["status"] == "restarting").then_some(())
    });
    while gone.elapsed() < Duration::from_secs(20) {
        let d = get_json(run.addr, "/status");
        assert_eq!(d["service"]["status"], "restarting", "{:#}", d["service"]);
        assert_eq!(d["status"], "degraded", "{:?}", reasons(&d));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(has_reason(
        &get_json(run.addr, "/status"),
        &format!("restarting after a deploy (deploy at {now})")
    ));
    let pynchy = pynchy_status::demo::start_pynchy(Path::new(EXE), port, &db, true).unwrap();
    let s = wait_for(Duration::from_secs(5), "back after the deploy", || {
        let s = service(run.addr);
        (s["status"] == "ok").then_some(s)
    });
    assert_eq!(s["restarts_last_10m"], 2);
    assert_eq!(s["deploys_last_10m"], 1);
    // The crash-loop series counts the restart that was not a deploy.
    let m = String::from_utf8(get(run.addr, "/metrics").body).unwrap();
    assert!(m.contains("pynchy_service_restarts_last_10m 2"), "{m}");
    assert!(
        m.contains("pynchy_service_crash_restarts_last_10m 1"),
        "{m}"
    );

    // What was asked of all three processes: never /status or /api/events,
    // never a POST; /health at most once a minute over the whole run, plus
    // once per new process (a restart is a new pynchy to ask).
    tally(&pynchy, &mut asked);
    for k in asked.keys() {
        assert!(
            k == "GET /api/groups" || k == "GET /health",
            "asked {k}: {asked:?}"
        );
    }
    assert!(
        asked.get("GET /api/groups").copied().unwrap_or(0) > 0,
        "{asked:?}"
    );
    let minutes = began.elapsed().as_secs() / 60 + 1;
    let health = asked.get("GET /health").copied().unwrap_or(0);
    assert!(
        health <= minutes + 2,
        "/health asked {health} times in {minutes} min: {asked:?}"
    );
}

#[test]
fn a_deploy_whose_pynchy_stops_answering_before_it_ends_is_restarting() {
    let Some(World {
        dir,
        db,
        port,
        pynchy,
    }) = world(true)
    else {
        return;
    };
    let run = start_in(
        dir.path(),
        &config(port, "unresponsive_grace = \"4s\"\nrestart_grace = \"40s\""),
        vec![],
    );
    wait_for(Duration::from_secs(15), "ok", || {
        (service(run.addr)["status"] == "ok").then_some(())
    });
    // pynchy's deploy: last_deploy_at written, then its shutdown, during
    // which the old process still holds the port but answers nothing
    // (SIGSTOP plays that), then it ends and a new one starts.
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00");
    sqlite3_write(
        &db,
        &format!(
            "INSERT OR REPLACE INTO router_state (key, value) VALUES ('last_deploy_at', '{now}');"
        ),
    );
    signal(pynchy.pid(), "-STOP");
    // Past the unresponsive grace (4 s) and more: restarting all along,
    // never unresponsive or down.
    let stopped = Instant::now();
    let mut seen_restarting = false;
    while stopped.elapsed() < Duration::from_secs(10) {
        let d = get_json(run.addr, "/status");
        let st = d["service"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(st == "ok" || st == "restarting", "{:#}", d["service"]);
        if st == "restarting" {
            seen_restarting = true;
            assert!(
                has_reason(&d, &format!("restarting after a deploy (deploy at {now})")),
                "{:?}",
                reasons(&d)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        seen_restarting,
        "never restarting while the old pynchy was stopped"
    );
    drop(pynchy);
    wait_for(Duration::from_secs(3), "restarting after its exit", || {
        (service(run.addr)["status"] == "restarting").then_some(())
    });
    let pynchy = pynchy_status::demo::start_pynchy(Path::new(EXE), port, &db, true).unwrap();
    let s = wait_for(Duration::from_secs(5), "the new pynchy", || {
        let s = service(run.addr);
        (s["status"] == "ok" && s["pid"] == json!(pynchy.pid())).then_some(s)
    });
    assert_eq!(s["restarts_last_10m"], 1, "{s:#}");
    assert_eq!(s["deploys_last_10m"], 1, "{s:#}");
}

#[test]
fn a_pynchy_starting_in_its_root_is_starting_and_other_commands_there_are_not() {
    if !sqlite3_present() {
        return missing_part("the sqlite3 CLI");
    }
    let dir = tempfile::tempdir().unwrap();
    healthy_install(dir.path());
    let port = free_port();
    // Nothing on pynchy's port. Older commands in its root that mention
    // pynchy but are not pynchy: a log follower, an editor on its source.
    let decoy = |args: &[&str]| {
        ChildGuard::spawn(
            std::process::Command::new(args[0])
                .args(&args[1..])
                .current_dir(dir.path())
                .stdout(std::process::Stdio::null()),
        )
        .unwrap()
    };
    let _follower = decoy(&["sh", "-c", "sleep 60", "journalctl", "-fu", "pynchy"]);
    let _editor = decoy(&["sh", "-c", "sleep 60", "vim", "src/pynchy/app.py"]);
    let run = start_in(dir.path(), &config(port, ""), vec![]);
    let s = wait_for(Duration::from_secs(10), "down", || {
        let s = service(run.addr);
        (s["status"] == "down").then_some(s)
    });
    assert_eq!(s["pid"], Value::Null, "{s:#}");
    // pynchy's interpreter starting in its root (`python -m pynchy`), its
    // port not open yet: starting, with its pid.
    let starting = decoy(&[
        "python3",
        "-c",
        "import time; time.sleep(60)",
        "-m",
        "pynchy",
    ]);
    let s = wait_for(Duration::from_secs(10), "starting", || {
        let s = service(run.addr);
        (s["status"] == "starting").then_some(s)
    });
    assert_eq!(s["pid"], json!(starting.id()), "{s:#}");
    assert!(has_reason(
        &get_json(run.addr, "/status"),
        &format!("pynchy is starting (pid {})", starting.id())
    ));
}

#[test]
fn reloads_do_not_ask_pynchys_health_again() {
    let Some(World {
        dir,
        db: _,
        port,
        pynchy,
    }) = world(true)
    else {
        return;
    };
    let (child, addr) = spawn_serve(dir.path(), &config(port, ""), &[]);
    wait_for(Duration::from_secs(15), "channels observed", || {
        (get_json(addr, "/status/channels")["channels"]["connected"] == true).then_some(())
    });
    // Five reloads (each known applied by the deploy interval it sets): each
    // builds the sections anew, and none asks /health (a minute's interval).
    for n in 1..=5u64 {
        let ms = 200 + n * 10;
        std::fs::write(
            dir.path().join("c.toml"),
            format!(
                "listen = \"{addr}\"\n{}[sections.deploy]\ninterval = \"{ms}ms\"\n",
                config(port, "")
            ),
        )
        .unwrap();
        signal(child.id(), "-HUP");
        wait_for(Duration::from_secs(10), "the reload", || {
            let d = get_json(addr, "/status");
            (d["meta"]["deploy"]["interval_seconds"] == json!(ms as f64 / 1000.0)
                && d["channels"]["connected"] == true)
                .then_some(())
        });
    }
    let c = counts(&pynchy);
    assert_eq!(c["GET /health"], 1, "{c}");
}

#[test]
fn no_channel_connected_is_a_reason_and_a_missing_pynchy_is_not_channels_fault() {
    let Some(World {
        dir,
        db: _,
        port,
        pynchy,
    }) = world(false)
    else {
        return;
    };
    let run = start_in(
        dir.path(),
        &(config(port, "") + "[sections.channels]\ninterval = \"1s\"\n"),
        vec![],
    );
    let d = wait_for(Duration::from_secs(10), "no channel connected", || {
        let d = get_json(run.addr, "/status");
        (d["channels"]["connected"] == false).then_some(d)
    });
    assert_eq!(
        reasons(&d),
        vec!["channels: no chat channel connected (pynchy's /health)".to_string()],
        "{:#}",
        d["service"]
    );
    assert_eq!(get_json(run.addr, "/health")["channels_connected"], false);
    let m = String::from_utf8(get(run.addr, "/metrics").body).unwrap();
    assert!(
        m.contains("pynchy_channel_connected{channel=\"any\"} 0"),
        "{m}"
    );
    // pynchy gone: service says so; channels only notes it cannot ask.
    drop(pynchy);
    let d = wait_for(Duration::from_secs(10), "channels unknown", || {
        let d = get_json(run.addr, "/status");
        (d["channels"]["connected"].is_null() && d["channels"]["error"].is_string()).then_some(d)
    });
    assert!(
        reasons(&d).iter().all(|r| r.starts_with("service:")),
        "{:?}",
        reasons(&d)
    );
    // A push still wins while fresh, with each channel.
    push(
        run.addr,
        "channels",
        json!({"whatsapp": {"connected": true}, "slack": false}),
    );
    let c = get_json(run.addr, "/status/channels")["channels"].clone();
    assert_eq!(c["source"], "pushed");
    assert_eq!(c["channels"]["slack"]["connected"], false);
    assert!(has_reason(
        &get_json(run.addr, "/status"),
        "channel slack disconnected"
    ));
}

#[test]
fn pynchy_as_another_user_is_seen_by_its_port_alone() {
    // pynchy-status as `nobody`, pynchy (its stand-in) as root: root's /proc
    // entries are not readable, so the port alone tells.
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    if !setpriv.exists() || not_root() {
        return missing_part("setpriv (util-linux) and root, to run the daemon as another user");
    }
    let dir = tempfile::tempdir().unwrap();
    // nobody reads its config in here.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let port = free_port();
    let db = dir.path().join("none.db");
    let pynchy = pynchy_status::demo::start_pynchy(Path::new(EXE), port, &db, true).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = format!("listen = \"{addr}\"\n{}", config(port, ""));
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let _daemon = ChildGuard::spawn(
        std::process::Command::new(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", EXE])
            .args(["serve", "--config", "c.toml"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let s = wait_for(Duration::from_secs(20), "pynchy seen by its port", || {
        std::net::TcpStream::connect(addr).ok()?;
        let s = service(addr);
        (s["status"] == "ok").then_some(s)
    });
    assert_eq!(s["process"], "not_readable", "{s:#}");
    assert_eq!(s["pid"], Value::Null);
    assert_eq!(s["started_at"], Value::Null);
    drop(pynchy);
    // Its socket is read every 5 s in this mode.
    wait_for(Duration::from_secs(15), "down by the port", || {
        (service(addr)["status"] == "down").then_some(())
    });
    let _pynchy = pynchy_status::demo::start_pynchy(Path::new(EXE), port, &db, true).unwrap();
    let s = wait_for(Duration::from_secs(15), "back by the port", || {
        let s = service(addr);
        (s["status"] == "ok").then_some(s)
    });
    assert_eq!(s["restarts_last_10m"], 1, "{s:#}");
}

/// Whether this test process runs as another user than root.
fn not_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().next() != Some("0"))
        })
        .unwrap_or(true)
}

#[test]
fn a_late_task_is_overdue_only_once_pynchy_is_seen_up() {
    if !sqlite3_present() {
        return missing_part("the sqlite3 CLI");
    }
    let dir = tempfile::tempdir().unwrap();
    let db = healthy_install(dir.path());
    // An active task due an hour ago: late by pynchy's rule, if pynchy runs.
    let late = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    sqlite3_write(
        &db,
        &format!(
            "INSERT INTO scheduled_tasks (id, group_folder, chat_jid, prompt, schedule_type, \
             schedule_value, next_run, status, created_at) VALUES ('t-late', 'admin', \
             '120363@g.us', 'p', 'interval', '600000', '{late}', 'active', '{late}');"
        ),
    );
    let port = free_port();
    // The tasks are read once and then only when told: no tick judges them again.
    let run = start_in(
        dir.path(),
        &config(
            port,
            "[sections.tasks]\ninterval = \"1h\"\n[sections.host_jobs]\ninterval = \"1h\"",
        ),
        vec![],
    );
    let task = |d: &Value| d["tasks"][0].clone();
    let d = wait_for(Duration::from_secs(15), "pynchy seen down", || {
        let d = get_json(run.addr, "/status");
        (d["service"]["status"] == "down" && task(&d)["id"] == "t-late").then_some(d)
    });
    assert_eq!(
        task(&d)["overdue"],
        json!(false),
        "nothing runs while pynchy is down"
    );
    assert!(!has_reason(&d, "overdue"), "{:?}", reasons(&d));
    // pynchy starts: the task is judged again at once, and is late.
    let _pynchy = pynchy_status::demo::start_pynchy(Path::new(EXE), port, &db, true).unwrap();
    let d = wait_for(Duration::from_secs(10), "the task overdue", || {
        let d = get_json(run.addr, "/status");
        (task(&d)["overdue"] == true).then_some(d)
    });
    assert_eq!(d["service"]["status"], "ok");
    assert!(has_reason(&d, "task t-late overdue"), "{:?}", reasons(&d));
}
