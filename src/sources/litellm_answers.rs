//! What LiteLLM's management answers hold (1.108.7's shapes), parsed into
//! the few typed values the `llm` section keeps: a spend-log row without
//! its prompt or response, a day's rollup, budgets, router settings. Only
//! the fields needed are read; a key becomes its alias or a hash prefix.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

/// The most characters kept of an error message's first line.
pub const MESSAGE_CHARS: usize = 200;

/// An answer not in the expected shape: which endpoint's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("LiteLLM's answer to {0} is not in the expected shape")]
pub struct Malformed(pub &'static str);

#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub request_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub model_group: String,
    pub model_id: String,
    pub provider: String,
    pub spend: f64,
    pub failed: bool,
    pub duration_ms: u64,
    /// A failure's error class (LiteLLM's `error_class`), code and the first
    /// line of its message, cut to [`MESSAGE_CHARS`].
    pub error: Option<RowError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub class: String,
    pub code: String,
    pub message: String,
}

#[derive(Deserialize)]
struct RawRow {
    request_id: Option<String>,
    #[serde(rename = "startTime")]
    start_time: Option<String>,
    #[serde(rename = "endTime")]
    end_time: Option<String>,
    model_group: Option<String>,
    model_id: Option<String>,
    custom_llm_provider: Option<String>,
    spend: Option<f64>,
    status: Option<String>,
    request_duration_ms: Option<f64>,
    metadata: Option<RawMeta>,
}

#[derive(Deserialize)]
struct RawMeta {
    error_information: Option<RawErrorInfo>,
}

#[derive(Deserialize)]
struct RawErrorInfo {
    error_class: Option<String>,
    error_code: Option<serde_json::Value>,
    error_message: Option<String>,
}

/// One page of `/spend/logs/v2`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsPage {
    pub rows: Vec<LogRow>,
    /// Rows that could not be read (no id or no time): skipped, counted.
    pub skipped: u64,
    pub total: u64,
    pub total_is_capped: bool,
}

#[derive(Deserialize)]
struct RawPage {
    data: Vec<serde_json::Value>,
    total: Option<u64>,
    #[serde(default)]
    total_is_capped: bool,
}

/// A query of `/spend/logs/v2`: rows whose `startTime` is in `[from, to]`
/// (both inclusive, to the second), newest `endTime` first, one page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Daily {
    pub spend: f64,
    pub requests: u64,
    pub failed: u64,
    pub by_provider: BTreeMap<String, f64>,
    pub by_model_group: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
struct RawDaily {
    results: Vec<RawDay>,
}

#[derive(Deserialize)]
struct RawDay {
    date: NaiveDate,
    metrics: RawMetrics,
    #[serde(default)]
    breakdown: RawBreakdown,
}

#[derive(Deserialize, Default)]
struct RawMetrics {
    #[serde(default)]
    spend: f64,
    #[serde(default)]
    api_requests: u64,
    #[serde(default)]
    failed_requests: u64,
}

#[derive(Deserialize, Default)]
struct RawBreakdown {
    #[serde(default)]
    model_groups: BTreeMap<String, RawMetricWrap>,
    #[serde(default)]
    providers: BTreeMap<String, RawMetricWrap>,
}

#[derive(Deserialize)]
struct RawMetricWrap {
    metrics: RawMetrics,
}

/// A provider budget (`/provider/budgets`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderBudget {
    pub provider: String,
    pub limit: f64,
    pub spend: f64,
    pub period: Option<String>,
    /// When it resets, corrected for 1.108.7's in-memory bug.
    pub resets_at: Option<DateTime<Utc>>,
    /// The proxy keeps it in memory (no Redis): a proxy restart resets it.
    pub in_memory: bool,
}

#[derive(Deserialize)]
struct RawProviderBudgets {
    providers: BTreeMap<String, RawProviderBudget>,
}

#[derive(Deserialize)]
struct RawProviderBudget {
    budget_limit: Option<f64>,
    time_period: Option<String>,
    spend: Option<f64>,
    budget_reset_at: Option<String>,
}

