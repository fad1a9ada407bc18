//! How the `llm` section reads LiteLLM: the state it keeps between
//! collections (the window, the slow reads' last answers) and one
//! collection's calls, each bounded. Nothing here judges: `llm.rs` does.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::llm_window::{Slice, Window, DAY};
use crate::config::LlmConfig;
use crate::sources::litellm_api::{
    Api, ApiError, Daily, DeploymentBudget, KeyBudget, LogsQuery, ProviderBudget, Ready,
    RouterSettings,
};

/// The answers of the calls made every `[llm] budgets_interval`.
#[derive(Debug, Default, Clone)]
pub struct Slow {
    pub router: Option<RouterSettings>,
    pub deployments: Vec<DeploymentBudget>,
    pub keys: Vec<KeyBudget>,
    pub spend_30d: Option<f64>,
    pub at: Option<DateTime<Utc>>,
}

/// What the section keeps between collections (and across a reload onto
/// the same proxy).
#[derive(Default)]
pub struct State {
    pub window: Window,
    pub slow: Slow,
    slow_read: Option<Instant>,
    pub providers: Option<Vec<ProviderBudget>>,
    pub daily: Option<Daily>,
    /// The page size the slices' pages were counted in.
    page_size: u32,
    /// Pages read by the last collection.
    pub pages: u32,
    /// What the last collection could not read (other than the logs).
    pub errors: Vec<String>,
}

/// One collection's inputs.
pub struct Ask<'a> {
    pub api: &'a Api,
    pub cfg: &'a LlmConfig,
    /// When the reads of the day's older slices stop for this collection.
    pub deadline: Instant,
    /// `POST /refresh/llm`: read the slow things again now.
    pub refresh: bool,
}

/// What the proxy said of itself this collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ready, with a database: everything read.
    Tracked,
    /// Ready, no database: only what lives in the proxy's memory read.
    NoDatabase,
    /// Not ready or not answering: nothing asked beyond the probe.
    NotReady,
}

impl State {
    /// One collection: the head of the spend logs first (what the rules
    /// judge), then today's rollup, the budgets, and older slices while time
    /// and pages last. An error is the head's (the section's error); the
    /// other calls' errors are kept in `errors`.
    pub async fn read(&mut self, ask: &Ask<'_>) -> Result<Outcome, ApiError> {
        self.errors.clear();
        self.pages = 0;
        let outcome = match ask.api.readiness().await {
            Ready::NotReady => return Ok(Outcome::NotReady),
            Ready::NoDatabase => Outcome::NoDatabase,
            Ready::WithDatabase => Outcome::Tracked,
        };
        let tracked = outcome == Outcome::Tracked;
        let now = Utc::now();
        if tracked {
            self.read_head(ask, now).await?;
            match ask.api.daily(now.date_naive()).await {
                Ok(d) => self.daily = Some(d),
                Err(e) => self.errors.push(e.to_string()),
            }
        } else {
            // What needed the database is gone with it.
            self.daily = None;
            self.slow.keys.clear();
            self.slow.spend_30d = None;
        }
        // Without a database nothing changes but the provider budgets' spend
        // in memory: read with the slow things, not every collection.
        if tracked || self.slow_due(ask) {
            self.read_memory(ask).await;
        }
        self.read_slow(ask, tracked).await;
        if tracked {
            self.read_slices(ask).await;
        }
        Ok(outcome)
    }

    /// Whether the slow reads are due: every `budgets_interval`, or asked.
    fn slow_due(&self, ask: &Ask<'_>) -> bool {
        ask.refresh
            || self
                .slow_read
                .is_none_or(|at| at.elapsed() >= ask.cfg.budgets_interval)
    }

    /// The provider budgets: the proxy's memory, read every collection.
    async fn read_memory(&mut self, ask: &Ask<'_>) {
        match ask.api.provider_budgets().await {
            Ok(p) => self.providers = p,
            Err(e) => self.errors.push(e.to_string()),
        }
    }

    /// The router's settings, deployment budgets, and with a database the
    /// keys' budgets and 30 days' spend: every `budgets_interval` (counted
    /// from reads that finished: one cut short is tried again next time).
    async fn read_slow(&mut self, ask: &Ask<'_>, tracked: bool) {
        if !self.slow_due(ask) {
            return;
        }
        let api = ask.api;
        let (router, deployments) = tokio::join!(api.router(), api.deployment_budgets());
        let mut slow = Slow {
            at: Some(Utc::now()),
            ..Slow::default()
        };
        match router {
            Ok(r) => slow.router = Some(r),
            Err(e) => self.errors.push(e.to_string()),
        }
        match deployments {
            Ok(d) => slow.deployments = d,
            Err(e) => self.errors.push(e.to_string()),
        }
        if tracked {
            match api.global_spend().await {
                Ok(s) => slow.spend_30d = Some(s),
                Err(e) => self.errors.push(e.to_string()),
            }
            match read_keys(api).await {
                Ok(k) => slow.keys = k,
                Err(e) => self.errors.push(e.to_string()),
            }
        }
        self.slow = slow;
        self.slow_read = Some(Instant::now());
    }

