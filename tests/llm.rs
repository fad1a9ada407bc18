//! The `llm` section against a stand-in of LiteLLM 1.108.7's database-backed
//! management API: `/spend/logs/v2` filtering `startTime` by whole seconds
//! (both ends inclusive), sorting, paging with LIMIT/OFFSET and capping its
//! count at 10,000 as the proxy does, fed with generated rows in its exact
//! row shape. The figures are checked against `tests/llm_truth.py`, which
//! computes them apart from the daemon's code; rows written after a
//! collection show at the next one and count once; the 24 h window slides;
//! the stand-in's request log proves no LLM call and no heavy endpoint.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::books::*;
use common::*;
use serde_json::{json, Value};

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
