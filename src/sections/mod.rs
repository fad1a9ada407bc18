//! Sections: the parts of the status document, one file each.
//!
//! A section's file holds its whole story: what it collects (by asking the
//! sources), the typed body it serves, when that body is a problem (its
//! [`Rule`]s and the [`Finding`]s it raises), what it exports to Prometheus,
//! what it adds to `/health`, and its one-line summary for `check` and the
//! dashboard. Nothing outside this folder reads a body's fields.
//!
//! The poller runs a section's [`Section::collect`]; the store keeps the body
//! it returns, type-erased as an [`ErasedBody`], until the snapshot is rendered.
//!
//! Adding a section: a new file here, its line in `section_ids!` (the
//! [`SectionId`] variant and its name), and its arm in [`entry`] — the one
//! registration, an exhaustive `match` that the compiler holds to every
//! variant. What the rest of the daemon must know of it (its rules, that it
//! reads pynchy's database, the pushes its collection reads, its default
//! schedule) are associated items of its [`Builtin`] impl.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{Config, RollupConfig, SectionOverride, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::push::Stamped;
use crate::stamp::Stamp;

pub mod channels;
pub mod deploy;
pub mod gateway;
pub mod groups;
pub mod host_jobs;
pub mod llm;
mod llm_body;
pub mod llm_read;
pub mod llm_window;
pub mod mcp;
pub mod messages;
pub mod prom;
pub mod queue;
pub mod repos;
mod scheduled;
pub mod service;
pub mod task_history;
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

/// One collection, ready to run. Blocking work (git2, diesel) goes to tokio's
/// blocking pool; async work (HTTP, Docker) to a task.
pub enum Work<B> {
    /// `as_of` as for `Done` (pushed state merged with what was read).
    Blocking {
        work: Box<dyn FnOnce() -> Collected<B> + Send + 'static>,
        as_of: Option<Stamp>,
    },
    Async(Pin<Box<dyn Future<Output = Collected<B>> + Send + 'static>>),
    /// Blocking work on a source that must not pile up stuck reads: it
    /// starts only if the gate lets it in, and a timeout makes it unreadable.
    /// `as_of` as for `Done`: set when the body is pushed state merged with
    /// what was read.
    Gated {
        gate: Gate,
        work: Box<dyn FnOnce() -> Collected<B> + Send + 'static>,
        as_of: Option<Stamp>,
    },
    /// Already known (an in-memory read of pushed state), as of `as_of`: that is
    /// the section's `collected_at`, not the time of the poll.
    Done {
        result: Collected<B>,
        as_of: Option<Stamp>,
    },
}

impl<B: Send + 'static> Work<B> {
    /// Blocking work that reads a new body.
    pub fn blocking(f: impl FnOnce() -> Result<B, CollectError> + Send + 'static) -> Work<B> {
        Work::Blocking {
            work: Box::new(move || f().map(Update::New)),
            as_of: None,
        }
    }

    /// Blocking work that may find nothing changed.
    pub fn blocking_update(f: impl FnOnce() -> Collected<B> + Send + 'static) -> Work<B> {
        Work::Blocking {
            work: Box::new(f),
            as_of: None,
        }
    }

    /// Async work that reads a new body.
    pub fn future(f: impl Future<Output = Result<B, CollectError>> + Send + 'static) -> Work<B> {
        Work::Async(Box::pin(async move { f.await.map(Update::New) }))
    }

    /// This blocking work, let in by `gate`.
    pub fn gated(self, gate: Gate) -> Work<B> {
        match self {
            Work::Blocking { work, as_of } => Work::Gated { gate, work, as_of },
            other => other,
        }
    }

    /// This work's body was true as of `stamp` (pushed state), not as of
    /// its collection.
    pub fn as_of(self, stamp: Option<Stamp>) -> Work<B> {
        match self {
            Work::Blocking { work, .. } => Work::Blocking { work, as_of: stamp },
            Work::Gated { gate, work, .. } => Work::Gated {
                gate,
                work,
                as_of: stamp,
            },
            Work::Done { result, .. } => Work::Done {
                result,
                as_of: stamp,
            },
            other => other,
        }
    }

    /// Nothing to read: the source said nothing changed.
    pub fn same() -> Work<B> {
        Work::Done {
            result: Ok(Update::Same),
            as_of: None,
        }
    }

