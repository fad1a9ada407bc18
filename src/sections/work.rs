//! One collection: the work a section hands its poller ([`Work`]), what it
//! found ([`Update`]) and why it failed ([`CollectError`]).

use std::future::Future;
use std::pin::Pin;

use super::Gate;
use crate::stamp::Stamp;

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

    /// The source could not be read at all.
    pub fn unreadable(msg: impl Into<String>) -> Self {
        CollectError {
            message: msg.into(),
            kind: ErrorKind::Unreadable,
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

/// What one collection found.
#[derive(Debug)]
pub enum Update<B> {
    /// A body read from the source just now (`collected_at` moves).
    New(B),
    /// The source said nothing changed: the last body stands and
    /// `checked_at` moves.
    Same,
    /// The same data judged again (a verdict that changes with the clock):
    /// the body is replaced, `collected_at` stays when the data was read.
    Rejudged(B),
}

impl<B> Update<B> {
    fn map<C>(self, f: impl FnOnce(B) -> C) -> Update<C> {
        match self {
            Update::New(b) => Update::New(f(b)),
            Update::Rejudged(b) => Update::Rejudged(f(b)),
            Update::Same => Update::Same,
        }
    }
}

/// What a collection returns.
pub type Collected<B> = Result<Update<B>, CollectError>;

/// One collection, ready to run: what runs ([`Run`]) and, for pushed state,
/// when its body was true.
pub struct Work<B> {
    pub run: Run<B>,
    /// When the body was true, if not at its collection: pushed state (alone
    /// or merged with what was read) is as of its push, and that is the
    /// section's `collected_at`.
    pub as_of: Option<Stamp>,
}

/// How a collection runs. Blocking work (git2, diesel) goes to tokio's
/// blocking pool; async work (HTTP, Docker) to a task.
pub enum Run<B> {
    Blocking(Box<dyn FnOnce() -> Collected<B> + Send + 'static>),
    Async(Pin<Box<dyn Future<Output = Collected<B>> + Send + 'static>>),
    /// Blocking work on a source that must not pile up stuck reads: it
    /// starts only if the gate lets it in, and a timeout makes it unreadable.
    Gated {
        gate: Gate,
        work: Box<dyn FnOnce() -> Collected<B> + Send + 'static>,
    },
    /// Already known (an in-memory read of pushed state).
    Done(Collected<B>),
}

impl<B: Send + 'static> Work<B> {
    fn of(run: Run<B>) -> Work<B> {
        Work { run, as_of: None }
    }

    /// Blocking work that reads a new body.
    pub fn blocking(f: impl FnOnce() -> Result<B, CollectError> + Send + 'static) -> Work<B> {
        Work::of(Run::Blocking(Box::new(move || f().map(Update::New))))
    }

    /// Blocking work that may find nothing changed.
    pub fn blocking_update(f: impl FnOnce() -> Collected<B> + Send + 'static) -> Work<B> {
        Work::of(Run::Blocking(Box::new(f)))
    }

    /// Async work that reads a new body.
    pub fn future(f: impl Future<Output = Result<B, CollectError>> + Send + 'static) -> Work<B> {
        Work::of(Run::Async(Box::pin(
            async move { f.await.map(Update::New) },
        )))
    }

    /// A result already known, with no I/O.
    pub fn done(result: Collected<B>) -> Work<B> {
        Work::of(Run::Done(result))
    }

    /// Nothing to read: the source said nothing changed.
    pub fn same() -> Work<B> {
        Work::done(Ok(Update::Same))
    }

    /// This blocking work, let in by `gate`.
    pub fn gated(self, gate: Gate) -> Work<B> {
        let run = match self.run {
            Run::Blocking(work) => Run::Gated { gate, work },
            other => other,
        };
        Work { run, ..self }
    }

    /// This work's body was true as of `stamp` (pushed state), not as of
    /// its collection.
    pub fn as_of(self, stamp: Option<Stamp>) -> Work<B> {
        Work {
            as_of: stamp,
            ..self
        }
    }

    /// The same work, its body turned by `f` once it is there.
    pub fn map<C: Send + 'static>(self, f: fn(B) -> C) -> Work<C> {
        let run = match self.run {
            Run::Blocking(work) => Run::Blocking(Box::new(move || work().map(|u| u.map(f)))),
            Run::Async(fut) => Run::Async(Box::pin(async move { fut.await.map(|u| u.map(f)) })),
            Run::Gated { gate, work } => Run::Gated {
                gate,
                work: Box::new(move || work().map(|u| u.map(f))),
            },
            Run::Done(result) => Run::Done(result.map(|u| u.map(f))),
        };
        Work {
            run,
            as_of: self.as_of,
        }
    }
}
