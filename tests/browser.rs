//! The dashboard in a real browser: Debian's Chromium driven over WebDriver
//! (chromedriver) on 127.0.0.1. Every card is there with the demo's values and
//! the rollup's reasons; a push and a new commit show up without a reload; a
//! stopped daemon shows "disconnected". A screenshot lands in target/.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use pynchy_status::app::Daemon;
use pynchy_status::config::{Config, SectionOverride};
use serde_json::{json, Value};

fn wd(addr: SocketAddr, method: &str, path: &str, body: Value) -> Value {
    let bytes = if method == "GET" || method == "DELETE" {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let r = request(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        &bytes,
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    assert!(
        r.status < 300,
        "webdriver {method} {path}: {} {v}",
        r.status
    );
    v["value"].clone()
}

const FACTS: &str = r#"
const q = s => document.querySelector(s);
const t = s => { const e = q(s); return e ? e.textContent : null; };
return {
  rollup: q('#rollup').dataset.status,
  reasons: [...document.querySelectorAll('#reasons li')].map(l => l.textContent),
  cards: [...document.querySelectorAll('.card')].map(c => c.dataset.section),
  states: Object.fromEntries([...document.querySelectorAll('.card')].map(c => [c.dataset.section, c.dataset.state])),
  inbound: t('[data-section=messages] [data-field=total_inbound]'),
  pending: t('[data-section=messages] [data-field=pending_deliveries]'),
  head: t('[data-section=deploy] [data-field=head_sha]'),
  slack: t('[data-channel=slack]'),
  conflict: t('[data-worktree=merge-bot] [data-field=conflict]'),
  ahead: t('[data-worktree=code-improver] [data-field=ahead]'),
  overdue: [...document.querySelectorAll('[data-section=tasks] tr[data-overdue=true]')].map(r => r.dataset.item),
  groups: t('[data-section=groups] [data-field=total]'),
  lastMessage: Object.fromEntries([...document.querySelectorAll('[data-section=queue] tr[data-group]')]
    .map(r => [r.dataset.group, r.querySelector('[data-field=last_message_at]').title])),
  lastRun: Object.fromEntries([...document.querySelectorAll('[data-section=queue] tr[data-group]')]
    .map(r => [r.dataset.group, r.querySelector('[data-field=last_run_at]').title])),
  idle: [...document.querySelectorAll('[data-section=queue] tr[data-idle=true]')].map(r => r.dataset.group),
  failedLast: [...document.querySelectorAll('[data-section=tasks] tr[data-last-run=error]')].map(r => r.dataset.item),
  runs: [...document.querySelectorAll('[data-runs=task-overdue-sync] li')].map(l => [l.dataset.status, l.title, l.textContent]),
  figures: t('[data-runs=task-overdue-sync] [data-field=figures]'),
  service: t('[data-section=service] [data-field=status]'),
  conn: q('#conn').textContent,
  form: !q('#tokenform').hidden,
  since: t('#since'),
  timeline: [...document.querySelectorAll('#timeline li')].map(l => l.dataset.kind),
  urls: performance.getEntriesByType('resource').map(e => e.name).concat([location.href]),
  cookie: document.cookie,
};"#;

fn facts(driver: SocketAddr, session: &str) -> Value {
    run_js(driver, session, FACTS, json!([]))
}

fn wait_page(
    driver: SocketAddr,
    session: &str,
    limit: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let shown = poll(limit, Duration::from_millis(100), || {
        let f = facts(driver, session);
        if ok(&f) {
            return Some(f);
        }
        last = f;
        None
    });
    shown.unwrap_or_else(|| panic!("the page did not show {what} within {limit:?}: {last:#}"))
}

/// The browser session: deleted when dropped, so Chromium goes away with it
/// even when an assertion fails (chromedriver's own guard only kills the driver).
struct Session {
    driver: SocketAddr,
    id: String,
    open: bool,
}

impl Session {
    fn new(driver: SocketAddr, caps: Value) -> Session {
        let id = wd(driver, "POST", "/session", caps)["sessionId"]
            .as_str()
            .unwrap()
            .to_string();
        Session {
            driver,
            id,
            open: true,
        }
    }

    /// Ends the session, insisting that the driver agrees.
    fn close(mut self) {
        self.open = false;
        wd(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.id),
            Value::Null,
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // Nothing here may panic: this runs while a failed test unwinds.
        let Ok(mut s) = std::net::TcpStream::connect(self.driver) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let req = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.id, self.driver
        );
        if s.write_all(req.as_bytes()).is_ok() {
            // The answer comes once the browser has quit.
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
}

/// chromedriver and a headless Chromium session: (the driver process, its
/// address, the session, the profile folder).
fn open_browser() -> (ChildGuard, SocketAddr, Session, tempfile::TempDir) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver_process = ChildGuard::spawn(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let driver: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(Duration::from_secs(10), "chromedriver", || {
        std::net::TcpStream::connect(driver).ok()?;
        (get(driver, "/status").status == 200).then_some(())
    });
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--window-size=1280,1500", format!("--user-data-dir={}", profile.path().display())]
    }}}});
    let browser = Session::new(driver, caps);
    (driver_process, driver, browser, profile)
}

