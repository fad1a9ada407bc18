//! Notifications against real receivers: Debian's Alertmanager (started here
//! on a loopback port), and local receivers for Slack, ntfy and the webhook
//! that check each request's format as their documentation gives it and
//! count deliveries. Reasons are made and cleared by "switch" sections whose
//! collection fails while switched on (`section_error`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pynchy_status::sections::{CollectError, Schedule, Section, Work};
use serde_json::{json, Value};

/// A section whose collection fails while `on`: its reason is
/// "last collection failed: switched on".
struct Switch {
    name: &'static str,
    on: Arc<AtomicBool>,
}

impl Extra for Switch {
    fn name(&self) -> &'static str {
        self.name
    }
    fn default_schedule(&self) -> Schedule {
        Schedule {
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
            stale_after: Duration::from_secs(3600),
            verify: pynchy_status::sections::VERIFY_INTERVAL,
        }
    }
}

impl Section for Switch {
    type Body = Value;
    fn collect(&self) -> Work<Value> {
        let on = self.on.load(Ordering::SeqCst);
        Work::future(async move {
            if on {
                Err(CollectError::new("switched on"))
            } else {
                Ok(json!({"on": false}))
            }
        })
    }
}

fn switches(n: usize) -> (Vec<Arc<AtomicBool>>, Vec<Arc<dyn Extra>>) {
    const NAMES: [&str; 10] = [
        "sw0", "sw1", "sw2", "sw3", "sw4", "sw5", "sw6", "sw7", "sw8", "sw9",
    ];
    let flags: Vec<Arc<AtomicBool>> = (0..n).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let extras = flags
        .iter()
        .zip(NAMES)
        .map(|(f, name)| {
            Arc::new(Switch {
                name,
                on: f.clone(),
            }) as Arc<dyn Extra>
        })
        .collect();
    (flags, extras)
}

/// One request a receiver took.
#[derive(Debug, Clone)]
struct Taken {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Taken {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A receiver on loopback: answers 200 (503 while `down`), keeps what it took.
#[derive(Clone)]
struct Receiver {
    url: String,
    taken: Arc<Mutex<Vec<Taken>>>,
    refused: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
}

impl Receiver {
    fn start(answer: &'static str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Receiver {
            url: format!("http://{}", listener.local_addr().unwrap()),
            taken: Arc::default(),
            refused: Arc::default(),
            down: Arc::default(),
        };
        let me = r.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let me = me.clone();
                std::thread::spawn(move || me.serve(stream, answer));
            }
        });
        r
    }

    fn serve(&self, stream: std::net::TcpStream, answer: &str) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        let mut len = 0;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.trim().split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        let mut s = stream;
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let _ = write!(s, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown");
            return;
        }
        let path = first.split(' ').nth(1).unwrap_or("").to_string();
        self.taken.lock().unwrap().push(Taken {
            path,
            headers,
            body,
        });
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
    }

    fn taken(&self) -> Vec<Taken> {
        self.taken.lock().unwrap().clone()
    }
}

/// A daemon on a still world plus `n` switches, with `notify` appended.
fn daemon(
    n: usize,
    notify: &str,
) -> (
    tempfile::TempDir,
    pynchy_status::Running,
    Vec<Arc<AtomicBool>>,
) {
    let (flags, extras) = switches(n);
    let dir = tempfile::tempdir().unwrap();
    let run = start_in(dir.path(), &format!("{STILL}{notify}"), extras);
    ready(run.addr);
    (dir, run, flags)
}

