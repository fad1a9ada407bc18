//! `[llm]`: the `llm` section's own keys (LiteLLM usage: failures, spend,
//! budgets), in their own file as vector's host_metrics keeps each
//! collector's config. Its schedule is `[sections.llm]` like any section's.

use std::time::Duration;

use serde::Deserialize;

use super::{bounded, invalid, ConfigError};

/// The raw `[llm]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLlm {
    enabled: Option<bool>,
    failure_rate: Option<f64>,
    min_requests: Option<u64>,
    all_failing_min: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    rate_window: Option<Duration>,
    budget_warn: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    late_rows: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    write_lag: Option<Duration>,
    page_size: Option<u32>,
    pages_per_collection: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    budgets_interval: Option<Duration>,
}

/// `[llm]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Whether the section reads LiteLLM at all (in `litellm` mode).
    pub enabled: bool,
    /// `llm_failure_rate` fires at this share of failed requests (0 to 1) ...
    pub failure_rate: f64,
    /// ... among at least this many requests of one model group ...
    pub min_requests: u64,
    /// ... within this window; `llm_all_failing` uses the same window.
    pub rate_window: Duration,
    /// `llm_all_failing`: every one of at least this many requests failed.
    pub all_failing_min: u64,
    /// `llm_budget_near` fires at this share of a budget (0 to 1).
    pub budget_warn: f64,
    /// How long after its start a row may still arrive (a long request is
    /// written when it ends): the head of the window asked each time.
    pub late_rows: Duration,
    /// How late LiteLLM writes a row after it ends (batched writes).
    pub write_lag: Duration,
    /// Rows per `/spend/logs/v2` page (1 to 1000).
    pub page_size: u32,
    /// The most pages read in one collection.
    pub pages_per_collection: u32,
    /// How often budgets, the router's settings and the 30 days' spend are
    /// read again (they change slowly).
    pub budgets_interval: Duration,
}

pub const FAILURE_RATE: f64 = 0.5;
pub const MIN_REQUESTS: u64 = 10;
pub const ALL_FAILING_MIN: u64 = 5;
pub const RATE_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const BUDGET_WARN: f64 = 0.9;
pub const LATE_ROWS: Duration = Duration::from_secs(3600);
pub const WRITE_LAG: Duration = Duration::from_secs(30);
pub const PAGE_SIZE: u32 = 500;
pub const PAGES_PER_COLLECTION: u32 = 20;
pub const BUDGETS_INTERVAL: Duration = Duration::from_secs(600);

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            enabled: true,
            failure_rate: FAILURE_RATE,
            min_requests: MIN_REQUESTS,
            rate_window: RATE_WINDOW,
            all_failing_min: ALL_FAILING_MIN,
            budget_warn: BUDGET_WARN,
            late_rows: LATE_ROWS,
            write_lag: WRITE_LAG,
            page_size: PAGE_SIZE,
            pages_per_collection: PAGES_PER_COLLECTION,
            budgets_interval: BUDGETS_INTERVAL,
        }
    }
}

fn share(key: &str, v: Option<f64>, d: f64) -> Result<f64, ConfigError> {
    match v {
        None => Ok(d),
        Some(v) if v > 0.0 && v <= 1.0 => Ok(v),
        Some(v) => Err(invalid(
            key,
            format!("{v} is out of range: above 0, at most 1"),
        )),
    }
}

fn count(key: &str, v: Option<u64>, d: u64, max: u64) -> Result<u64, ConfigError> {
    match v {
        None => Ok(d),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(v) => Err(invalid(
            key,
            format!("{v} is out of range: from 1 to {max}"),
        )),
    }
}

/// Checks every key; a window is at most the 24 h held.
pub(super) fn llm(raw: RawLlm) -> Result<LlmConfig, ConfigError> {
    let day = Duration::from_secs(24 * 3600);
    let within_day = |key: &str, v: Option<Duration>, d: Duration| match bounded(key, v)? {
        Some(v) if v > day => Err(invalid(key, "must be at most 24h (the window held)")),
        v => Ok(v.unwrap_or(d)),
    };
    Ok(LlmConfig {
        enabled: raw.enabled.unwrap_or(true),
        failure_rate: share("llm.failure_rate", raw.failure_rate, FAILURE_RATE)?,
        min_requests: count(
            "llm.min_requests",
            raw.min_requests,
            MIN_REQUESTS,
            1_000_000,
        )?,
        rate_window: within_day("llm.rate_window", raw.rate_window, RATE_WINDOW)?,
        all_failing_min: count(
            "llm.all_failing_min",
            raw.all_failing_min,
            ALL_FAILING_MIN,
            1_000_000,
        )?,
        budget_warn: share("llm.budget_warn", raw.budget_warn, BUDGET_WARN)?,
        late_rows: within_day("llm.late_rows", raw.late_rows, LATE_ROWS)?,
        write_lag: within_day("llm.write_lag", raw.write_lag, WRITE_LAG)?,
        page_size: count(
            "llm.page_size",
            raw.page_size.map(u64::from),
            PAGE_SIZE.into(),
            1000,
        )? as u32,
        pages_per_collection: count(
            "llm.pages_per_collection",
            raw.pages_per_collection.map(u64::from),
            PAGES_PER_COLLECTION.into(),
            1000,
        )? as u32,
        budgets_interval: bounded("llm.budgets_interval", raw.budgets_interval)?
            .unwrap_or(BUDGETS_INTERVAL),
    })
}
