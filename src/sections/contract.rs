//! The section contract: what a section is to the poller ([`Section`],
//! [`DynSection`]), to the daemon ([`Builtin`]), and what its body means
//! ([`Body`]: rules and findings, metrics, `/health`, summary, pages).

use std::sync::Arc;

use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Refresh, Schedule, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::watch::Changes;

/// A rollup rule a section owns: its name (the key of `[rollup.severity]`), its
/// default severity, and what makes it fire (the README's rule table).
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub default: Severity,
    pub what: &'static str,
}

/// A section's statement "this is wrong": the rule that fired, what it is
/// about, and the reason text served in `/status`'s `reasons`.
///
/// The rule and the subject make the condition that `since`, transitions,
/// flap damping and notifications follow: the reason's text may change as
/// the condition ages ("31 s old", "6 restarts") and it stays one
/// condition. A rule that can fire for several things at once (worktrees,
/// containers, tasks, models) names each with [`Finding::about`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static Rule,
    pub subject: Option<String>,
    pub reason: String,
}

impl Finding {
    /// The rule fired, once for its section.
    pub fn new(rule: &'static Rule, reason: impl Into<String>) -> Finding {
        Finding {
            rule,
            subject: None,
            reason: reason.into(),
        }
    }

    /// The rule fired for `subject` (a worktree, a container, a task, …).
    pub fn about(
        rule: &'static Rule,
        subject: impl Into<String>,
        reason: impl Into<String>,
    ) -> Finding {
        Finding {
            rule,
            subject: Some(subject.into()),
            reason: reason.into(),
        }
    }
}

/// `GET /health`: the verdict and a few lightweight fields that sections fill
/// in from their bodies (null when the section has no body).
#[derive(Debug, Default, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub uptime_seconds: Option<i64>,
    pub head_sha: Option<String>,
    pub head_commit: Option<String>,
    pub dirty: Option<bool>,
    pub channels_connected: Option<bool>,
}

/// A section's typed body and what it means. The body stays typed until the
/// snapshot is rendered; `check` reads it back with `Deserialize`.
pub trait Body:
    Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static
{
    /// The rule findings this body raises (see the section's `RULES`).
    fn findings(&self, _cfg: &RollupConfig, _out: &mut Vec<Finding>) {}
    /// Its Prometheus families, written into the snapshot's registry.
    fn metrics(&self, _reg: &mut Registry) {}
    /// What it adds to `/health`.
    fn health(&self, _h: &mut Health) {}
    /// The key numbers in a few words (`check`, the dashboard).
    fn summary(&self) -> String;
    /// Its own pages (`/status/{section}/{key}`), rendered with the body.
    fn pages(&self) -> Option<Arc<crate::rendered::Pages>> {
        None
    }
}

/// A [`Body`] behind a pointer: what the store keeps and the rollup, metrics
/// and render read. Implemented for every `Body`.
pub trait ErasedBody: Send + Sync + 'static {
    fn to_json(&self) -> serde_json::Result<Vec<u8>>;
    fn findings(&self, cfg: &RollupConfig, out: &mut Vec<Finding>);
    fn metrics(&self, reg: &mut Registry);
    fn health(&self, h: &mut Health);
    fn summary(&self) -> String;
    fn pages(&self) -> Option<Arc<crate::rendered::Pages>>;
}

impl<B: Body> ErasedBody for B {
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
    fn findings(&self, cfg: &RollupConfig, out: &mut Vec<Finding>) {
        Body::findings(self, cfg, out)
    }
    fn metrics(&self, reg: &mut Registry) {
        Body::metrics(self, reg)
    }
    fn health(&self, h: &mut Health) {
        Body::health(self, h)
    }
    fn summary(&self) -> String {
        Body::summary(self)
    }
    fn pages(&self) -> Option<Arc<crate::rendered::Pages>> {
        Body::pages(self)
    }
}

impl std::fmt::Debug for dyn ErasedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

/// A body of no particular shape: what an `Extra` section (a host's or a test's)
/// may serve. It raises nothing and exports nothing.
impl Body for serde_json::Value {
    fn summary(&self) -> String {
        let s = self.to_string();
        match s.char_indices().nth(60) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s,
        }
    }
}