fn webhook_items(t: &Taken, list: &str) -> Vec<String> {
    t.json()[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["section"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ten_reasons_make_one_message_and_a_restart_pages_no_one() {
    let hook = Receiver::start("ok");
    let notify = format!(
        "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/in\"\ngroup_wait = \"1s\"\nlink = \"http://dash.invalid/\"\ninstance = \"test-host\"\n",
        hook.url
    );
    let (_dir, run, flags) = daemon(10, &notify);
    // The still world's reasons were there at the first snapshot: known, not news.
    wait_collections(run.addr, &["sw0"], 5);
    assert!(
        hook.taken().is_empty(),
        "a restart paged: {:?}",
        hook.taken()
    );
    for f in &flags {
        f.store(true, Ordering::SeqCst);
    }
    let first = wait_for(Duration::from_secs(10), "the message", || {
        hook.taken().first().cloned()
    });
    wait_collections(run.addr, &["sw0"], 20);
    let all = hook.taken();
    assert_eq!(all.len(), 1, "{all:?}");
    let m = first.json();
    assert_eq!(first.path, "/in");
    assert_eq!(first.header("content-type"), Some("application/json"));
    let mut sections = webhook_items(&first, "appeared");
    sections.sort();
    assert_eq!(
        sections,
        (0..10).map(|i| format!("sw{i}")).collect::<Vec<_>>()
    );
    assert_eq!(m["why"], "change");
    assert_eq!(m["instance"], "test-host");
    assert_eq!(m["link"], "http://dash.invalid/");
    assert_eq!(m["verdict"], get_json(run.addr, "/status")["status"]);
    let item = &m["appeared"][0];
    assert_eq!(item["rule"], "section_error");
    assert_eq!(item["level"], "degraded");
    assert_eq!(item["reason"], "last collection failed: switched on");
    assert!(item["since"].is_string());
    // They clear: one message, with the resolutions.
    for f in &flags {
        f.store(false, Ordering::SeqCst);
    }
    let second = wait_for(Duration::from_secs(10), "the resolution", || {
        hook.taken().get(1).cloned()
    });
    assert_eq!(webhook_items(&second, "resolved").len(), 10);
    assert!(webhook_items(&second, "appeared").is_empty());
    // Its record, in /status/notify and /metrics.
    let s = get_json(run.addr, "/status/notify");
    assert_eq!(s["targets"][0]["name"], "hook");
    assert_eq!(s["targets"][0]["sent"], 2);
    let metrics = String::from_utf8(get(run.addr, "/metrics").body).unwrap();
    assert!(
        metrics.contains("pynchy_status_notifications_total{target=\"hook\",outcome=\"sent\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pynchy_status_notify_queue{target=\"hook\"} 0"),
        "{metrics}"
    );
}

#[test]
fn a_flap_is_told_once() {
    let hook = Receiver::start("ok");
    let notify = format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\ngroup_wait = \"2s\"\n",
        hook.url
    );
    let (_dir, run, flags) = daemon(1, &notify);
    // Twelve flips, 400 ms apart: flapping after five.
    for i in 0..12 {
        flags[0].store(i % 2 == 0, Ordering::SeqCst);
        wait_collections(run.addr, &["sw0"], 2);
    }
    flags[0].store(false, Ordering::SeqCst);
    wait_collections(run.addr, &["sw0"], 40);
    let all = hook.taken();
    assert_eq!(
        all.len(),
        1,
        "{:#?}",
        all.iter().map(|t| t.json()).collect::<Vec<_>>()
    );
    assert_eq!(webhook_items(&all[0], "appeared"), ["sw0"]);
    assert_eq!(all[0].json()["appeared"][0]["flapping"], true);
    let events = get_json(run.addr, "/status/events");
    assert!(events.to_string().contains("flapping"), "{events}");
}

#[test]
fn slack_and_ntfy_speak_their_formats_and_keep_secrets() {
    let slack = Receiver::start("ok");
    let ntfy = Receiver::start(r#"{"id":"abc","event":"message"}"#);
    let secret_path = "/services/T000/B000/slack-secret-hook-4f9d";
    std::env::set_var(
        "PST_SLACK_URL_SECRET",
        format!("{}{secret_path}", slack.url),
    );
    std::env::set_var("PST_NTFY_TOKEN_SECRET", "tk_ntfy-secret-token-77c1");
    let notify = format!(
        "[[notify]]\nname = \"team\"\nkind = \"slack\"\nurl_env = \"PST_SLACK_URL_SECRET\"\ngroup_wait = \"500ms\"\n\
         [[notify]]\nname = \"phone\"\nkind = \"ntfy\"\nurl = \"{}/pynchy-alerts\"\ntoken_env = \"PST_NTFY_TOKEN_SECRET\"\n\
         group_wait = \"500ms\"\nlink = \"http://dash.invalid/\"\n",
        ntfy.url
    );
    let (dir, run, flags) = daemon(1, &notify);
    flags[0].store(true, Ordering::SeqCst);
    let s = wait_for(Duration::from_secs(10), "slack", || {
        slack.taken().first().cloned()
    });
    let n = wait_for(Duration::from_secs(10), "ntfy", || {
        ntfy.taken().first().cloned()
    });
    // Slack's incoming webhook: a JSON object with `text`.
    assert_eq!(s.path, secret_path);
    assert_eq!(s.header("content-type"), Some("application/json"));
    let text = s.json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("sw0: last collection failed: switched on"),
        "{text}"
    );
    assert!(text.starts_with("*pynchy-status on "), "{text}");
    // ntfy's publish API: the message as the body, Title/Priority/Tags headers.
    assert_eq!(n.path, "/pynchy-alerts");
    assert_eq!(
        n.header("authorization"),
        Some("Bearer tk_ntfy-secret-token-77c1")
    );
    let verdict = get_json(run.addr, "/status")["status"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        n.header("title")
            .unwrap()
            .ends_with(&format!(": {verdict}")),
        "{:?}",
        n.headers
    );
    assert_eq!(n.header("priority"), Some("4"));
    assert_eq!(n.header("tags"), Some("warning"));
    assert_eq!(n.header("click"), Some("http://dash.invalid/"));
    assert!(String::from_utf8_lossy(&n.body).contains("switched on"));
    // No secret in any answer; the config output names the env vars only.
    for path in ["/status", "/status/notify", "/metrics", "/status/events"] {
        let body = String::from_utf8(get(run.addr, path).body).unwrap();
        for secret in ["slack-secret-hook-4f9d", "tk_ntfy-secret-token-77c1"] {
            assert!(!body.contains(secret), "{secret} in {path}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
        .args(["config", "--config"])
        .arg(dir.path().join("pynchy-status.toml"))
        .env(
            "PST_SLACK_URL_SECRET",
            "https://hooks.invalid/slack-secret-hook-4f9d",
        )
        .env("PST_NTFY_TOKEN_SECRET", "tk_ntfy-secret-token-77c1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("url_env = \"PST_SLACK_URL_SECRET\""),
        "{text}"
    );
    for secret in ["slack-secret-hook-4f9d", "tk_ntfy-secret-token-77c1"] {
        assert!(!text.contains(secret), "{secret} in config output");
    }
}

#[test]
fn a_receiver_down_for_30_s_gets_every_message_once_in_order() {
    let hook = Receiver::start("ok");
    hook.down.store(true, Ordering::SeqCst);
    let notify = format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\ngroup_wait = \"300ms\"\n",
        hook.url
    );
    let (_dir, run, flags) = daemon(2, &notify);
    let steps = [(0, true), (1, true), (0, false)];
    for (i, on) in steps {
        flags[i].store(on, Ordering::SeqCst);
        // The change is told (and refused) before the next.
        let before = hook.refused.load(Ordering::SeqCst);
        wait_for(Duration::from_secs(10), "a refused attempt", || {
            (hook.refused.load(Ordering::SeqCst) > before).then_some(())
        });
    }
    let down_since = std::time::Instant::now();
    wait_for(Duration::from_secs(40), "30 s down", || {
        (down_since.elapsed() >= Duration::from_secs(30)).then_some(())
    });
    hook.down.store(false, Ordering::SeqCst);
    let got = wait_for(Duration::from_secs(90), "three deliveries", || {
        let t = hook.taken();
        (t.len() >= 3).then_some(t)
    });
    wait_collections(run.addr, &["sw0"], 10);
    let got = if hook.taken().len() > got.len() {
        hook.taken()
    } else {
        got
    };
    let seen: Vec<(Vec<String>, Vec<String>)> = got
        .iter()
        .map(|t| (webhook_items(t, "appeared"), webhook_items(t, "resolved")))
        .collect();
    assert_eq!(
        seen,
        [
            (vec!["sw0".to_string()], vec![]),
            (vec!["sw1".to_string()], vec![]),
            (vec![], vec!["sw0".to_string()]),
        ]
    );
    let s = get_json(run.addr, "/status/notify")["targets"][0].clone();
    assert_eq!(s["sent"], 3);
    assert_eq!(s["dropped"], 0);
    assert!(s["failed"].as_u64().unwrap() >= 3, "{s}");
}

#[test]
fn a_receiver_down_for_good_drops_counted_and_holds_its_queue() {
    let hook = Receiver::start("ok");
    hook.down.store(true, Ordering::SeqCst);
    let notify = format!(
        "[[notify]]\nname = \"gone\"\nkind = \"webhook\"\nurl = \"{}\"\ngroup_wait = \"0s\"\nqueue = 3\nretry_for = \"1s\"\n",
        hook.url
    );
    let (_dir, run, flags) = daemon(1, &notify);
    let mut deepest = 0;
    for i in 0..30 {
        flags[0].store(i % 2 == 0, Ordering::SeqCst);
        wait_collections(run.addr, &["sw0"], 2);
        let q = get_json(run.addr, "/status/notify")["targets"][0]["queued"]
            .as_u64()
            .unwrap();
        deepest = deepest.max(q);
    }
    assert!(deepest <= 3, "queue {deepest} over its bound");
    let s = wait_for(Duration::from_secs(20), "drops", || {
        let s = get_json(run.addr, "/status/notify")["targets"][0].clone();
        (s["dropped"].as_u64()? >= 1 && s["queued"] == 0).then_some(s)
    });
    assert_eq!(s["sent"], 0);
    assert!(
        s["last_error"].as_str().unwrap().contains("HTTP 503"),
        "{s}"
    );
    let metrics = String::from_utf8(get(run.addr, "/metrics").body).unwrap();
    assert!(
        metrics.contains("pynchy_status_notifications_total{target=\"gone\",outcome=\"dropped\"}")
    );
}

/// Debian's Alertmanager on a free loopback port; killed with the guard.
fn alertmanager(dir: &std::path::Path) -> Option<(ChildGuard, std::net::SocketAddr)> {
    let bin = "/usr/bin/prometheus-alertmanager";
    if !std::path::Path::new(bin).exists() {
        missing_part("Alertmanager (Debian package prometheus-alertmanager)");
        return None;
    }
    std::fs::write(
        dir.join("am.yml"),
        "global:\n  resolve_timeout: 5s\nroute:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
    )
    .unwrap();
    let port = free_port();
    let child = ChildGuard::spawn(
        Command::new(bin)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(Duration::from_secs(20), "Alertmanager", || {
        std::net::TcpStream::connect(addr).ok()?;
        (get(addr, "/-/ready").status == 200).then_some(())
    });
    Some((child, addr))
}

#[test]
fn alertmanager_holds_the_alert_past_its_resolve_timeout_and_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_am, am)) = alertmanager(dir.path()) else {
        return;
    };
    let notify = format!(
        "[[notify]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://{am}\"\nresend = \"1s\"\ngroup_wait = \"500ms\"\n\
         instance = \"pynchy-1\"\nlink = \"http://dash.invalid/\"\n"
    );
    let (_dir, run, flags) = daemon(1, &notify);
    let alerts = || -> Vec<Value> {
        let body = get(am, "/api/v2/alerts").body;
        serde_json::from_slice::<Vec<Value>>(&body)
            .unwrap()
            .into_iter()
            .filter(|a| a["labels"]["section"] == "sw0")
            .collect()
    };
    flags[0].store(true, Ordering::SeqCst);
    let a = wait_for(Duration::from_secs(10), "the alert in Alertmanager", || {
        alerts().pop()
    });
    assert_eq!(a["labels"]["alertname"], "section_error");
    assert_eq!(a["labels"]["severity"], "degraded");
    assert_eq!(a["labels"]["instance"], "pynchy-1");
    // A rule that fires once per section: no subject label.
    assert!(a["labels"]["subject"].is_null(), "{a}");
    assert_eq!(
        a["annotations"]["summary"],
        "last collection failed: switched on"
    );
    assert!(a["annotations"]["since"].is_string());
    assert_eq!(a["generatorURL"], "http://dash.invalid/");
    assert_eq!(a["status"]["state"], "active");
    // Past its resolve_timeout (5 s) and the endsAt of any one send (4 s):
    // still active, because it is re-sent.
    let since = std::time::Instant::now();
    wait_for(Duration::from_secs(20), "12 s", || {
        (since.elapsed() >= Duration::from_secs(12)).then_some(())
    });
    assert_eq!(
        alerts().len(),
        1,
        "the alert went away while the reason held"
    );
    flags[0].store(false, Ordering::SeqCst);
    wait_for(Duration::from_secs(10), "the alert resolved", || {
        alerts().is_empty().then_some(())
    });
    let s = get_json(run.addr, "/status/notify")["targets"][0].clone();
    assert!(s["sent"].as_u64().unwrap() >= 5, "{s}");
    assert_eq!(s["failed"], 0);
}

/// The real binary beside the LiteLLM books stand-in: a provider budget
/// spent is a reason (`llm_budget_exhausted`), and spent no more clears it.
fn binary_with_books(
    notify: &str,
) -> (
    tempfile::TempDir,
    ChildGuard,
    std::net::SocketAddr,
    Arc<Mutex<common::books::Books>>,
) {
    let books = Arc::new(Mutex::new(common::books::Books {
        provider_spend: 10.0,
        ..Default::default()
    }));
    let (dir, child, addr) = common::books::start(&books, &format!("\n{notify}"));
    wait_for(Duration::from_secs(20), "the first round", || {
        (get(addr, "/readyz").status == 200).then_some(())
    });
    (dir, child, addr, books)
}

#[test]
fn a_reload_keeps_the_queue_of_an_unchanged_target() {
    let a = Receiver::start("ok");
    a.down.store(true, Ordering::SeqCst);
    let b = Receiver::start("ok");
    let target_a = format!(
        "[[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"{}\"\ngroup_wait = \"300ms\"\n",
        a.url
    );
    let (dir, child, addr, books) = binary_with_books(&target_a);
    books.lock().unwrap().provider_spend = 100.0;
    wait_for(Duration::from_secs(20), "a refused attempt", || {
        (a.refused.load(Ordering::SeqCst) > 0).then_some(())
    });
    books.lock().unwrap().provider_spend = 10.0;
    wait_for(Duration::from_secs(20), "the resolution queued", || {
        let q = get_json(addr, "/status/notify")["targets"][0]["queued"].as_u64()?;
        (q >= 1).then_some(())
    });
    // Add target b and reload: a is unchanged, its messages stay queued.
    let path = dir.path().join("c.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let with_b = text.replace(
        &target_a,
        &format!(
            "{target_a}[[notify]]\nname = \"b\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            b.url
        ),
    );
    assert_ne!(text, with_b);
    std::fs::write(&path, with_b).unwrap();
    signal(child.id(), "-HUP");
    wait_for(Duration::from_secs(20), "target b", || {
        let t = get_json(addr, "/status/notify")["targets"]
            .as_array()?
            .len();
        (t == 2).then_some(())
    });
    a.down.store(false, Ordering::SeqCst);
    let got = wait_for(Duration::from_secs(90), "both messages", || {
        let t = a.taken();
        (t.len() >= 2).then_some(t)
    });
    let appeared: Vec<String> = got[0].json()["appeared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rule"].as_str().unwrap().to_string())
        .collect();
    let resolved: Vec<String> = got[1].json()["resolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rule"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        (appeared, resolved),
        (
            vec!["llm_budget_exhausted".to_string()],
            vec!["llm_budget_exhausted".to_string()]
        )
    );
    assert!(
        b.taken().is_empty(),
        "b was told of what happened before it existed"
    );
}