/// A deployment's budget (`/model/info`'s `litellm_params`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentBudget {
    pub model_group: String,
    pub model_id: String,
    pub limit: f64,
    pub period: Option<String>,
}

#[derive(Deserialize)]
struct RawModelInfo {
    data: Vec<RawDeployment>,
}

#[derive(Deserialize)]
struct RawDeployment {
    model_name: Option<String>,
    #[serde(default)]
    litellm_params: RawParams,
    #[serde(default)]
    model_info: RawDeploymentInfo,
}

#[derive(Deserialize, Default)]
struct RawParams {
    max_budget: Option<f64>,
    budget_duration: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawDeploymentInfo {
    id: Option<String>,
}

/// A virtual key's budget (`/key/list`), named by alias or hash prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyBudget {
    pub name: String,
    pub spend: f64,
    pub limit: f64,
    pub period: Option<String>,
    pub resets_at: Option<DateTime<Utc>>,
}

/// One page of `/key/list`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeysPage {
    pub budgets: Vec<KeyBudget>,
    pub total_pages: u32,
}

#[derive(Deserialize)]
struct RawKeys {
    keys: Vec<RawKey>,
    total_pages: Option<u32>,
}

#[derive(Deserialize)]
struct RawKey {
    token: Option<String>,
    key_alias: Option<String>,
    spend: Option<f64>,
    max_budget: Option<f64>,
    budget_duration: Option<String>,
    budget_reset_at: Option<String>,
}

/// The router's settings that matter here (`/router/settings`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterSettings {
    pub cooldown_time: Duration,
    pub allowed_fails: u64,
}

#[derive(Deserialize)]
struct RawRouter {
    current_values: RawRouterValues,
}

#[derive(Deserialize)]
struct RawRouterValues {
    cooldown_time: Option<f64>,
    allowed_fails: Option<u64>,
}

/// LiteLLM's defaults when the router does not say (`cooldown_time` 5 s,
/// `allowed_fails` 3).
pub const DEFAULT_ROUTER: RouterSettings = RouterSettings {
    cooldown_time: Duration::from_secs(5),
    allowed_fails: 3,
};

/// Reads a LiteLLM time: RFC 3339, or naive (UTC) with `T` or a space.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|n| n.and_utc())
}

/// The first non-blank line of `s`, cut to [`MESSAGE_CHARS`] characters.
pub fn first_line(s: &str) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    match line.char_indices().nth(MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

fn row(v: serde_json::Value) -> Option<LogRow> {
    let r: RawRow = serde_json::from_value(v).ok()?;
    let start = parse_time(r.start_time.as_deref()?)?;
    let end = r.end_time.as_deref().and_then(parse_time).unwrap_or(start);
    let failed = r.status.as_deref() == Some("failure");
    let error = failed.then(|| {
        let info = r.metadata.and_then(|m| m.error_information);
        let (class, code, message) = match info {
            Some(i) => (i.error_class, i.error_code, i.error_message),
            None => (None, None, None),
        };
        let code = match code {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        RowError {
            class: class
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "unknown".into()),
            code,
            message: first_line(message.as_deref().unwrap_or("")),
        }
    });
    Some(LogRow {
        request_id: r.request_id.filter(|id| !id.is_empty())?,
        start,
        end,
        model_group: r
            .model_group
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| "unknown".into()),
        model_id: r.model_id.unwrap_or_default(),
        provider: r
            .custom_llm_provider
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "unknown".into()),
        spend: r.spend.unwrap_or(0.0).max(0.0),
        failed,
        duration_ms: r.request_duration_ms.unwrap_or(0.0).max(0.0) as u64,
        error,
    })
}

