//! The `llm` section against a stand-in of LiteLLM 1.108.7's database-backed
//! management API: `/spend/logs/v2` filtering `startTime` by whole seconds
//! (both ends inclusive), sorting, paging with LIMIT/OFFSET and capping its
//! count at 10,000 as the proxy does, fed with generated rows in its exact
//! row shape. The figures are checked against `tests/llm_truth.py`, which
//! computes them apart from the daemon's code; rows written after a
//! collection show at the next one and count once; the 24 h window slides;
//! the stand-in's request log proves no LLM call and no heavy endpoint.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use common::*;
use serde_json::{json, Value};

const INTERNAL_KEY: &str = "litellm-internal-health-check";
const KEY: &str = "sk-llm-stand-in-master-6b1e";

#[derive(Default)]
struct Books {
    rows: Vec<Value>,
    /// Every path asked, with its query.
    asked: Vec<String>,
    provider_spend: f64,
}

fn t(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, false)
}

fn parse_t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn query(path: &str) -> BTreeMap<String, String> {
    let q = path.split_once('?').map(|x| x.1).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.into(), v.replace("%20", " ").replace("%3A", ":")))
        .collect()
}

/// `/spend/logs/v2` as 1.108.7 answers it (spend_management_endpoints.py).
fn spend_logs(b: &Books, q: &BTreeMap<String, String>) -> Value {
    let date = |k: &str| {
        NaiveDateTime::parse_from_str(&q[k], "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
    };
    let (from, to) = (date("start_date"), date("end_date"));
    let page: usize = q.get("page").map_or(1, |p| p.parse().unwrap());
    let size: usize = q.get("page_size").map_or(50, |p| p.parse().unwrap());
    assert!((1..=1000).contains(&size), "page_size {size}");
    let exclude = q.get("exclude_internal_health_checks").map(String::as_str) == Some("true");
    let sort = q.get("sort_by").cloned().unwrap_or("startTime".into());
    let desc = q.get("sort_order").map(String::as_str) != Some("asc");
    let mut hits: Vec<&Value> = b
        .rows
        .iter()
        .filter(|r| {
            let s = parse_t(r["startTime"].as_str().unwrap());
            s >= from && s <= to && !(exclude && r["api_key"] == INTERNAL_KEY)
        })
        .collect();
    hits.sort_by_key(|r| parse_t(r[sort.as_str()].as_str().unwrap()));
    if desc {
        hits.reverse();
    }
    let total = hits.len().min(10_001);
    let capped = total > 10_000;
    let total = total.min(10_000);
    let data: Vec<Value> = hits
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .cloned()
        .collect();
    json!({"data": data, "total": total, "page": page, "page_size": size,
           "total_pages": total.div_ceil(size), "total_is_capped": capped})
}

/// `/user/daily/activity` for one day: the rollup table's figures.
fn daily(b: &Books, q: &BTreeMap<String, String>) -> Value {
    let day = &q["start_date"];
    let mut spend = 0.0;
    let (mut req, mut failed) = (0, 0);
    let mut providers: BTreeMap<String, f64> = BTreeMap::new();
    let mut groups: BTreeMap<String, f64> = BTreeMap::new();
    for r in &b.rows {
        if !r["startTime"].as_str().unwrap().starts_with(day.as_str())
            || r["api_key"] == INTERNAL_KEY
        {
            continue;
        }
        let s = r["spend"].as_f64().unwrap();
        spend += s;
        req += 1;
        failed += u64::from(r["status"] == "failure");
        *providers
            .entry(r["custom_llm_provider"].as_str().unwrap().into())
            .or_default() += s;
        *groups
            .entry(r["model_group"].as_str().unwrap().into())
            .or_default() += s;
    }
    let wrap = |m: BTreeMap<String, f64>| -> Value {
        m.into_iter()
            .map(|(k, v)| {
                (
                    k,
                    json!({"metrics": {"spend": v, "api_requests": 0}, "metadata": {}}),
                )
            })
            .collect::<serde_json::Map<String, Value>>()
            .into()
    };
    json!({"results": [{"date": day, "metrics": {"spend": spend, "api_requests": req, "failed_requests": failed,
            "successful_requests": req - failed, "total_tokens": 0},
            "breakdown": {"models": {}, "model_groups": wrap(groups), "providers": wrap(providers), "api_keys": {}}}],
           "metadata": {"total_spend": spend, "total_api_requests": req, "page": 1, "total_pages": 1, "has_more": false}})
}

fn route(books: &Arc<Mutex<Books>>, path: &str) -> Answer {
    let mut b = books.lock().unwrap();
    b.asked.push(path.to_string());
    let q = query(path);
    let now = Utc::now();
    let body = match path.split('?').next().unwrap() {
        "/health/readiness" => json!({"status": "healthy", "db": "connected"}),
        "/spend/logs/v2" => spend_logs(&b, &q),
        "/user/daily/activity" => daily(&b, &q),
        "/global/spend" => json!({"spend": 12.5, "max_budget": 0.0}),
        // 1.108.7 without Redis: now + the absolute expiry, read as a TTL.
        "/provider/budgets" => {
            let true_reset = parse_t("2026-12-31T00:00:00+00:00").timestamp();
            let buggy = now + chrono::Duration::seconds(true_reset);
            json!({"providers": {"anthropic": {"budget_limit": 100.0, "time_period": "30d",
                "spend": b.provider_spend, "budget_reset_at": buggy.to_rfc3339()}}})
        }
        "/model/info" => json!({"data": [
            {"model_name": "sonnet", "litellm_params": {"model": "anthropic/claude-sonnet", "max_budget": 1000.0, "budget_duration": "1d"},
             "model_info": {"id": "sonnet-d1"}},
            {"model_name": "opus", "litellm_params": {"model": "anthropic/claude-opus"}, "model_info": {"id": "opus-d1"}}]}),
        "/key/list" => json!({"keys": [
            {"token": "9f86d081884c7d659a2feaa0c55ad015", "key_alias": null, "spend": 95.0, "max_budget": 100.0,
             "budget_duration": "30d", "budget_reset_at": "2026-12-31T00:00:00+00:00"},
            {"token": "aaaa", "key_alias": "agents", "spend": 1.0, "max_budget": null}],
            "total_count": 2, "current_page": 1, "total_pages": 1}),
        "/router/settings" => json!({"current_values": {"allowed_fails": 1, "cooldown_time": 600,
            "provider_budget_config": null}}),
        _ => json!({"detail": "Not Found"}),
    };
    Answer::Json(body.to_string())
}

/// A small deterministic generator (no crate): an LCG.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn row(
    id: String,
    start: DateTime<Utc>,
    dur_ms: i64,
    group: &str,
    failed: bool,
    class: &str,
) -> Value {
    let provider = if group == "gpt" {
        "openai"
    } else {
        "anthropic"
    };
    let end = start + chrono::Duration::milliseconds(dur_ms);
    let error = if failed {
        json!({"error_class": class, "error_code": if class == "RateLimitError" {"429"} else {"401"},
               "error_message": format!("litellm.{class}: upstream said no\nTraceback (most recent call last): secret-in-trace"),
               "llm_provider": provider, "traceback": "Traceback: secret-in-trace"})
    } else {
        json!({})
    };
    json!({"request_id": id, "call_type": "acompletion", "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "spend": if failed { 0.0 } else { 0.0125 }, "total_tokens": 100, "prompt_tokens": 80, "completion_tokens": 20,
        "startTime": t(start), "endTime": t(end), "completionStartTime": t(end),
        "model": format!("{provider}/{group}"), "model_id": format!("{group}-d1"), "model_group": group,
        "custom_llm_provider": provider, "api_base": "https://api.example.invalid", "user": "",
        "metadata": {"user_api_key_alias": "agents", "user_api_key": "88dc28d0", "error_information": error,
                     "requester_metadata": {}},
        "cache_hit": "False", "cache_key": "", "request_tags": [], "team_id": null, "end_user": "",
        "requester_ip_address": "", "session_id": "s", "status": if failed {"failure"} else {"success"},
        "request_duration_ms": dur_ms})
}