    /// The same work, its body turned by `f` once it is there.
    pub fn map<C: Send + 'static>(self, f: fn(B) -> C) -> Work<C> {
        match self {
            Work::Blocking { work, as_of } => Work::Blocking {
                work: Box::new(move || work().map(|u| u.map(f))),
                as_of,
            },
            Work::Async(fut) => Work::Async(Box::pin(async move { fut.await.map(|u| u.map(f)) })),
            Work::Gated { gate, work, as_of } => Work::Gated {
                gate,
                work: Box::new(move || work().map(|u| u.map(f))),
                as_of,
            },
            Work::Done { result, as_of } => Work::Done {
                result: result.map(|u| u.map(f)),
                as_of,
            },
        }
    }
}

/// How a section learns of change: from events (file, database and Docker
/// events, pushes), or by reading its source every interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Refresh {
    Event,
    Poll,
}

/// How often a section is collected, how long a collection may take, and when
/// its last good body stops counting as fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
    pub stale_after: Duration,
    /// In event mode, a full re-read this often, in case events were lost.
    pub verify: Duration,
}

/// The default `verify_interval`.
pub const VERIFY_INTERVAL: Duration = Duration::from_secs(300);

impl Schedule {
    /// A schedule with `stale_after` at its default of three intervals.
    pub const fn every(interval: Duration, timeout: Duration) -> Schedule {
        Schedule {
            interval,
            timeout,
            stale_after: Duration::from_nanos(interval.as_nanos() as u64 * 3),
            verify: VERIFY_INTERVAL,
        }
    }

    /// This default with one `[sections.<name>]` table applied.
    pub fn with_overrides(self, o: Option<&SectionOverride>) -> Schedule {
        let Some(o) = o else {
            return self;
        };
        let interval = o.interval.unwrap_or(self.interval);
        Schedule {
            interval,
            timeout: o.timeout.unwrap_or(self.timeout),
            stale_after: o.stale_after.unwrap_or(if o.interval.is_some() {
                interval.saturating_mul(3)
            } else {
                self.stale_after
            }),
            verify: o.verify_interval.unwrap_or(self.verify),
        }
    }
}

/// A rollup rule a section owns: its name (the key of `[rollup.severity]`), its
/// default severity, and what makes it fire (the README's rule table).
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub default: Severity,
    pub what: &'static str,
}

/// A section's statement "this is wrong": the rule that fired and the reason
/// text served in `/status`'s `reasons`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static Rule,
    pub reason: String,
}

impl Finding {
    pub fn new(rule: &'static Rule, reason: impl Into<String>) -> Finding {
        Finding {
            rule,
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
pub trait Section: Send + Sync + 'static {
    type Body: Body;
    /// Prepares one collection. Called by the poller once per tick, and at
    /// once when [`Section::changes`] fires.
    fn collect(&self) -> Work<Self::Body>;
    /// Fired when the section's source changed (file, database or Docker
    /// events): the poller collects at once, a moment later (debounced).
    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
    /// Whether it currently follows events or reads every interval.
    fn refresh(&self) -> Refresh {
        Refresh::Poll
    }
    /// The next instant its body changes with the clock alone (a TTL running
    /// out): the poller collects then too.
    fn wake_at(&self) -> Option<std::time::Instant> {
        None
    }
    /// The collection failed before its work could say so (a timeout, a
    /// source stuck behind its gate, a panic): a change it had taken must be
    /// read again at the next collection.
    fn failed(&self) {}
}

/// A shared section is a section (a host or a test keeps a handle on it).
impl<S: Section + ?Sized> Section for Arc<S> {
    type Body = S::Body;
    fn collect(&self) -> Work<S::Body> {
        (**self).collect()
    }
    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        (**self).changes()
    }
    fn refresh(&self) -> Refresh {
        (**self).refresh()
    }
    fn wake_at(&self) -> Option<std::time::Instant> {
        (**self).wake_at()
    }
}

/// A section as the poller runs it: its body type erased.
pub trait DynSection: Send + Sync + 'static {
    fn collect_erased(&self) -> Work<Arc<dyn ErasedBody>>;
    fn changes(&self) -> Option<Arc<tokio::sync::Notify>>;
    fn refresh(&self) -> Refresh;
    fn wake_at(&self) -> Option<std::time::Instant>;
    fn failed(&self);
}

fn erase<B: Body>(b: B) -> Arc<dyn ErasedBody> {
    Arc::new(b)
}