fn missing_browser() -> bool {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !std::path::Path::new(bin).exists() {
            missing_part(&format!(
                "{bin} (Debian packages chromium, chromium-driver)"
            ));
            return true;
        }
    }
    false
}

#[test]
fn dashboard_shows_the_demo_live_and_disconnects() {
    if missing_browser() {
        return;
    }
    // The daemon on the demo world; repos every 300 ms so a commit shows quickly.
    let world = pynchy_status::demo::build("127.0.0.1:0").unwrap();
    let mut cfg = Config::load(&world.config_path).unwrap();
    cfg.sections.insert(
        pynchy_status::SectionId::Repos,
        SectionOverride {
            interval: Some(Duration::from_millis(300)),
            ..Default::default()
        },
    );
    let run = Daemon::new(cfg)
        .unwrap()
        .spawn(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .unwrap();
    let started = chrono::Utc::now() - chrono::Duration::hours(2);
    for (section, body) in pynchy_status::demo::sample_pushes(started) {
        assert_eq!(
            pynchy_status::demo::push(run.addr, section, &body).unwrap(),
            200
        );
    }
    wait_for(Duration::from_secs(10), "first round", || {
        (get(run.addr, "/readyz").status == 200).then_some(())
    });
    let truth = get_json(run.addr, "/status");

    let (_driver, driver, browser, _profile) = open_browser();
    let session = browser.id.clone();
    wd(
        driver,
        "POST",
        &format!("/session/{session}/url"),
        json!({"url": format!("{}/", run.url())}),
    );

    let f = wait_page(driver, &session, Duration::from_secs(10), "the demo", |f| {
        f["cards"].as_array().is_some_and(|c| c.len() == 11) && f["conflict"].is_string()
    });
    assert_eq!(
        f["cards"],
        json!([
            "service",
            "deploy",
            "channels",
            "gateway",
            "queue",
            "repos",
            "messages",
            "tasks",
            "host_jobs",
            "groups",
            "mcp"
        ])
    );
    assert_eq!(f["rollup"], truth["status"]);
    let want_reasons: Vec<String> = truth["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r["section"].as_str().unwrap(),
                r["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(f["reasons"], json!(want_reasons));
    assert!(want_reasons
        .iter()
        .any(|r| r == "channels: channel slack disconnected"));
    assert_eq!(
        f["inbound"],
        json!(truth["messages"]["total_inbound"].to_string())
    );
    assert_eq!(
        f["pending"],
        json!(truth["messages"]["pending_deliveries"].to_string())
    );
    assert_eq!(
        f["head"],
        json!(&truth["deploy"]["head_sha"].as_str().unwrap()[..12])
    );
    assert_eq!(f["slack"], "disconnected");
    assert_eq!(f["conflict"], "CONFLICT");
    assert_eq!(
        f["ahead"],
        json!(truth["repos"]["crypdick/pynchy"]["worktrees"]["code-improver"]["ahead"].to_string())
    );
    assert_eq!(f["overdue"], json!(["task-overdue-sync"]));
    assert_eq!(f["groups"], json!(truth["groups"]["total"].to_string()));
    // Per-group activity, as /status has it (each cell's title is the time).
    for (key, field) in [
        ("lastMessage", "last_message_at"),
        ("lastRun", "last_run_at"),
    ] {
        let want: serde_json::Map<String, Value> = truth["queue"]["per_group"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(g, v)| (g.clone(), json!(v[field].as_str().unwrap_or(""))))
            .collect();
        assert_eq!(f[key], Value::Object(want), "{key}");
    }
    assert_eq!(f["idle"], json!(["docs-writer"]));
    assert_eq!(f["failedLast"], json!(["task-overdue-sync"]));
    // A task's runs, opened with a click, as its page has them.
    let page = get_json(run.addr, "/status/tasks/task-overdue-sync");
    run_js(
        driver,
        &session,
        "document.querySelector('[data-section=tasks] tr[data-item=task-overdue-sync]').click(); return null;",
        json!([]),
    );
    let f = wait_page(
        driver,
        &session,
        Duration::from_secs(5),
        "the task's runs",
        |f| f["runs"].as_array().is_some_and(|r| !r.is_empty()),
    );
    let shown = f["runs"].as_array().unwrap();
    let want = page["runs"].as_array().unwrap();
    assert_eq!(shown.len(), want.len());
    for (s, w) in shown.iter().zip(want) {
        assert_eq!(s[0], w["status"]);
        assert_eq!(s[1], w["run_at"]);
        if let Some(e) = w["error"].as_str() {
            assert!(s[2].as_str().unwrap().ends_with(e), "{s}");
        }
    }
    assert!(
        f["figures"]
            .as_str()
            .unwrap()
            .starts_with("24 h: 67% of 12"),
        "{}",
        f["figures"]
    );
    assert_eq!(f["service"], "ok");
    assert_eq!(f["states"]["channels"], "degraded");
    assert_eq!(f["states"]["repos"], "degraded");
    assert!(
        f["conn"].as_str().unwrap().starts_with("live"),
        "{}",
        f["conn"]
    );

    // Change the world: a push and a commit, shown without a reload within 3 s.
    let changed = Instant::now();
    assert_eq!(
        pynchy_status::demo::push(
            run.addr,
            "channels",
            r#"{"whatsapp": {"connected": true}, "slack": {"connected": true}}"#
        )
        .unwrap(),
        200
    );
    let wt = world.worktree("code-improver");
    std::fs::write(wt.join("more.py"), "x = 1\n").unwrap();
    git_ok(&wt, &["add", "more.py"]);
    git_ok(&wt, &["commit", "-q", "-m", "one more"]);
    let f = wait_page(
        driver,
        &session,
        Duration::from_secs(3),
        "the push and the commit",
        |f| f["slack"] == "connected" && f["ahead"] == "3",
    );
    assert!(changed.elapsed() < Duration::from_secs(3));
    assert!(!f["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains("slack")));
    // Since when, and what changed: the slack reason cleared.
    let f = wait_page(
        driver,
        &session,
        Duration::from_secs(5),
        "the timeline",
        |f| {
            f["timeline"]
                .as_array()
                .is_some_and(|t| t.iter().any(|k| k == "reason_cleared"))
        },
    );
    let since = f["since"].as_str().unwrap();
    assert!(
        since.starts_with(&format!("{} since ", f["rollup"].as_str().unwrap())),
        "{since}"
    );

    // A screenshot for people to look at.
    let png = wd(
        driver,
        "GET",
        &format!("/session/{session}/screenshot"),
        Value::Null,
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(format!("{target}/dashboard.png"), &bytes).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));

    // The daemon goes away: the page says so.
    drop(run);
    let f = wait_page(
        driver,
        &session,
        Duration::from_secs(6),
        "disconnected",
        |f| {
            f["conn"]
                .as_str()
                .is_some_and(|c| c.starts_with("disconnected"))
        },
    );
    assert!(f["conn"].as_str().unwrap().contains("last update"));
    browser.close();
}

/// Runs `script` in the page with `args`.
fn run_js(driver: SocketAddr, session: &str, script: &str, args: Value) -> Value {
    wd(
        driver,
        "POST",
        &format!("/session/{session}/execute/sync"),
        json!({"script": script, "args": args}),
    )
}

/// Types `token` into the dashboard's token form and submits it.
fn give_token(driver: SocketAddr, session: &str, token: &str) {
    let script = "document.getElementById('token').value = arguments[0]; \
                  document.querySelector('#tokenform button[type=submit]').click();";
    run_js(driver, session, script, json!([token]));
}

#[test]
fn dashboard_behind_a_token() {
    if missing_browser() {
        return;
    }
    // PST_SERVER_TOKEN_T is "view-token-1" (common::TEST_ENV).
    test_env();
    let world = pynchy_status::demo::build("127.0.0.1:0").unwrap();
    let mut cfg = Config::load(&world.config_path).unwrap();
    cfg.server.token_env = Some("PST_SERVER_TOKEN_T".into());
    let run = Daemon::new(cfg)
        .unwrap()
        .spawn(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .unwrap();
    wait_for(Duration::from_secs(10), "first round", || {
        (get(run.addr, "/readyz").status == 200).then_some(())
    });
    let auth = [("Authorization", "Bearer view-token-1")];
    let truth = request(run.addr, "GET", "/status", &auth, b"").json();
    let (_driver, driver, browser, _profile) = open_browser();
    let session = browser.id.clone();
    wd(
        driver,
        "POST",
        &format!("/session/{session}/url"),
        json!({"url": format!("{}/", run.url())}),
    );
    let no_data = |f: &Value| f["cards"] == json!([]) && f["rollup"] == json!("");
    let f = wait_page(
        driver,
        &session,
        Duration::from_secs(10),
        "the token form",
        |f| f["conn"] == "this server needs a token" && f["form"] == true,
    );
    assert!(no_data(&f), "{f:#}");

    give_token(driver, &session, "wrong-token");
    let f = wait_page(
        driver,
        &session,
        Duration::from_secs(10),
        "unauthorized",
        |f| f["conn"] == "unauthorized — check the token",
    );
    assert!(no_data(&f), "{f:#}");
    assert_eq!(f["form"], true);

    give_token(driver, &session, "view-token-1");
    let f = wait_page(
        driver,
        &session,
        Duration::from_secs(10),
        "live values",
        |f| {
            f["cards"].as_array().is_some_and(|c| c.len() == 11)
                && f["conn"].as_str().is_some_and(|c| c.starts_with("live"))
        },
    );
    assert_eq!(f["rollup"], truth["status"]);
    assert_eq!(
        f["inbound"],
        json!(truth["messages"]["total_inbound"].to_string())
    );
    // The token travels in a header only: never in a URL, never a cookie.
    for url in f["urls"].as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(
            !url.contains("view-token-1") && !url.contains("wrong-token"),
            "{url}"
        );
    }
    assert_eq!(f["cookie"], "");
    // Live: a push shows without a reload.
    assert_eq!(
        pynchy_status::demo::push(
            run.addr,
            "channels",
            r#"{"whatsapp": {"connected": true}, "slack": {"connected": false}}"#
        )
        .unwrap(),
        200
    );
    wait_page(driver, &session, Duration::from_secs(5), "the push", |f| {
        f["slack"] == "disconnected"
    });

    // Forget it: back to the form, no data.
    let forget = "document.getElementById('forget').click();";
    run_js(driver, &session, forget, json!([]));
    let f = wait_page(
        driver,
        &session,
        Duration::from_secs(10),
        "the token forgotten",
        |f| f["conn"] == "this server needs a token",
    );
    assert!(no_data(&f), "{f:#}");
    assert_eq!(f["since"], "");
    assert_eq!(f["timeline"], json!([]));
    browser.close();
}
