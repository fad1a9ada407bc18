//! The `llm` body: what the section serves, and how it is built from what
//! is held (the window's figures, the budgets and settings last read) as of
//! an instant. `llm.rs` judges it and exports it.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::llm_read::{Outcome, State};
use super::llm_window::{Figures, Tally, Window, NONE};
use crate::config::LlmConfig;

/// The most model groups and providers listed (the busiest first).
const MAX_LISTED: usize = 50;
/// The error classes listed, and exported to Prometheus.
const TOP_CLASSES: usize = 5;

/// Requests and failures of one model group or provider, or of all.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Counts {
    /// Within `recent_window_seconds` (`[llm] rate_window`, 15 min).
    pub requests_recent: u64,
    pub failures_recent: u64,
    pub requests_1h: u64,
    pub failures_1h: u64,
    /// Failures ÷ requests over the last hour (null without requests).
    pub failure_rate_1h: Option<f64>,
    pub requests_24h: u64,
    pub failures_24h: u64,
    pub failure_rate_24h: Option<f64>,
    pub last_failure_at: Option<String>,
    /// Request duration over the last hour, nearest rank, ms.
    pub p50_ms_1h: Option<u32>,
    pub p95_ms_1h: Option<u32>,
    /// Spend of the 24 h's requests, USD (sum of the rows' `spend`).
    pub spend_24h: f64,
}

/// A model group or provider: its name, counts and top error classes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Named {
    pub name: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// Its 24 h failures by error class, the most first (at most 3).
    pub top_errors: Vec<ClassCount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ClassCount {
    pub class: String,
    pub failures_24h: u64,
}

/// One error class over all model groups.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ErrorClass {
    pub class: String,
    pub failures_1h: u64,
    pub failures_24h: u64,
    /// The latest failure: when, its code, the model group, and its
    /// message's first line (cut to 200 characters).
    pub last_at: Option<String>,
    pub last_code: Option<String>,
    pub last_model_group: Option<String>,
    pub last_message: Option<String>,
}

/// A model group whose requests found no deployment lately (the router
/// said "No deployments available"): likely cooling down until `until`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Cooldown {
    pub model_group: String,
    pub last_at: String,
    pub until: String,
}

/// Spend, USD.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Spend {
    /// Today (UTC), from LiteLLM's daily rollup.
    pub today: Option<f64>,
    pub today_by_provider: std::collections::BTreeMap<String, f64>,
    pub today_by_model_group: std::collections::BTreeMap<String, f64>,
    /// The last 30 days (`/global/spend`).
    pub last_30d: Option<f64>,
}

/// What a budget limits.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// `provider_budget_config`: every request to one provider.
    Provider,
    /// A virtual key's `max_budget`.
    Key,
    /// A deployment's `max_budget` (its spend approximated).
    Deployment,
}

impl BudgetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::Provider => "provider",
            BudgetKind::Key => "key",
            BudgetKind::Deployment => "deployment",
        }
    }
}

/// What the section could read this time.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LlmState {
    /// The spend logs read: every figure.
    Tracking,
    /// LiteLLM has no database: what lives in the proxy's memory only.
    SpendTrackingOff,
    /// The proxy not ready: nothing asked, figures as last read.
    ProxyNotReady,
    /// The gateway is not in litellm mode, or `[llm] enabled = false`.
    Off,
}

impl LlmState {
    pub fn as_str(self) -> &'static str {
        match self {
            LlmState::Tracking => "tracking",
            LlmState::SpendTrackingOff => "spend_tracking_off",
            LlmState::ProxyNotReady => "proxy_not_ready",
            LlmState::Off => "off",
        }
    }
}

/// A budget and how much of it is used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Budget {
    pub kind: BudgetKind,
    pub name: String,
    pub spend: f64,
    pub limit: f64,
    /// `spend ÷ limit` (null for a limit of 0).
    pub used: Option<f64>,
    pub period: Option<String>,
    pub resets_at: Option<String>,
    /// The proxy keeps it in memory (no Redis): a proxy restart resets it.
    pub resets_with_proxy: bool,
    /// The spend is our sum of the spend logs' rows for the deployment over
    /// the 24 h held: LiteLLM does not expose a deployment's spend.
    pub approximate: bool,
}

/// The window's state: how much of the 24 h is held.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct WindowInfo {
    /// Every row that started since this instant is held.
    pub complete_from: String,
    /// All of the last 24 h is held (false while the first reads catch up).
    pub complete: bool,
    pub rows: u64,
    /// Rows LiteLLM returned without an id or a time: not counted.
    pub skipped: u64,
    /// Slices cut finer because LiteLLM capped their count at 10,000.
    pub narrowed: u64,
    /// `/spend/logs/v2` pages read by the last collection.
    pub pages_read: u32,
}

