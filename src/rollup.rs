//! The rollup: one verdict (`ok`, `degraded` or `down`) and the reasons for it,
//! computed from the sections' bodies and meta when a snapshot is rendered —
//! never per request.
//!
//! Each rule has a name and a default severity; `[rollup.severity]` in the
//! config can move any rule to `down`, `degraded` or `ignore`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sections::ErrorKind;
use crate::store::SectionState;

/// The verdict, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Degraded,
    Down,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Degraded => "degraded",
            Level::Down => "down",
        }
    }
    /// 0 ok, 1 degraded, 2 down (the `/metrics` gauge and `check`'s exit code).
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What a rule's trigger does to the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Down,
    Degraded,
    Ignore,
}

/// Every rule, its default severity, and what triggers it.
pub const RULES: &[(&str, Severity, &str)] = &[
    (
        "litellm_not_running",
        Severity::Down,
        "the LiteLLM container is not running (mode litellm)",
    ),
    (
        "service_shutting_down",
        Severity::Down,
        "pynchy says it is shutting down",
    ),
    (
        "service_unreachable",
        Severity::Down,
        "pynchy's pushes stopped for a TTL",
    ),
    (
        "database_unreadable",
        Severity::Down,
        "pynchy's database cannot be read",
    ),
    (
        "service_unknown",
        Severity::Degraded,
        "pynchy has not pushed its state yet",
    ),
    (
        "section_stale",
        Severity::Degraded,
        "a section's last good data is older than its stale_after",
    ),
    (
        "section_error",
        Severity::Degraded,
        "a section's last collection failed",
    ),
    (
        "channel_disconnected",
        Severity::Degraded,
        "a chat channel is disconnected",
    ),
    (
        "model_unhealthy",
        Severity::Degraded,
        "a model endpoint is unhealthy, or the counts are unknown",
    ),
    (
        "postgres_not_running",
        Severity::Degraded,
        "the LiteLLM Postgres container is not running",
    ),
    (
        "docker_unreachable",
        Severity::Degraded,
        "the Docker daemon cannot be reached: container states unknown",
    ),
    (
        "worktree_conflict",
        Severity::Degraded,
        "a worktree is in conflict",
    ),
    (
        "task_overdue",
        Severity::Degraded,
        "a scheduled task is overdue",
    ),
    (
        "host_job_overdue",
        Severity::Degraded,
        "an enabled host job is overdue",
    ),
    (
        "schedule_invalid",
        Severity::Degraded,
        "a task's or host job's schedule cannot be understood",
    ),
    (
        "pending_deliveries",
        Severity::Degraded,
        "pending deliveries exceed [rollup] pending_deliveries_max",
    ),
    (
        "queue_saturated",
        Severity::Degraded,
        "the queue is at max_concurrent with groups waiting",
    ),
];

/// `[rollup]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupConfig {
    pub pending_deliveries_max: u64,
    pub severity: BTreeMap<String, Severity>,
    /// `/health`'s HTTP status per verdict.
    pub ok_http_status: u16,
    pub degraded_http_status: u16,
    pub down_http_status: u16,
}

impl Default for RollupConfig {
    fn default() -> Self {
        RollupConfig {
            pending_deliveries_max: 10,
            severity: BTreeMap::new(),
            ok_http_status: 200,
            degraded_http_status: 200,
            down_http_status: 503,
        }
    }
}

impl RollupConfig {
    fn severity(&self, rule: &str) -> Severity {
        self.severity.get(rule).copied().unwrap_or_else(|| {
            RULES
                .iter()
                .find(|(n, _, _)| *n == rule)
                .map(|(_, s, _)| *s)
                .unwrap_or(Severity::Degraded)
        })
    }

    /// The HTTP status `/health` answers with for `level`.
    pub fn http_status(&self, level: Level) -> u16 {
        match level {
            Level::Ok => self.ok_http_status,
            Level::Degraded => self.degraded_http_status,
            Level::Down => self.down_http_status,
        }
    }
}

/// One reason, as served in `/status`'s `reasons`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub section: String,
    pub reason: String,
    /// The rule that fired (see the README's rule table); not served.
    #[serde(skip)]
    pub rule: &'static str,
    pub level: Level,
}

/// The verdict and its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollup {
    pub status: Level,
    pub reasons: Vec<Reason>,
}

struct Collector<'a> {
    cfg: &'a RollupConfig,
    reasons: Vec<Reason>,
}

