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

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;

pub use super::llm_body::*;
use super::llm_body::{off, rate};
use super::llm_read::{Ask, State};
use super::{prom, Body, Builtin, CollectError, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, GatewayMode, LlmConfig, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::litellm_api::Api;

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
                out.push(Finding::about(
                    &FAILURE_RATE,
                    g.name.as_str(),
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
                out.push(Finding::about(
                    &BUDGET_EXHAUSTED,
                    what.as_str(),
                    format!("{what} is spent: ${:.2} of ${:.2}", b.spend, b.limit),
                ));
            } else if used >= self.thresholds.budget_warn {
                let about = if b.approximate { "about " } else { "" };
                out.push(Finding::about(
                    &BUDGET_NEAR,
                    what.as_str(),
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
    use crate::sections::llm_read::Outcome;
    use crate::sources::litellm_api::{parse_time, LogRow, RowError};
    use chrono::DateTime;

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
