//! A stand-in of LiteLLM 1.108.7's management API with a database: its
//! books (spend-log rows in the exact row shape) served as the proxy serves
//! them — `/spend/logs/v2` filtering `startTime` by whole seconds (both ends
//! inclusive), sorting, paging with LIMIT/OFFSET and capping its count at
//! 10,000 — and every path asked logged. Used by tests/llm.rs and the
//! dashboard's test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::Answer;

pub const INTERNAL_KEY: &str = "litellm-internal-health-check";
pub const KEY: &str = "sk-llm-stand-in-master-6b1e";

#[derive(Default)]
pub struct Books {
    pub rows: Vec<Value>,
    /// Every path asked, with its query.
    pub asked: Vec<String>,
    pub provider_spend: f64,
}

pub fn t(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, false)
}

pub fn parse_t(s: &str) -> DateTime<Utc> {
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

pub fn route(books: &Arc<Mutex<Books>>, path: &str) -> Answer {
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
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

pub fn row(
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
pub fn day_of_rows(now: DateTime<Utc>, n: usize) -> Vec<Value> {
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

/// The daemon (the real binary) beside a stand-in keeping `books`: llm
/// every second, pages of 200, 6 a collection; `extra` goes in `[llm]`.
pub fn start(
    books: &Arc<Mutex<Books>>,
    extra: &str,
) -> (tempfile::TempDir, super::ChildGuard, std::net::SocketAddr) {
    let b = books.clone();
    let url = super::stand_in(move |p| route(&b, p));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[pynchy]\nurl = \"http://127.0.0.1:9\"\nsystemd_bus = \"off\"\n\
         [gateway]\nmode = \"litellm\"\nurl = \"{url}\"\nkey_env = \"PST_LLM_KEY\"\nmodels_interval = \"off\"\n\
         docker_host = \"unix:///nonexistent.sock\"\n\
         [llm]\npage_size = 200\npages_per_collection = 6\n{extra}\
         [sections.llm]\ninterval = \"1s\"\ntimeout = \"10s\"\n"
    );
    let (child, addr) = super::spawn_serve(dir.path(), &config, &[("PST_LLM_KEY", KEY)]);
    (dir, child, addr)
}