/// Rows over the last 24 h: three model groups, two providers, failures of
/// two classes, LiteLLM's own health checks, and `recent_failures` failures
/// of `opus` within the last 10 minutes.
fn day_of_rows(now: DateTime<Utc>, n: usize) -> Vec<Value> {
    let mut g = Lcg(7);
    let groups = ["sonnet", "opus", "gpt"];
    let mut out = Vec::new();
    for i in 0..n {
        let ago_ms = 60_000 + g.next(24 * 3600 * 1000 - 120_000) as i64;
        let start = now - chrono::Duration::milliseconds(ago_ms);
        let group = groups[g.next(3) as usize];
        let failed = g.next(10) == 0;
        let class = if g.next(2) == 0 {
            "RateLimitError"
        } else {
            "AuthenticationError"
        };
        let dur = 200 + g.next(20_000) as i64;
        out.push(row(format!("req-{i}"), start, dur, group, failed, class));
    }
    for i in 0..50 {
        let mut r = row(
            format!("hc-{i}"),
            now - chrono::Duration::minutes(i),
            50,
            "sonnet",
            true,
            "AuthenticationError",
        );
        r["api_key"] = json!(INTERNAL_KEY);
        out.push(r);
    }
    out
}

fn truth(rows: &[Value], as_of: &str, recent: u64) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rows.json");
    std::fs::write(&f, serde_json::to_vec(rows).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/llm_truth.py");
    let out = std::process::Command::new("python3")
        .args([script, f.to_str().unwrap(), as_of, &recent.to_string()])
        .output()
        .expect("python3 runs the truth script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * y.abs().max(1.0),
        _ => a == b,
    }
}

