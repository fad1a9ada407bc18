//! Sections: the parts of the status document, one file each.
//!
//! A section knows its name, its default schedule, and how to collect its body
//! by asking the sources. It knows nothing about HTTP, snapshots or timing: the
//! poller runs it, the store keeps what it returns.
//!
//! Adding a section is a new file here plus one line in [`registry`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::Config;
use crate::context::Context;

pub mod channels;
pub mod deploy;
pub mod gateway;
pub mod groups;
pub mod host_jobs;
pub mod messages;
pub mod queue;
pub mod repos;
pub mod service;
pub mod tasks;

/// What kind of failure a collection hit; the rollup weighs them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The collection failed (a timeout, a panic, a query on an old schema, …).
    Failed,
    /// The outside system could not be read at all (a database file missing,
    /// locked, corrupt or unopenable).
    Unreadable,
}

/// Why a collection failed. Its text is shown in the section's `meta.error`, so it
/// is short and never holds a stack trace, a secret or a path outside the config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CollectError {
    pub message: String,
    pub kind: ErrorKind,
}

impl CollectError {
    pub fn new(msg: impl Into<String>) -> Self {
        CollectError {
            message: msg.into(),
            kind: ErrorKind::Failed,
        }
    }
}

impl From<crate::sources::db::DbError> for CollectError {
    fn from(e: crate::sources::db::DbError) -> Self {
        CollectError {
            kind: if e.is_unreadable() {
                ErrorKind::Unreadable
            } else {
                ErrorKind::Failed
            },
            message: e.to_string(),
        }
    }
}

/// What a collection returns: the section's body, or why there is none.
pub type CollectResult = Result<Value, CollectError>;

/// One collection, ready to run. Blocking work (git2, diesel) goes to tokio's
/// blocking pool; async work (HTTP, Docker) to a task.
pub enum Work {
    Blocking(Box<dyn FnOnce() -> CollectResult + Send + 'static>),
    Async(Pin<Box<dyn Future<Output = CollectResult> + Send + 'static>>),
    /// Already known (an in-memory read of pushed state), as of `as_of`: that is
    /// the section's `collected_at`, not the time of the poll.
    Done {
        result: CollectResult,
        as_of: Option<Stamp>,
    },
}

/// When a value was true: wall-clock time for `collected_at`, and the monotonic
/// instant for staleness deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub at: chrono::DateTime<chrono::Utc>,
    pub instant: std::time::Instant,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp {
            at: chrono::Utc::now(),
            instant: std::time::Instant::now(),
        }
    }
}

impl Work {
    pub fn blocking(f: impl FnOnce() -> CollectResult + Send + 'static) -> Work {
        Work::Blocking(Box::new(f))
    }
    pub fn future(f: impl Future<Output = CollectResult> + Send + 'static) -> Work {
        Work::Async(Box::pin(f))
    }
}

/// How often a section is collected, how long a collection may take, and when
/// its last good body stops counting as fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
    pub stale_after: Duration,
}

impl Schedule {
    /// A schedule with `stale_after` at its default of three intervals.
    pub const fn every(interval: Duration, timeout: Duration) -> Schedule {
        Schedule {
            interval,
            timeout,
            stale_after: Duration::from_nanos(interval.as_nanos() as u64 * 3),
        }
    }

    /// This default with the `[sections.<name>]` overrides of `config` applied.
    pub fn with_overrides(self, config: &Config, name: &str) -> Schedule {
        let Some(o) = config.sections.get(name) else {
            return self;
        };
        let interval = o.interval.unwrap_or(self.interval);
        Schedule {
            interval,
            timeout: o.timeout.unwrap_or(self.timeout),
            stale_after: o.stale_after.unwrap_or(if o.interval.is_some() {
                interval * 3
            } else {
                self.stale_after
            }),
        }
    }
}

/// One part of the status document.
pub trait Section: Send + Sync + 'static {
    /// The key under which the body appears in `/status`.
    fn name(&self) -> &'static str;
    /// The schedule used when the config does not override it.
    fn default_schedule(&self) -> Schedule;
    /// Prepares one collection. Called by the poller once per tick.
    fn collect(&self) -> Work;
}

/// Serializes a section body.
pub fn to_body(body: impl serde::Serialize) -> CollectResult {
    serde_json::to_value(body).map_err(|e| CollectError::new(e.to_string()))
}

/// A read-only connection to pynchy's database for one section, with a busy
/// timeout of half the section's timeout (a locked database fails the cycle
/// before the poller's timeout does).
pub fn db_for(ctx: &Context, name: &str, default: Schedule) -> crate::sources::db::Db {
    let timeout = default.with_overrides(&ctx.config, name).timeout;
    crate::sources::db::Db::new(&ctx.config.pynchy.database, timeout / 2)
}

/// Runs a read-only query on pynchy's database and loads its rows.
pub fn db_rows<T>(db: &crate::sources::db::Db, sql: &'static str) -> Result<Vec<T>, CollectError>
where
    T: diesel::deserialize::QueryableByName<diesel::sqlite::Sqlite> + 'static,
{
    use diesel::RunQueryDsl;
    Ok(db.read(|c| diesel::sql_query(sql).load::<T>(c))?)
}

/// Every built-in section, in the order they appear in `/status` (the seed's order).
pub fn registry(ctx: &Arc<Context>) -> Vec<Arc<dyn Section>> {
    vec![
        Arc::new(service::Service::new(ctx.clone())),
        Arc::new(deploy::Deploy::new(ctx.clone())),
        Arc::new(channels::ChannelsSection::new(ctx.clone())),
        Arc::new(gateway::Gateway::new(ctx.clone())),
        Arc::new(queue::Queue::new(ctx.clone())),
        Arc::new(repos::Repos::new(ctx.clone())),
        Arc::new(messages::Messages::new(ctx.clone())),
        Arc::new(tasks::Tasks::new(ctx.clone())),
        Arc::new(host_jobs::HostJobs::new(ctx.clone())),
        Arc::new(groups::Groups::new(ctx.clone())),
    ]
}