impl<S: Section> DynSection for S {
    fn collect_erased(&self) -> Work<Arc<dyn ErasedBody>> {
        self.collect().map(erase::<S::Body>)
    }
    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        Section::changes(self)
    }
    fn refresh(&self) -> Refresh {
        Section::refresh(self)
    }
    fn wake_at(&self) -> Option<std::time::Instant> {
        Section::wake_at(self)
    }
    fn failed(&self) {
        Section::failed(self)
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

/// A decoded body of some section, for `check`.
pub type Decoded = Result<Box<dyn ErasedBody>, serde_json::Error>;

/// What the daemon and `check` need to know of one built-in section.
pub struct Entry {
    pub id: SectionId,
    pub rules: &'static [&'static Rule],
    pub follows: &'static [SectionId],
    pub reads_database: bool,
    pub default_schedule: fn(&Config) -> Schedule,
    pub build: fn(&Arc<Context>, Schedule) -> Arc<dyn DynSection>,
    /// Reads a served body back into the section's typed body.
    pub decode: fn(serde_json::Value) -> Decoded,
    /// The body's JSON Schema (its definitions land in the generator).
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

impl Entry {
    /// The section's schedule with its `[sections.<name>]` overrides applied.
    pub fn schedule(&self, config: &Config) -> Schedule {
        (self.default_schedule)(config).with_overrides(config.sections.get(&self.id))
    }
}

fn build<S: Builtin>(ctx: &Arc<Context>, schedule: Schedule) -> Arc<dyn DynSection> {
    Arc::new(S::new(ctx, schedule))
}

fn decode<S: Builtin>(v: serde_json::Value) -> Decoded {
    Ok(Box::new(serde_json::from_value::<S::Body>(v)?))
}

fn entry_of<S: Builtin>() -> Entry {
    Entry {
        id: S::ID,
        rules: S::RULES,
        follows: S::FOLLOWS,
        reads_database: S::READS_DATABASE,
        default_schedule: S::default_schedule,
        build: build::<S>,
        decode: decode::<S>,
        schema: |g| g.subschema_for::<S::Body>(),
    }
}

/// The one registration: each built-in section's type. The `match` is
/// exhaustive, so a [`SectionId`] variant without its arm does not compile:
///
/// ```compile_fail
/// use pynchy_status::SectionId;
/// // The shape of `entry`, an arm short: refused (E0004), as `entry` would be.
/// fn entry(id: SectionId) -> Option<&'static str> {
///     Some(match id {
///         SectionId::Service => "service",
///         SectionId::Extra(_) => return None,
///     })
/// }
/// ```
pub fn entry(id: SectionId) -> Option<Entry> {
    Some(match id {
        SectionId::Service => entry_of::<service::Service>(),
        SectionId::Deploy => entry_of::<deploy::Deploy>(),
        SectionId::Channels => entry_of::<channels::ChannelsSection>(),
        SectionId::Gateway => entry_of::<gateway::Gateway>(),
        SectionId::Llm => entry_of::<llm::Llm>(),
        SectionId::Queue => entry_of::<queue::Queue>(),
        SectionId::Repos => entry_of::<repos::Repos>(),
        SectionId::Messages => entry_of::<messages::Messages>(),
        SectionId::Tasks => entry_of::<tasks::Tasks>(),
        SectionId::HostJobs => entry_of::<host_jobs::HostJobs>(),
        SectionId::Groups => entry_of::<groups::Groups>(),
        SectionId::Mcp => entry_of::<mcp::Mcp>(),
        SectionId::Extra(_) => return None,
    })
}

/// Every built-in section, in the order they appear in `/status`.
pub fn registry() -> Vec<Entry> {
    SectionId::BUILTIN.into_iter().filter_map(entry).collect()
}

/// The built-in section `id`, if it is one.
pub fn lookup(id: SectionId) -> Option<Entry> {
    entry(id)
}

/// Whether section `id` reads pynchy's database (its [`Builtin::READS_DATABASE`]).
pub fn reads_database(id: SectionId) -> bool {
    entry(id).is_some_and(|e| e.reads_database)
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

/// Event mode, or polling when the watches could not be set.
pub fn refresh_of(changes: &crate::sources::watch::Changes) -> Refresh {
    if changes.watching() {
        Refresh::Event
    } else {
        Refresh::Poll
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
        Some(s) => Work::Done {
            result: Ok(Update::New(wrap(s.value))),
            as_of: Some(s.stamp),
        },
        None => Work::Done {
            result: Err(CollectError::new(format!(
                "no {what} state from pynchy yet"
            ))),
            as_of: None,
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The registration and the ids agree: each built-in id's entry is its
    /// own, in document order.
    #[test]
    fn every_builtin_id_has_its_own_entry() {
        let ids: Vec<SectionId> = registry().iter().map(|e| e.id).collect();
        assert_eq!(ids, SectionId::BUILTIN.to_vec());
        assert!(entry(SectionId::Extra("weather")).is_none());
        let db: Vec<&str> = SectionId::BUILTIN
            .into_iter()
            .filter(|id| reads_database(*id))
            .map(SectionId::name)
            .collect();
        assert_eq!(db, ["messages", "tasks", "host_jobs", "groups"]);
    }
}
