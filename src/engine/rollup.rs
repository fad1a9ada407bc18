//! The rollup: one verdict (`ok`, `degraded` or `down`) and the reasons for it,
//! computed when a snapshot is rendered — never per request.
//!
//! It gathers each section's findings (the rules a section owns live in its
//! file), adds the rules that hold for any section (stale, erroring, database
//! unreadable), applies the severities of `[rollup.severity]`, and picks the
//! worst. It reads no section's fields.

use std::collections::HashSet;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{RollupConfig, Severity};
use crate::engine::record::SectionRecord;
use crate::sections::{ErrorKind, Finding, Rule};

/// The verdict, worst last.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
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

pub static DATABASE_UNREADABLE: Rule = Rule {
    name: "database_unreadable",
    default: Severity::Down,
    what: "pynchy's database cannot be read",
};
pub static SECTION_STALE: Rule = Rule {
    name: "section_stale",
    default: Severity::Degraded,
    what: "a section's last good data is older than its stale_after",
};
pub static SECTION_ERROR: Rule = Rule {
    name: "section_error",
    default: Severity::Degraded,
    what: "a section's last collection failed",
};

/// The rules that hold for any section.
pub const GENERIC_RULES: [&Rule; 3] = [&DATABASE_UNREADABLE, &SECTION_STALE, &SECTION_ERROR];

/// One reason, as served in `/status`'s `reasons`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reason {
    pub section: String,
    pub reason: String,
    pub level: Level,
    /// The rule that raised it (`[rollup.severity]` names it).
    #[serde(default)]
    pub rule: String,
    /// When its condition was first seen, held while it stays true (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// What the rule fired for, when it can fire for several things at once
    /// ([`Finding::about`]): with the section and the rule, the condition.
    #[serde(skip)]
    pub subject: Option<String>,
}

/// The verdict and its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollup {
    pub status: Level,
    pub reasons: Vec<Reason>,
}

/// The level a rule's finding gets under `cfg`, or `None` when it is ignored.
pub fn level_of(cfg: &RollupConfig, rule: &Rule) -> Option<Level> {
    match cfg.severity.get(rule.name).copied().unwrap_or(rule.default) {
        Severity::Ignore => None,
        Severity::Down => Some(Level::Down),
        Severity::Degraded => Some(Level::Degraded),
    }
}

/// The findings that hold for any section: its error and its staleness.
fn generic_findings(s: &SectionRecord, now: Instant, out: &mut Vec<Finding>) {
    if let Some(e) = &s.error {
        let db = crate::sections::reads_database(s.id);
        out.push(if db && e.kind == ErrorKind::Unreadable {
            Finding::new(
                &DATABASE_UNREADABLE,
                format!("database cannot be read: {e}"),
            )
        } else {
            Finding::new(&SECTION_ERROR, format!("last collection failed: {e}"))
        });
    }
    if s.is_stale(now) {
        out.push(Finding::new(
            &SECTION_STALE,
            match s.collected_at() {
                Some(t) => format!(
                    "stale: last good data is {} s old",
                    (chrono::Utc::now() - t).num_seconds().max(0)
                ),
                None => "stale: no data collected yet".to_string(),
            },
        ));
    }
}

/// The most reasons one section contributes; the rest fold into one
/// "N more" reason at the worst of their levels, so the verdict is the same
/// and the document stays small whatever a section finds.
pub const MAX_REASONS_PER_SECTION: usize = 20;

/// Applies every rule to the sections' current state.
pub fn compute(states: &[SectionRecord], cfg: &RollupConfig, now: Instant) -> Rollup {
    let mut reasons = Vec::new();
    let mut findings = Vec::new();
    for s in states {
        findings.clear();
        generic_findings(s, now, &mut findings);
        if let Some(body) = &s.body {
            body.findings(cfg, &mut findings);
        }
        section_reasons(s.id.name(), cfg, &mut findings, &mut reasons);
    }
    let status = reasons.iter().map(|r| r.level).max().unwrap_or(Level::Ok);
    // Worst first, then in document order.
    reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
    Rollup { status, reasons }
}

/// One section's findings as reasons: severities applied, duplicates said
/// once, worst first, at most [`MAX_REASONS_PER_SECTION`] (+1 for the fold).
fn section_reasons(
    section: &str,
    cfg: &RollupConfig,
    findings: &mut Vec<Finding>,
    out: &mut Vec<Reason>,
) {
    let mut seen = HashSet::new();
    let mut mine: Vec<(Level, Finding)> = findings
        .drain(..)
        .filter_map(|f| Some((level_of(cfg, f.rule)?, f)))
        .filter(|(_, f)| seen.insert(f.reason.clone()))
        .collect();
    mine.sort_by_key(|(l, _)| std::cmp::Reverse(*l));
    let folded = mine.split_off(mine.len().min(MAX_REASONS_PER_SECTION));
    let reason = |level: Level, rule: &str, subject: Option<String>, reason: String| Reason {
        section: section.to_string(),
        reason,
        level,
        rule: rule.to_string(),
        since: None,
        subject,
    };
    out.extend(
        mine.into_iter()
            .map(|(l, f)| reason(l, f.rule.name, f.subject, f.reason)),
    );
    if let Some(level) = folded.iter().map(|(l, _)| *l).max() {
        let n = folded.len();
        out.push(reason(
            level,
            "folded",
            None,
            format!("and {n} more reasons"),
        ));
    }
}

/// The HTTP status `/health` answers with for `level`.
pub fn http_status(cfg: &RollupConfig, level: Level) -> u16 {
    match level {
        Level::Ok => cfg.ok_http_status,
        Level::Degraded => cfg.degraded_http_status,
        Level::Down => cfg.down_http_status,
    }
}