impl Collector<'_> {
    fn add(&mut self, rule: &'static str, section: &str, reason: String) {
        let level = match self.cfg.severity(rule) {
            Severity::Ignore => return,
            Severity::Down => Level::Down,
            Severity::Degraded => Level::Degraded,
        };
        if !self
            .reasons
            .iter()
            .any(|r| r.section == section && r.reason == reason)
        {
            self.reasons.push(Reason {
                section: section.to_string(),
                reason,
                rule,
                level,
            });
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

const DB_SECTIONS: [&str; 4] = ["messages", "tasks", "host_jobs", "groups"];

/// Applies every rule to the sections' current state.
pub fn compute(states: &[SectionState], cfg: &RollupConfig, now: Instant) -> Rollup {
    let mut c = Collector {
        cfg,
        reasons: Vec::new(),
    };
    for s in states {
        let name = s.name;
        if let Some(e) = &s.error {
            if DB_SECTIONS.contains(&name) && e.kind == ErrorKind::Unreadable {
                c.add(
                    "database_unreadable",
                    name,
                    format!("database cannot be read: {e}"),
                );
            } else {
                c.add(
                    "section_error",
                    name,
                    format!("last collection failed: {e}"),
                );
            }
        }
        if s.is_stale(now) {
            let reason = match s.collected_at() {
                Some(t) => format!(
                    "stale: last good data is {} s old",
                    (chrono::Utc::now() - t).num_seconds().max(0)
                ),
                None => "stale: no data collected yet".to_string(),
            };
            c.add("section_stale", name, reason);
        }
        let Some(body) = &s.body else { continue };
        match name {
            "service" => match str_of(body, "status") {
                Some("shutting_down") => c.add(
                    "service_shutting_down",
                    name,
                    "pynchy is shutting down".into(),
                ),
                Some("unreachable") => c.add(
                    "service_unreachable",
                    name,
                    "pynchy stopped pushing its state (unreachable)".into(),
                ),
                Some("unknown") => c.add(
                    "service_unknown",
                    name,
                    "pynchy has not pushed its state yet".into(),
                ),
                _ => {}
            },
            "channels" => {
                if let Some(map) = body.as_object() {
                    for (ch, v) in map {
                        if v.get("connected") == Some(&Value::Bool(false)) {
                            c.add(
                                "channel_disconnected",
                                name,
                                format!("channel {ch} disconnected"),
                            );
                        }
                    }
                }
            }
            "gateway" if str_of(body, "mode") == Some("litellm") => {
                if str_of(body, "docker") == Some("unreachable") {
                    c.add(
                        "docker_unreachable",
                        name,
                        "Docker daemon unreachable: container states unknown".into(),
                    );
                }
                for (key, rule, what) in [
                    ("litellm_container", "litellm_not_running", "LiteLLM"),
                    ("postgres_container", "postgres_not_running", "Postgres"),
                ] {
                    match str_of(body, key) {
                        Some("running") | Some("unreachable") | None => {}
                        Some(state) => c.add(
                            rule,
                            name,
                            format!("{what} container is {}", state.replace('_', " ")),
                        ),
                    }
                }
                if let Some(list) = body.get("unhealthy").and_then(Value::as_array) {
                    for m in list.iter().filter_map(Value::as_str) {
                        c.add("model_unhealthy", name, format!("model {m} unhealthy"));
                    }
                }
                if let Some(n) = body.get("unhealthy_models").and_then(Value::as_u64) {
                    let listed = body
                        .get("unhealthy")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    if n > 0 && listed == 0 {
                        c.add(
                            "model_unhealthy",
                            name,
                            format!("{n} model endpoints unhealthy"),
                        );
                    }
                }
                if body.get("healthy_models").is_some_and(Value::is_null) {
                    let why = str_of(body, "models_error").unwrap_or("unknown");
                    c.add(
                        "model_unhealthy",
                        name,
                        format!("model health unknown: {why}"),
                    );
                }
            }
            "repos" => {
                if let Some(repos) = body.as_object() {
                    for (slug, repo) in repos {
                        if let Some(wts) = repo.get("worktrees").and_then(Value::as_object) {
                            for (wt, w) in wts {
                                if w.get("conflict") == Some(&Value::Bool(true)) {
                                    c.add(
                                        "worktree_conflict",
                                        name,
                                        format!("worktree {wt} of {slug} in conflict"),
                                    );
                                }
                            }
                        }
                    }
                }
            }
            "tasks" | "host_jobs" => {
                let (rule, what, key) = if name == "tasks" {
                    ("task_overdue", "task", "id")
                } else {
                    ("host_job_overdue", "host job", "name")
                };
                for item in body.as_array().into_iter().flatten() {
                    let id = str_of(item, key).unwrap_or("?");
                    if item.get("overdue") == Some(&Value::Bool(true)) {
                        c.add(rule, name, format!("{what} {id} overdue"));
                    }
                    if let Some(e) = str_of(item, "schedule_error") {
                        c.add("schedule_invalid", name, format!("{what} {id}: {e}"));
                    }
                }
            }
            "messages" => {
                let pending = body
                    .get("pending_deliveries")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if pending > cfg.pending_deliveries_max {
                    c.add(
                        "pending_deliveries",
                        name,
                        format!(
                            "{pending} pending deliveries (more than {})",
                            cfg.pending_deliveries_max
                        ),
                    );
                }
            }
            "queue" => {
                let n = |k: &str| body.get(k).and_then(Value::as_u64).unwrap_or(0);
                if n("max_concurrent") > 0
                    && n("active_containers") >= n("max_concurrent")
                    && n("groups_waiting") > 0
                {
                    c.add(
                        "queue_saturated",
                        name,
                        format!(
                            "queue at max_concurrent ({}) with {} groups waiting",
                            n("max_concurrent"),
                            n("groups_waiting")
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    let status = c.reasons.iter().map(|r| r.level).max().unwrap_or(Level::Ok);
    // Worst first, then in document order.
    c.reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
    Rollup {
        status,
        reasons: c.reasons,
    }
}