/// Every count, percentile and spend of `section` equals the script's.
fn assert_figures(llm: &Value, rows: &[Value]) {
    let as_of = llm["as_of"].as_str().unwrap();
    let want = truth(rows, as_of, llm["recent_window_seconds"].as_u64().unwrap());
    let keys = [
        "requests_recent",
        "failures_recent",
        "requests_1h",
        "failures_1h",
        "requests_24h",
        "failures_24h",
        "p50_ms_1h",
        "p95_ms_1h",
        "spend_24h",
    ];
    let check = |got: &Value, want: &Value, what: &str| {
        for k in keys {
            assert!(
                close(&got[k], &want[k]),
                "{what} {k}: got {} want {}",
                got[k],
                want[k]
            );
        }
    };
    check(&llm["totals"], &want["all"], "all");
    for (list, key) in [("model_groups", "model_groups"), ("providers", "providers")] {
        let got = llm[list].as_array().unwrap();
        let want_map = want[key].as_object().unwrap();
        assert_eq!(got.len(), want_map.len(), "{list}: {got:?}");
        for g in got {
            let name = g["name"].as_str().unwrap();
            check(g, &want_map[name], name);
            let classes = &want_map[name]["classes_24h"];
            for c in g["top_errors"].as_array().unwrap() {
                assert_eq!(
                    c["failures_24h"],
                    classes[c["class"].as_str().unwrap()],
                    "{name}"
                );
            }
        }
    }
}

fn start(
    books: &Arc<Mutex<Books>>,
    extra: &str,
) -> (tempfile::TempDir, ChildGuard, std::net::SocketAddr) {
    let b = books.clone();
    let url = stand_in(move |p| route(&b, p));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[pynchy]\nurl = \"http://127.0.0.1:9\"\nsystemd_bus = \"off\"\n\
         [gateway]\nmode = \"litellm\"\nurl = \"{url}\"\nkey_env = \"PST_LLM_KEY\"\nmodels_interval = \"off\"\n\
         docker_host = \"unix:///nonexistent.sock\"\n\
         [llm]\npage_size = 200\npages_per_collection = 6\n{extra}\
         [sections.llm]\ninterval = \"1s\"\ntimeout = \"10s\"\n"
    );
    let (child, addr) = spawn_serve(dir.path(), &config, &[("PST_LLM_KEY", KEY)]);
    (dir, child, addr)
}

/// The `pynchy_llm_*` series named in examples/prometheus/alerts.yml and
/// examples/grafana/pynchy-status.json.
fn mixin_llm_series() -> std::collections::BTreeSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut text = std::fs::read_to_string(root.join("prometheus/alerts.yml")).unwrap();
    text += &std::fs::read_to_string(root.join("grafana/pynchy-status.json")).unwrap();
    let mut out = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("pynchy_llm_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    assert!(out.len() >= 5, "{out:?}");
    out
}

/// The llm section's reasons: rule, level, text.
fn llm_reasons(status: &Value) -> Vec<(String, String, String)> {
    status["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["section"] == "llm")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("rule"), s("level"), s("reason"))
        })
        .collect()
}