/// The `llm` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LlmBody {
    pub state: LlmState,
    pub note: Option<String>,
    /// The instant the windows below end (their figures are as of then).
    pub as_of: Option<String>,
    pub recent_window_seconds: u64,
    pub window: Option<WindowInfo>,
    pub totals: Option<Counts>,
    pub model_groups: Vec<Named>,
    pub providers: Vec<Named>,
    pub errors: Vec<ErrorClass>,
    pub cooldowns: Vec<Cooldown>,
    pub cooldown_time_seconds: Option<f64>,
    pub spend: Option<Spend>,
    pub budgets: Vec<Budget>,
    /// When budgets, router settings and the 30 days' spend were read.
    pub budgets_checked_at: Option<String>,
    /// Calls other than the spend logs that failed in the last collection.
    pub read_errors: Vec<String>,
    /// The thresholds the rules used (from `[llm]`).
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Thresholds {
    pub failure_rate: f64,
    pub min_requests: u64,
    pub all_failing_min: u64,
    pub budget_warn: f64,
}
fn time(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(crate::stamp::rfc3339)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn rate(failures: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| failures as f64 / requests as f64)
}

fn counts(t: &Tally) -> Counts {
    Counts {
        requests_recent: t.requests_recent,
        failures_recent: t.failures_recent,
        requests_1h: t.requests_1h,
        failures_1h: t.failures_1h,
        failure_rate_1h: rate(t.failures_1h, t.requests_1h),
        requests_24h: t.requests_24h,
        failures_24h: t.failures_24h,
        failure_rate_24h: rate(t.failures_24h, t.requests_24h),
        last_failure_at: t.last_failure_ms.and_then(time),
        p50_ms_1h: t.quantile(0.5),
        p95_ms_1h: t.quantile(0.95),
        spend_24h: t.spend_24h,
    }
}

