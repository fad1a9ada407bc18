//! What `tasks` and `host_jobs` share: both are rows with a schedule that
//! pynchy's scheduler runs, judged overdue (or not understood) the same way.
//! What differs — the id or name, the group, `enabled` — stays in each file.

use super::{prom, Finding, Rule};
use crate::config::Severity;

pub static SCHEDULE_INVALID: Rule = Rule {
    name: "schedule_invalid",
    default: Severity::Degraded,
    what: "a task's or host job's schedule cannot be understood",
};

/// One scheduled row as the shared rules see it.
pub struct Judged<'a> {
    /// The task's id or the job's name.
    pub label: Option<&'a str>,
    pub overdue: bool,
    pub schedule_error: Option<&'a str>,
}

/// `overdue` (by the section's own rule) and `schedule_invalid` for each row;
/// `what` names the kind of row in the reason ("task", "host job").
pub fn findings<'a>(
    rows: impl Iterator<Item = Judged<'a>>,
    overdue: &'static Rule,
    what: &str,
    out: &mut Vec<Finding>,
) {
    for r in rows {
        let id = r.label.unwrap_or("?");
        if r.overdue {
            out.push(Finding::new(overdue, format!("{what} {id} overdue")));
        }
        if let Some(e) = r.schedule_error {
            out.push(Finding::new(&SCHEDULE_INVALID, format!("{what} {id}: {e}")));
        }
    }
}

/// The overdue gauge.
pub fn metrics(reg: &mut prometheus_client::registry::Registry, name: &str, help: &str, n: usize) {
    prom::gauge(reg, name, help, n as f64);
}

/// "N total, M overdue".
pub fn summary(total: usize, overdue: usize) -> String {
    format!("{total} total, {overdue} overdue")
}
