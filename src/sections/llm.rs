//! `llm`: what LiteLLM's own books say of the requests pynchy's agents make —
//! per model group and provider, how many failed and why, how long they
//! took, what was spent and how close each budget is. Read from LiteLLM's
//! management API (`sources/litellm_api.rs`), never by an LLM request, every
//! 60 s and on `POST /refresh/llm`; `litellm` mode only.
//!
//! Each spend-log row is read once into a rolling 24 h window
//! (`llm_window.rs`); the calls of one collection are in `llm_read.rs`.
//! Without a database (`/health/readiness` says `"db": "Not connected"`)
//! spend tracking is off: the section says so, reads only what the proxy
//! keeps in memory (provider budgets, deployment limits, router settings),
//! and raises no reason.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::llm_read::{Ask, Outcome, State};
use super::llm_window::{Figures, Tally, Window, NONE};
use super::{prom, Body, Builtin, CollectError, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, GatewayMode, LlmConfig, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::litellm_api::Api;

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

pub static FAILURE_RATE: Rule = Rule {
    name: "llm_failure_rate",
    default: Severity::Degraded,
    what: "a model group's failure share over `[llm] rate_window` is at or above \
           `failure_rate` with at least `min_requests` requests",
};
pub static ALL_FAILING: Rule = Rule {
    name: "llm_all_failing",
    default: Severity::Down,
    what: "every LLM request over `[llm] rate_window` failed, at least `all_failing_min` of them",
};
pub static BUDGET_NEAR: Rule = Rule {
    name: "llm_budget_near",
    default: Severity::Degraded,
    what: "a LiteLLM budget is at or above `[llm] budget_warn` of its limit (a deployment's \
           approximated spend, even past its limit, stops here)",
};
pub static BUDGET_EXHAUSTED: Rule = Rule {
    name: "llm_budget_exhausted",
    default: Severity::Down,
    what: "a provider or key budget is spent: LiteLLM refuses its requests until it resets",
};

fn time(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(crate::stamp::rfc3339)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn rate(failures: u64, requests: u64) -> Option<f64> {
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
fn off(cfg: &LlmConfig, note: &str) -> LlmBody {
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

impl LlmBody {
    fn window_text(&self) -> String {
        humantime::format_duration(Duration::from_secs(self.recent_window_seconds)).to_string()
    }

    fn failure_findings(&self, out: &mut Vec<Finding>) {
        // Figures as last read (the proxy not ready) are not judged again.
        if self.state != LlmState::Tracking {
            return;
        }
        let t = &self.thresholds;
        let Some(all) = &self.totals else {
            return;
        };
        let span = self.window_text();
        if all.requests_recent >= t.all_failing_min && all.failures_recent == all.requests_recent {
            let top = self
                .errors
                .first()
                .map(|e| format!(" (latest: {})", e.class))
                .unwrap_or_default();
            out.push(Finding::new(
                &ALL_FAILING,
                format!(
                    "every LLM request failed in the last {span}: {} of {}{top}",
                    all.failures_recent, all.requests_recent
                ),
            ));
            return;
        }
        for g in &self.model_groups {
            let c = &g.counts;
            let share = rate(c.failures_recent, c.requests_recent).unwrap_or(0.0);
            if c.requests_recent >= t.min_requests && share >= t.failure_rate {
                let top = g
                    .top_errors
                    .first()
                    .map(|e| format!("; most: {}", e.class))
                    .unwrap_or_default();
                out.push(Finding::new(
                    &FAILURE_RATE,
                    format!(
                        "model group {}: {} of {} requests failed in the last {span}{top}",
                        g.name, c.failures_recent, c.requests_recent
                    ),
                ));
            }
        }
    }

    fn budget_findings(&self, out: &mut Vec<Finding>) {
        for b in &self.budgets {
            let Some(used) = b.used else {
                continue;
            };
            let pct = (used * 100.0).floor();
            let what = format!("{} budget {}", b.kind.as_str(), b.name);
            if used >= 1.0 && !b.approximate {
                out.push(Finding::new(
                    &BUDGET_EXHAUSTED,
                    format!("{what} is spent: ${:.2} of ${:.2}", b.spend, b.limit),
                ));
            } else if used >= self.thresholds.budget_warn {
                let about = if b.approximate { "about " } else { "" };
                out.push(Finding::new(
                    &BUDGET_NEAR,
                    format!(
                        "{what} is {about}{pct}% used: ${:.2} of ${:.2}",
                        b.spend, b.limit
                    ),
                ));
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    window: String,
    model_group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    window: String,
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    window: String,
    error_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabel {
    kind: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpendLabel {
    provider: String,
}

fn windows(c: &Counts) -> [(&'static str, u64, u64); 3] {
    [
        ("recent", c.requests_recent, c.failures_recent),
        ("1h", c.requests_1h, c.failures_1h),
        ("24h", c.requests_24h, c.failures_24h),
    ]
}

/// Requests and failures of each listed name by window: two families.
fn count_families<L>(
    reg: &mut Registry,
    names: [(&str, &str); 2],
    list: &[Named],
    label: impl Fn(&str, &str) -> L,
) where
    L: Clone + std::fmt::Debug + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static,
{
    let (mut req, mut fail) = (Vec::new(), Vec::new());
    for n in list {
        for (w, r, f) in windows(&n.counts) {
            let l = label(w, &n.name);
            req.push((l.clone(), r as f64));
            fail.push((l, f as f64));
        }
    }
    let [(req_name, req_help), (fail_name, fail_help)] = names;
    prom::family(reg, req_name, req_help, req);
    prom::family(reg, fail_name, fail_help, fail);
}

impl LlmBody {
    fn request_metrics(&self, reg: &mut Registry) {
        count_families(
            reg,
            [
                (
                    "pynchy_llm_requests",
                    "LiteLLM requests by model group and window (recent = [llm] rate_window)",
                ),
                (
                    "pynchy_llm_failures",
                    "Failed LiteLLM requests by model group and window",
                ),
            ],
            &self.model_groups,
            |w, n| GroupLabel {
                window: w.into(),
                model_group: n.into(),
            },
        );
        count_families(
            reg,
            [
                (
                    "pynchy_llm_provider_requests",
                    "LiteLLM requests by provider and window",
                ),
                (
                    "pynchy_llm_provider_failures",
                    "Failed LiteLLM requests by provider and window",
                ),
            ],
            &self.providers,
            |w, n| ProviderLabel {
                window: w.into(),
                provider: n.into(),
            },
        );
        let errs = self
            .errors
            .iter()
            .flat_map(|e| {
                [("1h", e.failures_1h), ("24h", e.failures_24h)].map(|(w, n)| {
                    let l = ClassLabel {
                        window: w.into(),
                        error_class: e.class.clone(),
                    };
                    (l, n as f64)
                })
            })
            .collect();
        prom::family(
            reg,
            "pynchy_llm_errors",
            "Failed LiteLLM requests by error class (the top 5 of 24 h)",
            errs,
        );
    }

    fn spend_metrics(&self, reg: &mut Registry) {
        let Some(s) = &self.spend else {
            return;
        };
        if let Some(t) = s.today {
            prom::gauge(
                reg,
                "pynchy_llm_spend_today_usd",
                "LiteLLM spend today (UTC), USD",
                t,
            );
        }
        let by = s
            .today_by_provider
            .iter()
            .map(|(p, v)| {
                (
                    SpendLabel {
                        provider: p.clone(),
                    },
                    *v,
                )
            })
            .collect();
        prom::family(
            reg,
            "pynchy_llm_provider_spend_today_usd",
            "LiteLLM spend today (UTC) by provider, USD",
            by,
        );
        if let Some(m) = s.last_30d {
            prom::gauge(
                reg,
                "pynchy_llm_spend_30d_usd",
                "LiteLLM spend over the last 30 days, USD",
                m,
            );
        }
    }

    fn budget_metrics(&self, reg: &mut Registry) {
        let label = |b: &Budget| BudgetLabel {
            kind: b.kind.as_str().into(),
            name: b.name.clone(),
        };
        let used = self
            .budgets
            .iter()
            .filter_map(|b| Some((label(b), b.used?)))
            .collect();
        let limit = self.budgets.iter().map(|b| (label(b), b.limit)).collect();
        prom::family(
            reg,
            "pynchy_llm_budget_used_ratio",
            "Share of a LiteLLM budget spent (deployments: approximated)",
            used,
        );
        prom::family(
            reg,
            "pynchy_llm_budget_limit_usd",
            "A LiteLLM budget's limit, USD",
            limit,
        );
    }
}

impl Body for LlmBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        if self.state == LlmState::Off {
            return;
        }
        self.failure_findings(out);
        self.budget_findings(out);
    }

    fn metrics(&self, reg: &mut Registry) {
        if self.state == LlmState::Off {
            return;
        }
        self.request_metrics(reg);
        self.spend_metrics(reg);
        self.budget_metrics(reg);
    }

    fn summary(&self) -> String {
        match (self.state.as_str(), &self.totals) {
            ("off", _) => "off".into(),
            (s, Some(t)) => format!(
                "{s}: {}/{} failed in 1h, {} budgets",
                t.failures_1h,
                t.requests_1h,
                self.budgets.len()
            ),
            (s, None) => format!("{s}: {} budgets", self.budgets.len()),
        }
    }
}

pub struct Llm {
    ctx: Arc<Context>,
    cfg: LlmConfig,
    api: Result<Api, String>,
    timeout: Duration,
    state: Arc<tokio::sync::Mutex<State>>,
}

impl Section for Llm {
    type Body = LlmBody;

    fn collect(&self) -> Work<LlmBody> {
        let cfg = self.cfg.clone();
        if self.ctx.config.gateway.mode != GatewayMode::Litellm {
            let body = off(&cfg, "the gateway is not in litellm mode");
            return Work::future(async move { Ok(body) });
        }
        if !cfg.enabled {
            let body = off(&cfg, "[llm] enabled = false");
            return Work::future(async move { Ok(body) });
        }
        let api = match self.api.clone() {
            Ok(a) => a,
            Err(e) => return Work::future(async move { Err(CollectError::new(e)) }),
        };
        let state = self.state.clone();
        let refresh = self.ctx.refresh.take(SectionId::Llm);
        let deadline = super::llm_read::deadline(self.timeout);
        Work::future(async move {
            let mut st = state.lock().await;
            let ask = Ask {
                api: &api,
                cfg: &cfg,
                deadline,
                refresh,
            };
            let outcome = st
                .read(&ask)
                .await
                .map_err(|e| CollectError::new(e.to_string()))?;
            Ok(body(&st, outcome, &cfg, Utc::now()))
        })
    }
}

impl Builtin for Llm {
    const ID: SectionId = SectionId::Llm;
    const RULES: &'static [&'static Rule] =
        &[&FAILURE_RATE, &ALL_FAILING, &BUDGET_NEAR, &BUDGET_EXHAUSTED];

    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(60), Duration::from_secs(20))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let g = &ctx.config.gateway;
        let key = crate::config::secret(&g.key_env).or_else(|| g.master_key.0.clone());
        let api = crate::client::outbound_trusting(g.ca_file.as_deref()).map(|client| Api {
            client,
            url: g.url.clone(),
            key,
            timeout: schedule.timeout / 2,
            limit: ctx.config.limits.gateway_body,
        });
        // The window outlives a reload onto the same proxy: a SIGHUP does
        // not read the day again.
        let state = ctx.kept.get(format!("llm window {}", g.url));
        Llm {
            ctx: ctx.clone(),
            cfg: ctx.config.llm.clone(),
            api,
            timeout: schedule.timeout,
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::litellm_api::{parse_time, LogRow, RowError};

    fn row(id: &str, group: &str, start: DateTime<Utc>, failed: bool, msg: &str) -> LogRow {
        LogRow {
            request_id: id.into(),
            start,
            end: start + chrono::Duration::seconds(1),
            model_group: group.into(),
            model_id: format!("{group}-d"),
            provider: "anthropic".into(),
            spend: 0.01,
            failed,
            duration_ms: 1000,
            error: failed.then(|| RowError {
                class: "RateLimitError".into(),
                code: "429".into(),
                message: msg.into(),
            }),
        }
    }

    fn judged(st: &State, now: DateTime<Utc>) -> Vec<String> {
        let st_cfg = LlmConfig {
            rate_window: Duration::from_secs(900),
            ..LlmConfig::default()
        };
        let b = body(st, Outcome::Tracked, &st_cfg, now);
        let mut out = Vec::new();
        Body::findings(&b, &RollupConfig::default(), &mut out);
        out.into_iter()
            .map(|f| format!("{}: {}", f.rule.name, f.reason))
            .collect()
    }

    #[test]
    fn one_failure_pages_no_one() {
        let now = parse_time("2026-12-04T10:00:00Z").unwrap();
        let mut st = State::default();
        st.window.plan(now, now);
        st.window.add(&row(
            "a",
            "sonnet",
            now - chrono::Duration::minutes(1),
            true,
            "x",
        ));
        assert!(judged(&st, now).is_empty());
        for i in 0..9 {
            st.window.add(&row(
                &format!("s{i}"),
                "sonnet",
                now - chrono::Duration::minutes(2),
                false,
                "",
            ));
        }
        for i in 0..4 {
            st.window.add(&row(
                &format!("f{i}"),
                "sonnet",
                now - chrono::Duration::minutes(3),
                true,
                "x",
            ));
        }
        // 5 of 14: under half.
        assert!(judged(&st, now).is_empty());
        for i in 0..5 {
            st.window.add(&row(
                &format!("g{i}"),
                "sonnet",
                now - chrono::Duration::minutes(3),
                true,
                "x",
            ));
        }
        // 10 of 19.
        assert_eq!(
            judged(&st, now),
            ["llm_failure_rate: model group sonnet: 10 of 19 requests failed in the last 15m; most: RateLimitError"]
        );
    }

    #[test]
    fn all_failing_and_cooldowns() {
        let now = parse_time("2026-12-04T10:00:00Z").unwrap();
        let mut st = State::default();
        st.window.plan(now, now);
        for i in 0..5 {
            let msg = "litellm.RouterRateLimitError: No deployments available for selected model";
            let group = if i < 3 { "opus" } else { "sonnet" };
            st.window.add(&row(
                &format!("f{i}"),
                group,
                now - chrono::Duration::seconds(2),
                true,
                msg,
            ));
        }
        let found = judged(&st, now);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .starts_with("llm_all_failing: every LLM request failed in the last 15m: 5 of 5"),
            "{found:?}"
        );
        let cfg = LlmConfig::default();
        let b = body(&st, Outcome::Tracked, &cfg, now);
        // One error class, two model groups: both cooling down.
        let groups: Vec<&str> = b.cooldowns.iter().map(|c| c.model_group.as_str()).collect();
        assert_eq!(groups, ["opus", "sonnet"]);
        // Past the cooldown (5 s by default), no more.
        let later = body(
            &st,
            Outcome::Tracked,
            &cfg,
            now + chrono::Duration::seconds(10),
        );
        assert!(later.cooldowns.is_empty());
    }
}