fn llm(addr: std::net::SocketAddr) -> Value {
    get_json(addr, "/status/llm")["llm"].clone()
}

#[test]
fn figures_equal_an_independent_count_each_row_once_and_the_window_slides() {
    let now = Utc::now();
    let mut rows = day_of_rows(now, 3000);
    // Rows that leave the 24 h window 25 s into the test.
    for i in 0..7 {
        let start = now - chrono::Duration::hours(24) + chrono::Duration::seconds(25);
        rows.push(row(format!("edge-{i}"), start, 1000, "gpt", false, ""));
    }
    let books = Arc::new(Mutex::new(Books {
        rows: rows.clone(),
        ..Books::default()
    }));
    let (_dir, _child, addr) = start(&books, "");
    // 3,057 rows in pages of 200, 6 pages a collection: several collections.
    let first = wait_for(Duration::from_secs(60), "the whole day read", || {
        let l = llm(addr);
        (l["window"]["complete"] == json!(true)).then_some(l)
    });
    assert_eq!(first["state"], "tracking", "{first}");
    assert_figures(&first, &rows);
    assert_eq!(
        first["window"]["rows"].as_u64().unwrap() as usize,
        3007,
        "health checks are not rows"
    );

    // Rows written after a collection: at the next one, once.
    let collected = first["as_of"].as_str().unwrap().to_string();
    let n = first["totals"]["requests_24h"].as_u64().unwrap();
    let mut new_rows = Vec::new();
    for i in 0..12 {
        let start = Utc::now() - chrono::Duration::seconds(3);
        new_rows.push(row(
            format!("new-{i}"),
            start,
            2500,
            "opus",
            i < 11,
            "RateLimitError",
        ));
    }
    books.lock().unwrap().rows.extend(new_rows.iter().cloned());
    rows.extend(new_rows);
    let later = wait_for(Duration::from_secs(30), "the new rows", || {
        let l = llm(addr);
        (l["as_of"].as_str() != Some(&collected)
            && l["totals"]["requests_24h"].as_u64() >= Some(n + 12))
        .then_some(l)
    });
    assert_figures(&later, &rows);
    // Two more collections: still counted once.
    let as_of = later["as_of"].clone();
    let again = wait_for(Duration::from_secs(30), "two more collections", || {
        let l = llm(addr);
        let moved = l["as_of"] != as_of;
        moved.then_some(l)
    });
    let again = wait_for(Duration::from_secs(30), "one more", || {
        let l = llm(addr);
        (l["as_of"] != again["as_of"]).then_some(l)
    });
    assert_figures(&again, &rows);
    // 11 of the 12 new opus requests failed: the failure-rate rule, and
    // the latest message's first line only.
    let status = get_json(addr, "/status");
    let found = reasons(&status);
    assert!(
        found
            .iter()
            .any(|r| r.contains("model group opus:")
                && r.contains("requests failed in the last 15m")),
        "{found:?} {}",
        again["model_groups"]
    );
    let text = status.to_string();
    for secret in ["secret-in-trace", "Traceback", KEY, "88dc28d0f030"] {
        assert!(!text.contains(secret), "{secret} in /status");
    }

    // The window slides: the edge rows leave 25 s after the start.
    let slid = wait_for(
        Duration::from_secs(60),
        "the edge rows out of the window",
        || {
            let l = llm(addr);
            let gone = l["as_of"]
                .as_str()
                .is_some_and(|a| parse_t(a) > now + chrono::Duration::seconds(26));
            gone.then_some(l)
        },
    );
    assert_figures(&slid, &rows);

    // Every llm series the mixin's alerts and panels query is exported.
    let metrics = String::from_utf8(get(addr, "/metrics").body).unwrap();
    for name in mixin_llm_series() {
        let exported = metrics.lines().any(|l| {
            l.strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        });
        assert!(exported, "{name} not in /metrics");
    }

    // What was asked: no LLM call, no /health, not the heavy /spend/logs,
    // pages of at most 200, never a page past what was needed.
    let asked = books.lock().unwrap().asked.clone();
    for p in &asked {
        let path = p.split('?').next().unwrap();
        assert!(
            [
                "/health/readiness",
                "/spend/logs/v2",
                "/user/daily/activity",
                "/global/spend",
                "/provider/budgets",
                "/model/info",
                "/key/list",
                "/router/settings"
            ]
            .contains(&path),
            "asked {p}"
        );
        assert!(
            !p.contains("page_size=")
                || p.contains("page_size=200")
                || path == "/user/daily/activity",
            "{p}"
        );
    }
    let pages = asked
        .iter()
        .filter(|p| p.starts_with("/spend/logs/v2"))
        .count();
    let collections = asked
        .iter()
        .filter(|p| p.starts_with("/health/readiness"))
        .count();
    // The day (16 pages) once, then about one page per collection.
    assert!(
        pages <= 16 + 2 * collections + 30,
        "{pages} pages for {collections} collections"
    );
}