#[test]
fn notify_test_sends_one_message_and_prints_the_answer() {
    let hook = Receiver::start("thanks");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            hook.url
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
            .args(["notify", "--config", "c.toml"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&["--test"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hook: HTTP 200: thanks\n"
    );
    let t = hook.taken();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].json()["why"], "test");
    let out = run(&["--test", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("no [[notify]] target named nosuch; targets: hook"));
    hook.down.store(true, Ordering::SeqCst);
    let out = run(&["--test", "hook"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hook: failed: answered HTTP 503"),
        "{out:?}"
    );
}

/// The real binary, its log in a file: a Slack target whose URL (with its
/// secret path) and an ntfy target whose token are distinctive, both
/// receivers refusing, so every send fails and is logged. Neither secret
/// appears in any log line.
#[test]
fn no_secret_in_any_log_line() {
    let slack = Receiver::start("ok");
    let ntfy = Receiver::start("ok");
    slack.down.store(true, Ordering::SeqCst);
    ntfy.down.store(true, Ordering::SeqCst);
    let books = Arc::new(Mutex::new(common::books::Books {
        provider_spend: 10.0,
        ..Default::default()
    }));
    let b = books.clone();
    let url = stand_in(move |p| common::books::route(&b, p));
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "listen = \"127.0.0.1:{listen}\"\n[pynchy]\nurl = \"http://127.0.0.1:9\"\nsystemd_bus = \"off\"\n\
             [gateway]\nmode = \"litellm\"\nurl = \"{url}\"\nmodels_interval = \"off\"\n\
             docker_host = \"unix:///nonexistent.sock\"\n[sections.llm]\ninterval = \"1s\"\n\
             [[notify]]\nkind = \"slack\"\nurl_env = \"PST_SLACK_SECRET_URL\"\ngroup_wait = \"200ms\"\nretry_for = \"3s\"\n\
             [[notify]]\nkind = \"ntfy\"\nurl = \"{}/t\"\ntoken_env = \"PST_NTFY_SECRET\"\ngroup_wait = \"200ms\"\nretry_for = \"3s\"\n",
            ntfy.url
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let child = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
            .args(["serve", "--config", "c.toml"])
            .current_dir(dir.path())
            .env("RUST_LOG", "debug")
            .env(
                "PST_SLACK_SECRET_URL",
                format!("{}/services/T1/B1/xoxb-slack-secret-path-0c3e", slack.url),
            )
            .env("PST_NTFY_SECRET", "tk_ntfy-log-secret-52aa")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
    wait_for(Duration::from_secs(20), "ready", || {
        std::net::TcpStream::connect(addr).ok()?;
        (get(addr, "/readyz").status == 200).then_some(())
    });
    books.lock().unwrap().provider_spend = 100.0;
    wait_for(
        Duration::from_secs(30),
        "both targets to give up a message",
        || {
            let t = get_json(addr, "/status/notify")["targets"].clone();
            let dropped = |i: usize| t[i]["dropped"].as_u64().unwrap_or(0);
            (dropped(0) >= 1 && dropped(1) >= 1).then_some(())
        },
    );
    assert!(slack.refused.load(Ordering::SeqCst) >= 1 && ntfy.refused.load(Ordering::SeqCst) >= 1);
    signal(child.id(), "-TERM");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("notification dropped"), "{text}");
    for secret in ["xoxb-slack-secret-path-0c3e", "tk_ntfy-log-secret-52aa"] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
}