/// Parses one `/spend/logs/v2` answer.
pub fn parse_logs(body: &[u8]) -> Result<LogsPage, Malformed> {
    let raw: RawPage = serde_json::from_slice(body).map_err(|_| Malformed("/spend/logs/v2"))?;
    let n = raw.data.len() as u64;
    let rows: Vec<LogRow> = raw.data.into_iter().filter_map(row).collect();
    Ok(LogsPage {
        skipped: n - rows.len() as u64,
        rows,
        total: raw.total.unwrap_or(0),
        total_is_capped: raw.total_is_capped,
    })
}

/// Parses one `/user/daily/activity` answer: the day `day` alone.
pub fn parse_daily(body: &[u8], day: NaiveDate) -> Result<Daily, Malformed> {
    let raw: RawDaily =
        serde_json::from_slice(body).map_err(|_| Malformed("/user/daily/activity"))?;
    let mut d = Daily::default();
    for r in raw.results.into_iter().filter(|r| r.date == day) {
        d.spend += r.metrics.spend;
        d.requests += r.metrics.api_requests;
        d.failed += r.metrics.failed_requests;
        for (k, v) in r.breakdown.providers {
            *d.by_provider.entry(k).or_default() += v.metrics.spend;
        }
        for (k, v) in r.breakdown.model_groups {
            *d.by_model_group.entry(k).or_default() += v.metrics.spend;
        }
    }
    Ok(d)
}

/// The true reset instant of a provider budget. 1.108.7 without Redis reads
/// an absolute expiry as a TTL: `budget_reset_at` is then the answer's time
/// plus an epoch, decades ahead; the epoch is `budget_reset_at − answered`.
/// Returns the instant and whether the proxy keeps the budget in memory.
pub fn provider_reset(at: DateTime<Utc>, answered: DateTime<Utc>) -> (DateTime<Utc>, bool) {
    let ahead = at - answered;
    // A real TTL is at most the budget's period; years ahead is the bug.
    if ahead > chrono::Duration::days(3650) {
        // To the nearest second: `answered` is the proxy's `Date` (whole
        // seconds) or our own clock, either a fraction off.
        let secs = (ahead.num_milliseconds() + 500).div_euclid(1000);
        let epoch = DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or(at);
        (epoch, true)
    } else {
        (at, false)
    }
}

/// Parses `/provider/budgets`, answered at `answered` (its `Date`).
pub fn parse_provider_budgets(
    body: &[u8],
    answered: DateTime<Utc>,
) -> Result<Vec<ProviderBudget>, Malformed> {
    let raw: RawProviderBudgets =
        serde_json::from_slice(body).map_err(|_| Malformed("/provider/budgets"))?;
    Ok(raw
        .providers
        .into_iter()
        .filter_map(|(provider, b)| {
            let at = b.budget_reset_at.as_deref().and_then(parse_time);
            let (resets_at, in_memory) = match at {
                Some(at) => {
                    let (t, mem) = provider_reset(at, answered);
                    (Some(t), mem)
                }
                None => (None, false),
            };
            Some(ProviderBudget {
                provider,
                limit: b.budget_limit?,
                spend: b.spend.unwrap_or(0.0),
                period: b.time_period,
                resets_at,
                in_memory,
            })
        })
        .collect())
}

/// Parses `/model/info`: the deployments that have a `max_budget`.
pub fn parse_model_info(body: &[u8]) -> Result<Vec<DeploymentBudget>, Malformed> {
    let raw: RawModelInfo = serde_json::from_slice(body).map_err(|_| Malformed("/model/info"))?;
    Ok(raw
        .data
        .into_iter()
        .filter_map(|d| {
            Some(DeploymentBudget {
                limit: d.litellm_params.max_budget?,
                period: d.litellm_params.budget_duration,
                model_group: d.model_name.unwrap_or_default(),
                model_id: d.model_info.id.unwrap_or_default(),
            })
        })
        .collect())
}

/// A key's name in our answers: its alias, or the first 8 characters of its
/// hash. Never the key.
fn key_name(alias: Option<String>, token: Option<String>) -> String {
    match (alias.filter(|a| !a.is_empty()), token) {
        (Some(a), _) => a,
        (None, Some(t)) => format!("key {}", t.chars().take(8).collect::<String>()),
        (None, None) => "key ?".into(),
    }
}