/// One part of the status document: how to collect its body.
///
/// Two things to write: [`Section::collect`], and, for a section told of
/// change, [`Section::changes`]. The rest has defaults drawn from those.
pub trait Section: Send + Sync + 'static {
    type Body: Body;
    /// Prepares one collection. Called by the poller once per tick, and
    /// soon after its [`Section::changes`] is marked.
    fn collect(&self) -> Work<Self::Body>;
    /// What tells it its source changed (file, database or Docker events,
    /// pushes): the poller collects a moment after each mark (debounced),
    /// and a collection that failed before its work could say so (a
    /// timeout, a source stuck behind its gate, a panic) marks it again, so
    /// the change is read at the next one. `None`: read every interval.
    fn changes(&self) -> Option<Arc<Changes>> {
        None
    }
    /// Whether it follows events now: by default, whether its changes are
    /// watched.
    fn refresh(&self) -> Refresh {
        match self.changes() {
            Some(c) if c.watching() => Refresh::Event,
            _ => Refresh::Poll,
        }
    }
    /// The next instant its body changes with the clock alone (a TTL running
    /// out): the poller collects then too.
    fn wake_at(&self) -> Option<std::time::Instant> {
        None
    }
    /// A push of it was just taken: its outcome from the push and what it
    /// last observed, asking nothing (`Work::done`). The poller publishes it
    /// at once, even while an observing collection runs, so a push is in
    /// `/status` by the time the PUT answers. `None` (the default): the push
    /// waits for the next collection.
    fn pushed(&self) -> Option<Work<Self::Body>> {
        None
    }
}

/// A shared section is a section (a host or a test keeps a handle on it).
impl<S: Section + ?Sized> Section for Arc<S> {
    type Body = S::Body;
    fn collect(&self) -> Work<S::Body> {
        (**self).collect()
    }
    fn changes(&self) -> Option<Arc<Changes>> {
        (**self).changes()
    }
    fn refresh(&self) -> Refresh {
        (**self).refresh()
    }
    fn wake_at(&self) -> Option<std::time::Instant> {
        (**self).wake_at()
    }
    fn pushed(&self) -> Option<Work<S::Body>> {
        (**self).pushed()
    }
}

/// A section as the poller runs it: its body type erased.
pub trait DynSection: Send + Sync + 'static {
    fn collect_erased(&self) -> Work<Arc<dyn ErasedBody>>;
    fn pushed_erased(&self) -> Option<Work<Arc<dyn ErasedBody>>>;
    fn changes(&self) -> Option<Arc<Changes>>;
    fn refresh(&self) -> Refresh;
    fn wake_at(&self) -> Option<std::time::Instant>;
}

fn erase<B: Body>(b: B) -> Arc<dyn ErasedBody> {
    Arc::new(b)
}

impl<S: Section> DynSection for S {
    fn collect_erased(&self) -> Work<Arc<dyn ErasedBody>> {
        self.collect().map(erase::<S::Body>)
    }
    fn pushed_erased(&self) -> Option<Work<Arc<dyn ErasedBody>>> {
        self.pushed().map(|w| w.map(erase::<S::Body>))
    }
    fn changes(&self) -> Option<Arc<Changes>> {
        Section::changes(self)
    }
    fn refresh(&self) -> Refresh {
        Section::refresh(self)
    }
    fn wake_at(&self) -> Option<std::time::Instant> {
        Section::wake_at(self)
    }
}

/// A section built into the daemon: its id, rules and default schedule, and how
/// it is built from the context and its effective schedule.
pub trait Builtin: Section + Sized {
    const ID: SectionId;
    /// The rules its body can raise.
    const RULES: &'static [&'static Rule] = &[];
    /// Pushed sections its collection reads: a push of one collects this
    /// section again at once (the tasks' verdict reads the pushed queue).
    const FOLLOWS: &'static [SectionId] = &[];
    /// It reads pynchy's database: a database it cannot read at all is
    /// `database_unreadable` (down), not a section error.
    const READS_DATABASE: bool = false;
    /// The schedule used when `[sections.<name>]` does not override it.
    fn default_schedule(config: &Config) -> Schedule;
    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self;
}
