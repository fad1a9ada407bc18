//! What `tasks` and `host_jobs` share: both are rows with a schedule that
//! pynchy's scheduler runs, judged overdue (or not understood) the same way.
//! What differs — the id or name, the group, `enabled` — stays in each file.

use std::sync::Mutex;
use std::time::Duration;

use super::{Collected, Finding, Rule};
use crate::config::Severity;
use crate::context::Context;
use crate::overdue::Judge;
use crate::sources::push::PushedStatus;
use crate::sources::watch::Changes;

/// The judge for this moment: pynchy counts as up while a fresh push says
/// it is, else as the service section last observed it (nothing runs while
/// it is down, and the service section says so once).
pub fn judge(ctx: &Context) -> Judge {
    let ttl = ctx.config.push.ttl;
    let up = match ctx.push_source.service() {
        Some(s) if s.stamp.instant.elapsed() < ttl => s.value.status == PushedStatus::Ok,
        _ => ctx.pynchy_up.is_up(),
    };
    Judge::now(&ctx.config.pynchy, up)
}

/// How long a task of `folder` may wait beyond its due time: the container
/// timeout while its group has a container running or the queue is full, as
/// pynchy last pushed it (while that push is fresh).
pub fn group_wait(ctx: &Context) -> impl Fn(Option<&str>) -> Duration {
    let ttl = ctx.config.push.ttl;
    let timeout = ctx.config.pynchy.container_timeout;
    let queue = ctx
        .push_source
        .queue()
        .filter(|q| q.stamp.instant.elapsed() < ttl)
        .map(|q| q.value);
    move |folder| {
        let Some(q) = &queue else {
            return Duration::ZERO;
        };
        let full = q.max_concurrent > 0 && q.active_containers >= q.max_concurrent;
        let busy = folder
            .and_then(|f| q.per_group.get(f))
            .is_some_and(|g| g.active);
        if full || busy {
            timeout
        } else {
            Duration::ZERO
        }
    }
}

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
            out.push(Finding::about(overdue, id, format!("{what} {id} overdue")));
        }
        if let Some(e) = r.schedule_error {
            out.push(Finding::about(
                &SCHEDULE_INVALID,
                id,
                format!("{what} {id}: {e}"),
            ));
        }
    }
}

/// "N total, M overdue".
pub fn summary(total: usize, overdue: usize) -> String {
    format!("{total} total, {overdue} overdue")
}

/// The rows last read and the body last served, so that between reads the
/// rows are judged again (overdue changes with the clock) without a query.
pub struct RowCache<R, B> {
    rows: Option<Vec<R>>,
    last: Option<B>,
}

impl<R, B> Default for RowCache<R, B> {
    fn default() -> Self {
        RowCache {
            rows: None,
            last: None,
        }
    }
}

/// Reads the rows when `read` (else takes the cached ones), judges them with
/// `judge`, and says whether the body is new, re-judged, or the same.
pub fn collect_rows<R, B>(
    db: &crate::sources::db::Db,
    query: &'static str,
    read: bool,
    changes: &Changes,
    cache: &Mutex<RowCache<R, B>>,
    judge: impl Fn(Vec<R>) -> B,
) -> Collected<B>
where
    R: diesel::deserialize::QueryableByName<diesel::sqlite::Sqlite> + Clone + 'static,
    B: Clone + PartialEq,
{
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let (rows, read) = match (read, cache.rows.clone()) {
        (false, Some(rows)) => (rows, false),
        _ => {
            let rows: Vec<R> = super::db_rows(db, query).inspect_err(|_| changes.failed())?;
            cache.rows = Some(rows.clone());
            (rows, true)
        }
    };
    Ok(super::rejudged(&mut cache.last, judge(rows), read))
}