/// Parses one `/key/list` page: the keys that have a `max_budget`.
pub fn parse_keys(body: &[u8]) -> Result<KeysPage, Malformed> {
    let raw: RawKeys = serde_json::from_slice(body).map_err(|_| Malformed("/key/list"))?;
    let budgets = raw
        .keys
        .into_iter()
        .filter_map(|k| {
            let limit = k.max_budget?;
            Some(KeyBudget {
                spend: k.spend.unwrap_or(0.0),
                limit,
                period: k.budget_duration,
                resets_at: k.budget_reset_at.as_deref().and_then(parse_time),
                name: key_name(k.key_alias, k.token),
            })
        })
        .collect();
    Ok(KeysPage {
        budgets,
        total_pages: raw.total_pages.unwrap_or(1),
    })
}

/// Parses `/router/settings`.
pub fn parse_router(body: &[u8]) -> Result<RouterSettings, Malformed> {
    let raw: RawRouter = serde_json::from_slice(body).map_err(|_| Malformed("/router/settings"))?;
    let v = raw.current_values;
    Ok(RouterSettings {
        // At most a year: a bigger (or odd) value is not a cooldown.
        cooldown_time: v
            .cooldown_time
            .filter(|s| s.is_finite() && (0.0..=31_536_000.0).contains(s))
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_ROUTER.cooldown_time),
        allowed_fails: v.allowed_fails.unwrap_or(DEFAULT_ROUTER.allowed_fails),
    })
}

/// A date LiteLLM reads: `YYYY-MM-DD HH:MM:SS`, UTC.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_keeps_what_it_needs_and_the_first_line() {
        let body = br#"{"data":[{"request_id":"r1","call_type":"acompletion","api_key":"88dc",
            "spend":0.25,"startTime":"2026-12-04T10:00:00.500000+00:00","endTime":"2026-12-04T10:00:02+00:00",
            "model":"claude","model_id":"d1","model_group":"sonnet","custom_llm_provider":"anthropic",
            "status":"failure","request_duration_ms":1500,"messages":"secret prompt",
            "metadata":{"user_api_key_alias":"x","error_information":{"error_class":"RateLimitError",
            "error_code":"429","error_message":"\n\nlitellm.RateLimitError: slow down\nTraceback..."}}},
            {"startTime":"2026-12-04T10:00:00"}],"total":2,"page":1,"page_size":50,"total_pages":1,"total_is_capped":false}"#;
        let p = parse_logs(body).unwrap();
        assert_eq!(p.skipped, 1);
        assert_eq!(p.total, 2);
        let r = &p.rows[0];
        assert!(r.failed);
        assert_eq!(r.duration_ms, 1500);
        let e = r.error.as_ref().unwrap();
        assert_eq!(e.class, "RateLimitError");
        assert_eq!(e.code, "429");
        assert_eq!(e.message, "litellm.RateLimitError: slow down");
    }

    #[test]
    fn the_in_memory_reset_bug_is_corrected() {
        let answered = parse_time("2026-12-04T10:00:00+00:00").unwrap();
        let true_reset = parse_time("2026-12-05T00:00:00+00:00").unwrap();
        let buggy = answered + chrono::Duration::seconds(true_reset.timestamp());
        assert_eq!(provider_reset(buggy, answered), (true_reset, true));
        assert_eq!(provider_reset(true_reset, answered), (true_reset, false));
    }

    #[test]
    fn keys_by_alias_or_hash_prefix() {
        let body = br#"{"keys":[{"token":"abcdef0123456789","spend":1.0,"max_budget":10.0},
            {"token":"ffff","key_alias":"agents","spend":2.0,"max_budget":5.0,"budget_duration":"30d"},
            {"token":"eeee","spend":3.0}],"total_count":3,"current_page":1,"total_pages":1}"#;
        let k = parse_keys(body).unwrap();
        let names: Vec<&str> = k.budgets.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["key abcdef01", "agents"]);
    }
}
