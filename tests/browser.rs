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
    .map(r => [r.dataset.group, (r.querySelector('[data-field=last_message_at] time') || {getAttribute: () => ""}).getAttribute('datetime')])),
  lastRun: Object.fromEntries([...document.querySelectorAll('[data-section=queue] tr[data-group]')]
    .map(r => [r.dataset.group, (r.querySelector('[data-field=last_run_at] time') || {getAttribute: () => ""}).getAttribute('datetime')])),
  idle: [...document.querySelectorAll('[data-section=queue] tr[data-idle=true]')].map(r => r.dataset.group),
  failedLast: [...document.querySelectorAll('[data-section=tasks] tr[data-last-run=error]')].map(r => r.dataset.item),
  runs: [...document.querySelectorAll('[data-runs=task-overdue-sync] li')].map(l => [l.dataset.status, l.querySelector('time').getAttribute('datetime'), l.textContent]),
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
        f["cards"].as_array().is_some_and(|c| c.len() == 12) && f["conflict"].is_string()
    });
    assert_eq!(
        f["cards"],
        json!([
            "service",
            "deploy",
            "channels",
            "gateway",
            "llm",
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
    // Without Docker the page folds its reasons into one notice.
    let docker_away = truth["gateway"]["docker"] == "unreachable";
    let want_reasons: Vec<String> = truth["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            let docker = r["rule"] == "docker_unreachable"
                || (r["section"] == "mcp"
                    && (r["rule"] == "section_error" || r["rule"] == "section_stale"));
            !(docker_away && docker)
        })
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
        since.starts_with(&format!("{} for ", f["rollup"].as_str().unwrap())),
        "{since}"
    );

    // A screenshot for people to look at.
    screenshot(driver, &session, "dashboard");

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
            f["cards"].as_array().is_some_and(|c| c.len() == 12)
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

/// What issue-27's checks read from the page.
const GLANCE: &str = r#"
const q = s => document.querySelector(s);
const times = [...document.querySelectorAll('time')].map(t => t.getAttribute('datetime'));
const strip = [...document.querySelectorAll('[data-section=tasks] tr[data-item=task-overdue-sync] [data-field=strip] [data-order]')]
  .map(e => [Number(e.dataset.order), e.dataset.status, e.tagName]);
const spark = q('[data-section=messages] svg.spark');
return {
  text: document.body.innerText,
  times,
  startedAt: (q('[data-section=service] [data-field=started_at] time') || {getAttribute: () => null}).getAttribute('datetime'),
  uptime: (q('[data-section=service] [data-field=uptime_seconds]') || {}).textContent,
  received: (q('[data-section=messages] [data-field=last_received_at] time') || {getAttribute: () => null}).getAttribute('datetime'),
  strip,
  bands: [...document.querySelectorAll('#strip rect')].map(r => [r.dataset.status, r.dataset.from, r.dataset.to]),
  spark: spark ? {from: spark.dataset.from, inbound: JSON.parse(spark.dataset.inbound), outbound: JSON.parse(spark.dataset.outbound)} : null,
  title: document.title,
  favicon: q('#favicon').dataset.status,
  notice: q('#notice').hidden ? null : q('#notice').textContent,
  reasons: [...document.querySelectorAll('#reasons li')].map(l => l.textContent),
  scroll: document.documentElement.scrollWidth,
  width: window.innerWidth,
};"#;

fn glance(driver: SocketAddr, session: &str) -> Value {
    run_js(driver, session, GLANCE, json!([]))
}

fn screenshot(driver: SocketAddr, session: &str, name: &str) {
    let png = wd(
        driver,
        "GET",
        &format!("/session/{session}/screenshot"),
        Value::Null,
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(format!("{target}/{name}.png"), &bytes).unwrap();
}

fn window(driver: SocketAddr, session: &str, width: u32, height: u32) {
    wd(
        driver,
        "POST",
        &format!("/session/{session}/window/rect"),
        json!({"width": width, "height": height}),
    );
}

fn dark(driver: SocketAddr, session: &str, on: bool) {
    wd(
        driver,
        "POST",
        &format!("/session/{session}/goog/cdp/execute"),
        json!({"cmd": "Emulation.setEmulatedMedia", "params": {"features": [
            {"name": "prefers-color-scheme", "value": if on { "dark" } else { "light" }}]}}),
    );
}

#[test]
fn a_person_reads_it_at_a_glance() {
    if missing_browser() {
        return;
    }
    if !sqlite3_present() {
        return missing_part("the sqlite3 CLI");
    }
    let world = pynchy_status::demo::build("127.0.0.1:0").unwrap();
    let mut cfg = Config::load(&world.config_path).unwrap();
    // No Docker here, whatever the machine has: said once, plainly.
    cfg.gateway.docker_host = "unix:///nonexistent/pynchy-status-glance.sock".into();
    let run = Daemon::new(cfg)
        .unwrap()
        .spawn(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .unwrap();
    // pynchy up for 7,210 s, as pushed.
    let started = chrono::Utc::now() - chrono::Duration::seconds(7210);
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
    window(driver, &session, 1400, 1600);
    wd(
        driver,
        "POST",
        &format!("/session/{session}/url"),
        json!({"url": format!("{}/", run.url())}),
    );
    let g = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        let g = glance(driver, &session);
        (g["spark"].is_object() && g["bands"].as_array().is_some_and(|b| !b.is_empty()))
            .then_some(g)
    })
    .expect("the page with its pictures");

    // No RFC 3339 text anywhere a person reads.
    let rfc = regex_free_rfc3339(g["text"].as_str().unwrap());
    assert!(rfc.is_empty(), "raw times shown: {rfc:?}");
    // <time datetime> carries /status's own instants.
    assert_eq!(g["startedAt"], truth["service"]["started_at"]);
    assert_eq!(g["received"], truth["messages"]["last_received_at"]);
    assert!(g["times"].as_array().unwrap().len() > 10, "{}", g["times"]);
    // 7,210 s reads as 2 h.
    assert!(
        g["uptime"].as_str().unwrap().starts_with("2 h 0 min"),
        "{}",
        g["uptime"]
    );

    // The run strip: the task page's runs, in order and outcome.
    let page = get_json(run.addr, "/status/tasks/task-overdue-sync");
    let want: Vec<Value> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    let mut strip = g["strip"].as_array().unwrap().clone();
    strip.sort_by_key(|e| e[0].as_u64().unwrap());
    let shown: Vec<Value> = strip.iter().map(|e| e[1].clone()).collect();
    assert_eq!(shown, want);
    // Shapes as well as colours: a failure is not the same shape as a success.
    for e in &strip {
        let shape = e[2].as_str().unwrap().to_ascii_lowercase();
        let want = if e[1] == "success" {
            "rect"
        } else if e[1] == "error" {
            "path"
        } else {
            "circle"
        };
        assert_eq!(shape, want, "{e}");
    }

    // The verdict strip: its bands change where /status/events' verdicts do.
    let events = get_json(run.addr, "/status/events")["events"].clone();
    let flips: Vec<i64> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "verdict")
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    let bands = g["bands"].as_array().unwrap();
    assert_eq!(bands.last().unwrap()[0], truth["status"]);
    for b in &bands[1..] {
        let from = chrono::DateTime::parse_from_rfc3339(b[1].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        assert!(
            flips.contains(&from),
            "band from {from} is no verdict change: {flips:?}"
        );
    }

    // The sparkline: each hour's inbound count equals sqlite3's.
    let spark = &g["spark"];
    let from = spark["from"]
        .as_str()
        .unwrap()
        .trim_end_matches('Z')
        .to_string();
    let db = world.database();
    let rows = sqlite3_read(
        &db,
        &format!(
            "SELECT substr(timestamp, 1, 13), COUNT(*) FROM messages WHERE is_from_me = 0 \
             AND timestamp >= '{from}' GROUP BY 1 ORDER BY 1"
        ),
    );
    let first = chrono::NaiveDateTime::parse_from_str(&from, "%Y-%m-%dT%H:%M:%S").unwrap();
    let mut want = vec![0u64; 24];
    for line in rows.lines().filter(|l| !l.is_empty()) {
        let (hour, n) = line.split_once('|').unwrap();
        let t =
            chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00:00"), "%Y-%m-%dT%H:%M:%S")
                .unwrap();
        // (An hour begun since the collection is not in its 24.)
        if let Some(w) = want.get_mut((t - first).num_hours() as usize) {
            *w += n.parse::<u64>().unwrap();
        }
    }
    assert_eq!(spark["inbound"], json!(want));
    assert!(
        want.iter().sum::<u64>() > 0,
        "the demo has messages within the day"
    );

    // No Docker: one plain notice, not a red line per container.
    assert!(
        g["notice"]
            .as_str()
            .is_some_and(|n| n.contains("Docker is not reachable")),
        "{}",
        g["notice"]
    );
    let docker_lines = g["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.as_str().unwrap().contains("Docker"))
        .count();
    assert_eq!(docker_lines, 0, "{}", g["reasons"]);

    // Another tab: the title and the favicon follow a pushed change at once.
    assert!(g["title"].as_str().unwrap().starts_with(&format!(
        "{} · ",
        truth["status"].as_str().unwrap().to_uppercase()
    )));
    assert_eq!(g["favicon"], truth["status"]);
    screenshot(driver, &session, "dashboard-1400-light");
    dark(driver, &session, true);
    screenshot(driver, &session, "dashboard-1400-dark");
    assert_eq!(
        pynchy_status::demo::push(
            run.addr,
            "service",
            &json!({"status": "shutting_down", "started_at": started.to_rfc3339()}).to_string()
        )
        .unwrap(),
        200
    );
    let g = poll(Duration::from_secs(2), Duration::from_millis(50), || {
        let g = glance(driver, &session);
        (g["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("DOWN · "))
            && g["favicon"] == "down")
            .then_some(g)
    });
    assert!(g.is_some(), "title and favicon did not follow the push");

    // A phone: nothing scrolls sideways at 390 px, light and dark.
    window(driver, &session, 390, 844);
    let g = glance(driver, &session);
    assert!(
        g["scroll"].as_u64().unwrap() <= g["width"].as_u64().unwrap(),
        "{} > {}",
        g["scroll"],
        g["width"]
    );
    screenshot(driver, &session, "dashboard-390-dark");
    dark(driver, &session, false);
    let g = glance(driver, &session);
    assert!(
        g["scroll"].as_u64().unwrap() <= g["width"].as_u64().unwrap(),
        "{} > {}",
        g["scroll"],
        g["width"]
    );
    screenshot(driver, &session, "dashboard-390-light");
    browser.close();
}

/// The RFC 3339 times in `text` (date, `T`, time).
fn regex_free_rfc3339(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    for i in 0..b.len().saturating_sub(15) {
        let d = |j: usize| b.get(i + j).is_some_and(u8::is_ascii_digit);
        let at = |j: usize, c: u8| b.get(i + j) == Some(&c);
        if (0..4).all(d)
            && at(4, b'-')
            && d(5)
            && d(6)
            && at(7, b'-')
            && d(8)
            && d(9)
            && (at(10, b'T') || at(10, b' '))
            && d(11)
            && d(12)
            && at(13, b':')
        {
            found.push(text[i..(i + 19).min(text.len())].to_string());
        }
    }
    found
}

/// The llm card, beside a stand-in of LiteLLM's books: each model group's
/// failures, the top error classes and a bar per budget, as `/status/llm`
/// says them.
#[test]
fn dashboard_shows_llm_failures_errors_and_budgets() {
    if missing_browser() {
        return;
    }
    use common::books::*;
    let now = chrono::Utc::now();
    let mut rows = day_of_rows(now, 400);
    for i in 0..12 {
        let start = now - chrono::Duration::seconds(30 + i);
        rows.push(row(
            format!("recent-{i}"),
            start,
            1500,
            "opus",
            i < 11,
            "RateLimitError",
        ));
    }
    let books = std::sync::Arc::new(std::sync::Mutex::new(Books {
        rows,
        provider_spend: 40.0,
        ..Books::default()
    }));
    let (_dir, _child, addr) = start(&books, "");
    let truth = wait_for(Duration::from_secs(30), "the day read", || {
        let l = get_json(addr, "/status/llm")["llm"].clone();
        (l["window"]["complete"] == json!(true) && l["budgets"].as_array()?.len() == 3).then_some(l)
    });
    let (_driver, driver, browser, _profile) = open_browser();
    let session = browser.id.clone();
    wd(
        driver,
        "POST",
        &format!("/session/{session}/url"),
        json!({"url": format!("http://{addr}/")}),
    );
    const LLM: &str = r#"const c = document.querySelector('#cards [data-section=llm]'); return !c ? null : {
      groups: Object.fromEntries([...c.querySelectorAll('tr[data-model-group]')].map(r =>
        [r.dataset.modelGroup, [r.querySelector('[data-field=failures_recent]').textContent, r.className]])),
      errors: [...c.querySelectorAll('[data-error-class]')].map(e => e.dataset.errorClass),
      budgets: Object.fromEntries([...c.querySelectorAll('tr[data-budget]')].map(r =>
        [r.dataset.budget, Number(r.querySelector('meter').getAttribute('value'))])),
    };"#;
    let shown = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        let v = run_js(driver, &session, LLM, json!([]));
        (v["budgets"].as_object().is_some_and(|b| b.len() == 3)).then_some(v)
    })
    .unwrap_or_else(|| {
        let html = "const c = document.querySelector('[data-section=llm]'); return c ? c.innerHTML : document.body.innerHTML.slice(0, 3000);";
        panic!("no llm card: {}", run_js(driver, &session, html, json!([])))
    });
    for g in truth["model_groups"].as_array().unwrap() {
        let name = g["name"].as_str().unwrap();
        let want = format!("{} / {}", g["failures_recent"], g["requests_recent"]);
        assert_eq!(shown["groups"][name][0], json!(want), "{shown}");
    }
    assert_eq!(shown["groups"]["opus"][1], "bad", "opus fails: {shown}");
    let classes: Vec<&Value> = truth["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["class"])
        .collect();
    assert_eq!(
        shown["errors"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        classes
    );
    for b in truth["budgets"].as_array().unwrap() {
        let key = format!(
            "{} {}",
            b["kind"].as_str().unwrap(),
            b["name"].as_str().unwrap()
        );
        let used = b["used"].as_f64().unwrap().min(1.0);
        assert_eq!(
            shown["budgets"][&key].as_f64(),
            Some(used),
            "{key}: {shown}"
        );
    }
    browser.close();
}