#[test]
fn budgets_corrected_and_judged() {
    let books = Arc::new(Mutex::new(Books {
        provider_spend: 40.0,
        ..Books::default()
    }));
    let (_dir, _child, addr) = start(&books, "");
    let l = wait_for(Duration::from_secs(30), "budgets", || {
        let l = llm(addr);
        (l["budgets"].as_array().is_some_and(|b| b.len() == 3)).then_some(l)
    });
    let by_kind = |k: &str| {
        l["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["kind"] == k)
            .unwrap()
            .clone()
    };
    let p = by_kind("provider");
    // 1.108.7's in-memory bug corrected: the true instant, and marked.
    let reset = parse_t(p["resets_at"].as_str().unwrap());
    let true_reset = parse_t("2026-12-31T00:00:00+00:00");
    assert!((reset - true_reset).num_seconds().abs() <= 1, "{p}");
    assert_eq!(p["resets_with_proxy"], true);
    assert_eq!(p["used"], 0.4);
    let k = by_kind("key");
    assert_eq!(k["name"], "key 9f86d081", "only a prefix of the hash");
    let d = by_kind("deployment");
    assert_eq!(
        (d["limit"].clone(), d["approximate"].clone()),
        (json!(1000.0), json!(true))
    );
    assert_eq!(l["cooldown_time_seconds"], 600.0);
    assert_eq!(l["spend"]["last_30d"], 12.5);
    let status = get_json(addr, "/status");
    assert_eq!(
        llm_reasons(&status),
        [(
            "llm_budget_near".to_string(),
            "degraded".to_string(),
            "key budget key 9f86d081 is 95% used: $95.00 of $100.00".to_string()
        )]
    );
    // The provider's budget spent: its requests stop; down.
    books.lock().unwrap().provider_spend = 100.0;
    let down = wait_for(Duration::from_secs(30), "the exhausted budget", || {
        let s = get_json(addr, "/status");
        has_reason(&s, "provider budget anthropic is spent").then_some(s)
    });
    assert!(llm_reasons(&down).contains(&(
        "llm_budget_exhausted".to_string(),
        "down".to_string(),
        "provider budget anthropic is spent: $100.00 of $100.00".to_string()
    )));
    let metrics = String::from_utf8(get(addr, "/metrics").body).unwrap();
    assert!(
        metrics.contains("pynchy_llm_budget_used_ratio{kind=\"provider\",name=\"anthropic\"} 1.0"),
        "{metrics}"
    );
}

#[test]
fn a_capped_count_is_read_in_finer_slices() {
    let now = Utc::now();
    // 12,000 requests within one hour, three hours ago: LiteLLM caps that
    // hour's count at 10,000 (`total_is_capped`).
    let mut g = Lcg(11);
    let mut rows: Vec<Value> = (0..12_000)
        .map(|i| {
            let start = now - chrono::Duration::hours(3)
                + chrono::Duration::milliseconds(g.next(3_000_000) as i64);
            row(
                format!("burst-{i}"),
                start,
                100 + g.next(900) as i64,
                "sonnet",
                i % 7 == 0,
                "RateLimitError",
            )
        })
        .collect();
    rows.extend(day_of_rows(now, 200));
    let books = Arc::new(Mutex::new(Books {
        rows: rows.clone(),
        ..Books::default()
    }));
    let (_dir, _child, addr) = start(&books, "");
    let done = wait_for(Duration::from_secs(120), "the burst read", || {
        let l = llm(addr);
        (l["window"]["complete"] == json!(true)).then_some(l)
    });
    assert!(
        done["window"]["narrowed"].as_u64().unwrap() >= 1,
        "{}",
        done["window"]
    );
    assert_figures(&done, &rows);
}
