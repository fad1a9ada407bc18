//! Helpers the section files share: gated blocking reads, pynchy's
//! database (its gate, connections, events, rows), pushed state and its
//! freshness, re-judged bodies.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{CollectError, Schedule, Update, Work, VERIFY_INTERVAL};
use crate::config::Config;
use crate::context::Context;
use crate::sources::push::Stamped;

/// A source whose reads must not pile up when it hangs ([`Work::gated`]).
pub type Gate = Arc<crate::sources::gate::SourceGate>;

/// Runs `f` on a blocking thread if `gate` lets it in, giving up after
/// `within`: then the source's "did not answer" message. A thread that
/// started runs on, inside the gate, until `f` returns.
pub async fn gated<T: Send + 'static>(
    gate: &Gate,
    within: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let ticket = gate.enter(within)?;
    let run = tokio::task::spawn_blocking(move || {
        let _inside = ticket;
        f()
    });
    let late = || {
        let t = humantime::format_duration(within);
        format!("{} did not answer within {t}", gate.what())
    };
    match tokio::time::timeout(within, run).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(format!("{}: the read panicked", gate.what())),
        Err(_) => Err(late()),
    }
}

/// A read-only connection to pynchy's database for one section, with a busy
/// timeout of half the section's timeout (a locked database fails the cycle
/// before the poller's timeout does).
/// The gate of pynchy's database, shared by every section that reads it.
pub fn db_gate(ctx: &Context) -> Gate {
    ctx.db_gate.clone()
}

/// A section's connection to pynchy's database; its busy timeout is half the
/// section's timeout.
pub fn db_for(ctx: &Context, schedule: Schedule) -> crate::sources::db::Db {
    crate::sources::db::Db::new(&ctx.config.pynchy.database, schedule.timeout / 2)
}

/// Follows commits to pynchy's database by file events on its folder (the
/// database file, its journal and its WAL; not `-shm`, which readers write),
/// marking `changes`. Without events the section reads every interval.
pub fn watch_database(ctx: &Context, changes: &Arc<crate::sources::watch::Changes>) {
    let Some(w) = &ctx.watcher else {
        return;
    };
    let db = &ctx.config.pynchy.database;
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
        return;
    };
    let names = [
        name.to_string_lossy().into_owned(),
        format!("{}-journal", name.to_string_lossy()),
        format!("{}-wal", name.to_string_lossy()),
    ];
    let c = changes.clone();
    let sink: crate::sources::watch::Sink = Arc::new(move |p: Option<&std::path::Path>| {
        let ours = p.is_none_or(|p| {
            p.file_name()
                .is_some_and(|f| names.iter().any(|n| f.to_string_lossy() == n.as_str()))
        });
        if ours {
            c.mark();
        }
    });
    match w.add(dir, false, sink) {
        Ok(()) => changes.set_watching(true),
        Err(e) => {
            tracing::warn!(folder = %dir.display(), error = %e, "cannot watch the database: polling it")
        }
    }
}

/// A re-judged body: `Same` when it says what the last one said.
pub fn rejudged<B: PartialEq + Clone>(last: &mut Option<B>, body: B, read: bool) -> Update<B> {
    let same = last.as_ref() == Some(&body);
    *last = Some(body.clone());
    match (read, same) {
        (true, _) => Update::New(body),
        (false, true) => Update::Same,
        (false, false) => Update::Rejudged(body),
    }
}

/// Runs a read-only query on pynchy's database and loads its rows.
pub fn db_rows<T>(db: &crate::sources::db::Db, sql: &'static str) -> Result<Vec<T>, CollectError>
where
    T: diesel::deserialize::QueryableByName<diesel::sqlite::Sqlite> + 'static,
{
    use diesel::RunQueryDsl;
    Ok(db.read(|c| diesel::sql_query(sql).load::<T>(c))?)
}

/// The schedule of a pushed section: stale a TTL after the push. A push
/// collects it at once; besides, memory is read every second when polling,
/// every 10 s with events on (an embedding host whose own `PushSource`
/// changes without pushes polls with `[watch] enabled = false`).
pub fn pushed_schedule(config: &Config) -> Schedule {
    let every = if config.watch.enabled { 10 } else { 1 };
    Schedule {
        interval: Duration::from_secs(every),
        timeout: Duration::from_secs(1),
        stale_after: config.push.ttl,
        verify: VERIFY_INTERVAL,
    }
}

/// The collection of a pushed section: the pushed value as of its push, or
/// an error naming what pynchy has not pushed yet.
pub fn pushed<T, B: Send + 'static>(
    value: Option<Stamped<T>>,
    wrap: fn(T) -> B,
    what: &str,
) -> Work<B> {
    match value {
        Some(s) => Work::done(Ok(Update::New(wrap(s.value)))).as_of(Some(s.stamp)),
        None => Work::done(Err(CollectError::new(format!(
            "no {what} state from pynchy yet"
        )))),
    }
}

/// Where a section observed beside pynchy got its state: seen from outside,
/// or pynchy's own push, fresh.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Seen from outside: pynchy's process, HTTP server, containers.
    Observed,
    /// pynchy's own push, fresh.
    Pushed,
}

/// A section's view of its push: the push while fresh (`[push] ttl`), said
/// once in the log when pushes stop (observation takes over), and the
/// instant the last one goes stale (the poller collects then).
pub struct PushFreshness {
    what: &'static str,
    fresh_last: std::sync::atomic::AtomicBool,
}

impl PushFreshness {
    /// For the pushes of `what` ("service", "channel", "queue").
    pub const fn new(what: &'static str) -> PushFreshness {
        PushFreshness {
            what,
            fresh_last: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `pushed` if it is fresh.
    pub fn fresh<T>(&self, pushed: Option<Stamped<T>>, ttl: Duration) -> Option<Stamped<T>> {
        let fresh = pushed.filter(|p| p.stamp.instant.elapsed() < ttl);
        let was = self
            .fresh_last
            .swap(fresh.is_some(), std::sync::atomic::Ordering::AcqRel);
        if was && fresh.is_none() {
            tracing::info!(
                "pynchy's {} pushes stopped: observing it instead",
                self.what
            );
        }
        fresh
    }

    /// When `pushed` stops being fresh, if that is still ahead.
    pub fn expires<T>(pushed: Option<Stamped<T>>, ttl: Duration) -> Option<std::time::Instant> {
        let at = pushed?.stamp.instant.checked_add(ttl)?;
        (at > std::time::Instant::now()).then_some(at)
    }
}

/// `Some(x)` shown as itself, `None` as `-`.
pub fn show<T: std::fmt::Display>(v: &Option<T>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}