    /// Rows that started within `late_rows`, newest end first, down to the
    /// newest end already held (less `write_lag`). Out of pages or time,
    /// what ended before the last row read becomes a slice to read later.
    async fn read_head(&mut self, ask: &Ask<'_>, now: DateTime<Utc>) -> Result<(), ApiError> {
        let late = chrono::Duration::from_std(ask.cfg.late_rows).unwrap_or(DAY);
        let from = now - late;
        if self.page_size != ask.cfg.page_size {
            // Pages read in another size: each slice from its start again.
            self.page_size = ask.cfg.page_size;
            self.window.pending.iter_mut().for_each(|s| s.page = 1);
        }
        self.window.plan(now, from);
        self.window.slide(now);
        let lag = chrono::Duration::from_std(ask.cfg.write_lag).unwrap_or_default();
        let stop = self.window.head_end.map(|e| e - lag);
        let to = now + chrono::Duration::seconds(1);
        let mut newest = self.window.head_end;
        let mut page = 1;
        loop {
            let q = LogsQuery {
                from,
                to,
                page,
                page_size: ask.cfg.page_size,
            };
            let p = ask.api.spend_logs(q).await?;
            self.pages += 1;
            self.window.skipped += p.skipped;
            let short = (p.rows.len() as u64 + p.skipped) < u64::from(ask.cfg.page_size);
            let oldest = p.rows.iter().map(|r| r.end).min();
            for r in &p.rows {
                // An end past the query's (a clock ahead, a bogus row) must
                // not move the stop point into the future.
                newest = newest.max(Some(r.end.min(to)));
                self.window.add(r);
            }
            let reached = matches!((stop, oldest), (Some(s), Some(o)) if o < s);
            if short || reached || oldest.is_none() {
                break;
            }
            let out = self.pages >= ask.cfg.pages_per_collection || Instant::now() >= ask.deadline;
            if let (true, Some(o)) = (out, oldest) {
                let end = (o + chrono::Duration::seconds(1)).min(to);
                self.window.pending.push_front(Slice::new(from, end));
                break;
            }
            page += 1;
        }
        self.window.head_end = newest;
        Ok(())
    }

    /// The day's older slices, newest first, each from the page it got to.
    /// A slice whose count LiteLLM caps, or that it cannot answer in time
    /// (its 30 s statement timeout, ours), is cut finer; an error is kept in
    /// `errors` and the slice tried again at the next collection.
    async fn read_slices(&mut self, ask: &Ask<'_>) {
        while self.pages < ask.cfg.pages_per_collection && Instant::now() < ask.deadline {
            let Some(s) = self.window.pending.pop_front() else {
                break;
            };
            let q = LogsQuery {
                from: s.from,
                to: s.to,
                page: s.page,
                page_size: ask.cfg.page_size,
            };
            self.pages += 1;
            let p = match ask.api.spend_logs(q).await {
                Ok(p) => p,
                Err(e) => {
                    let too_big = matches!(e, ApiError::Status(_, 503) | ApiError::Timeout(..));
                    if !(too_big && s.page == 1 && self.window.narrow(s)) {
                        self.window.pending.push_front(s);
                    }
                    self.errors.push(e.to_string());
                    break;
                }
            };
            if s.page == 1 && p.total_is_capped && self.window.narrow(s) {
                continue;
            }
            self.window.skipped += p.skipped;
            for r in &p.rows {
                self.window.add(r);
            }
            if (p.rows.len() as u64 + p.skipped) >= u64::from(ask.cfg.page_size) {
                self.window.pending.push_front(Slice {
                    page: s.page + 1,
                    ..s
                });
            }
        }
    }
}

/// Every page of `/key/list`, at most 10 (1,000 keys).
async fn read_keys(api: &Api) -> Result<Vec<KeyBudget>, ApiError> {
    let mut out = Vec::new();
    let mut page = 1;
    loop {
        let p = api.keys(page).await?;
        out.extend(p.budgets);
        if page >= p.total_pages.min(10) {
            return Ok(out);
        }
        page += 1;
    }
}

/// The collection's deadline: most of the section's timeout.
pub fn deadline(timeout: Duration) -> Instant {
    Instant::now() + timeout * 7 / 10
}