/// Groups or providers, the most requests in 24 h first, then by name.
fn named(
    tallies: &std::collections::HashMap<u16, Tally>,
    names: &super::llm_window::Names,
    classes: &super::llm_window::Names,
) -> Vec<Named> {
    let mut out: Vec<Named> = tallies
        .iter()
        .map(|(id, t)| {
            let mut top: Vec<ClassCount> = t
                .classes_24h
                .iter()
                .map(|(c, n)| ClassCount {
                    class: class_name(classes, *c),
                    failures_24h: *n,
                })
                .collect();
            top.sort_by(|a, b| {
                b.failures_24h
                    .cmp(&a.failures_24h)
                    .then(a.class.cmp(&b.class))
            });
            top.truncate(3);
            Named {
                name: names.name(*id).to_string(),
                counts: counts(t),
                top_errors: top,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.counts
            .requests_24h
            .cmp(&a.counts.requests_24h)
            .then(a.name.cmp(&b.name))
    });
    out.truncate(MAX_LISTED);
    out
}

fn class_name(classes: &super::llm_window::Names, c: u16) -> String {
    if c == NONE {
        "unknown".into()
    } else {
        classes.name(c).to_string()
    }
}

fn errors(w: &Window, f: &Figures) -> Vec<ErrorClass> {
    let mut out: Vec<ErrorClass> = f
        .classes
        .iter()
        .map(|(c, (h, d))| {
            let latest = w.latest.get(c);
            ErrorClass {
                class: class_name(&w.classes, *c),
                failures_1h: *h,
                failures_24h: *d,
                last_at: latest.and_then(|l| time(l.end_ms)),
                last_code: latest.map(|l| l.code.clone()).filter(|c| !c.is_empty()),
                last_model_group: latest.map(|l| w.groups.name(l.group).to_string()),
                last_message: latest.map(|l| l.message.clone()),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.failures_24h
            .cmp(&a.failures_24h)
            .then(a.class.cmp(&b.class))
    });
    out.truncate(TOP_CLASSES);
    out
}

/// Model groups whose latest "No deployments available" is within the
/// router's `cooldown_time`.
fn cooldowns(w: &Window, now: DateTime<Utc>, cooldown: Duration) -> Vec<Cooldown> {
    let cooldown_ms = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
    let cut = now.timestamp_millis().saturating_sub(cooldown_ms);
    let mut out: Vec<Cooldown> = w
        .no_deployments
        .iter()
        .filter(|(_, end)| **end >= cut)
        .filter_map(|(group, end)| {
            Some(Cooldown {
                model_group: w.groups.name(*group).to_string(),
                last_at: time(*end)?,
                until: time(end.saturating_add(cooldown_ms))?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.model_group.cmp(&b.model_group));
    out
}

fn budgets(st: &State, f: &Figures) -> Vec<Budget> {
    let used = |spend: f64, limit: f64| (limit > 0.0).then(|| spend / limit);
    let mut out = Vec::new();
    for p in st.providers.iter().flatten() {
        out.push(Budget {
            kind: BudgetKind::Provider,
            name: p.provider.clone(),
            spend: p.spend,
            limit: p.limit,
            used: used(p.spend, p.limit),
            period: p.period.clone(),
            resets_at: p.resets_at.map(stamp),
            resets_with_proxy: p.in_memory,
            approximate: false,
        });
    }
    for k in &st.slow.keys {
        out.push(Budget {
            kind: BudgetKind::Key,
            name: k.name.clone(),
            spend: k.spend,
            limit: k.limit,
            used: used(k.spend, k.limit),
            period: k.period.clone(),
            resets_at: k.resets_at.map(stamp),
            resets_with_proxy: false,
            approximate: false,
        });
    }
    for d in &st.slow.deployments {
        let spend = st
            .window
            .deployments
            .find(&d.model_id)
            .and_then(|i| f.deployment_spend.get(&i))
            .copied()
            .unwrap_or(0.0);
        out.push(Budget {
            kind: BudgetKind::Deployment,
            name: format!("{} ({})", d.model_group, d.model_id),
            spend,
            limit: d.limit,
            used: used(spend, d.limit),
            period: d.period.clone(),
            resets_at: None,
            resets_with_proxy: false,
            approximate: true,
        });
    }
    out
}

fn thresholds(cfg: &LlmConfig) -> Thresholds {
    Thresholds {
        failure_rate: cfg.failure_rate,
        min_requests: cfg.min_requests,
        all_failing_min: cfg.all_failing_min,
        budget_warn: cfg.budget_warn,
    }
}

/// The body for a section that asks nothing.
pub(super) fn off(cfg: &LlmConfig, note: &str) -> LlmBody {
    LlmBody {
        state: LlmState::Off,
        note: Some(note.into()),
        as_of: None,
        recent_window_seconds: cfg.rate_window.as_secs(),
        window: None,
        totals: None,
        model_groups: Vec::new(),
        providers: Vec::new(),
        errors: Vec::new(),
        cooldowns: Vec::new(),
        cooldown_time_seconds: None,
        spend: None,
        budgets: Vec::new(),
        budgets_checked_at: None,
        read_errors: Vec::new(),
        thresholds: thresholds(cfg),
    }
}

/// The body from what is held, as of `now`.
pub fn body(st: &State, outcome: Outcome, cfg: &LlmConfig, now: DateTime<Utc>) -> LlmBody {
    let (state, note) = match outcome {
        Outcome::Tracked => (LlmState::Tracking, None),
        Outcome::NoDatabase => (
            LlmState::SpendTrackingOff,
            Some("LiteLLM has no database: spend tracking is off (no failures, spend or key budgets to read)"),
        ),
        Outcome::NotReady => (
            LlmState::ProxyNotReady,
            Some("the LiteLLM proxy is not ready: nothing asked, figures as last read"),
        ),
    };
    let w = &st.window;
    let f = w.figures(now, cfg.rate_window);
    let cooldown = st.slow.router.map_or(
        crate::sources::litellm_api::DEFAULT_ROUTER.cooldown_time,
        |r| r.cooldown_time,
    );
    let has_logs = w.planned;
    let spend = st.daily.as_ref().map(|d| Spend {
        today: Some(d.spend),
        today_by_provider: d.by_provider.clone(),
        today_by_model_group: d.by_model_group.clone(),
        last_30d: st.slow.spend_30d,
    });
    LlmBody {
        state,
        note: note.map(str::to_string),
        as_of: Some(crate::stamp::rfc3339(now)),
        recent_window_seconds: cfg.rate_window.as_secs(),
        window: has_logs.then(|| WindowInfo {
            complete_from: stamp(w.complete_from(now)),
            complete: w.complete(),
            rows: w.rows.len() as u64,
            skipped: w.skipped,
            narrowed: w.narrowed,
            pages_read: st.pages,
        }),
        totals: has_logs.then(|| counts(&f.all)),
        model_groups: named(&f.groups, &w.groups, &w.classes),
        providers: named(&f.providers, &w.providers, &w.classes),
        errors: errors(w, &f),
        cooldowns: cooldowns(w, now, cooldown),
        cooldown_time_seconds: st.slow.router.map(|r| r.cooldown_time.as_secs_f64()),
        spend,
        budgets: budgets(st, &f),
        budgets_checked_at: st.slow.at.map(stamp),
        read_errors: st.errors.clone(),
        thresholds: thresholds(cfg),
    }
}
