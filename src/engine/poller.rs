//! The poller: runs each section on its own schedule and hands every outcome to
//! the store.
//!
//! Per section: the first collection runs at start-up; after that one per
//! interval, or at once when kicked (a refresh). A push is published at once
//! from the push and the last observation ([`Section::pushed`]), even while
//! a collection runs; a collection that was running then publishes the push
//! merged with what it observed, never an older push. A collection that outlives its
//! timeout is reported as an error and, if it is blocking work that cannot be
//! cancelled, left to finish on its own: no new collection of that section
//! starts until it has, so calls never pile up (kicks that arrive meanwhile
//! wait for the next collection). A panic in a collector is caught by tokio's
//! task boundary and reported as an error; the poller itself carries on.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::engine::store::{Outcome, StoreWriter};
use crate::section_id::SectionId;
#[cfg(doc)]
use crate::sections::Section;
use crate::sections::{CollectError, DynSection, ErasedBody, Run, Schedule, Work};

type Collected = crate::sections::Collected<Arc<dyn ErasedBody>>;

/// How long the source must stay quiet after a change event before the
/// poller collects, so a burst (a `git checkout` rewriting thousands of
/// files) is one collection; but never longer than [`DEBOUNCE_MAX`] in all.
const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(150);
const DEBOUNCE_MAX: std::time::Duration = std::time::Duration::from_secs(2);

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the section's source changed, never if it cannot tell.
async fn changed(changes: &Option<Arc<tokio::sync::Notify>>) {
    match changes {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

/// What a kick asks of a poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// A collection, as soon as the section is free.
    Collect,
    /// A push of the section was taken: publish it now.
    Push,
}

/// A kick, with whom to tell once its result is published.
type KickMsg = (Asked, oneshot::Sender<()>);

/// Asks a poller for a collection now, or to publish a push.
#[derive(Clone)]
pub struct Kick(mpsc::UnboundedSender<KickMsg>);

impl Kick {
    /// Collects as soon as the section is free, and resolves once the result is
    /// in a published snapshot (or the poller is gone).
    pub async fn collect_and_publish(&self) {
        self.ask(Asked::Collect).await;
    }

    /// A push of the section was taken: resolves once a published snapshot
    /// holds it — at once for a section that builds its body from a push
    /// ([`Section::pushed`]), else after its next collection.
    pub async fn publish_push(&self) {
        self.ask(Asked::Push).await;
    }

    async fn ask(&self, what: Asked) {
        let (tx, rx) = oneshot::channel();
        if self.0.send((what, tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A running poller: its task, and a way to ask for a collection now.
pub struct PollerHandle {
    pub id: SectionId,
    pub task: JoinHandle<()>,
    pub kick: Kick,
}

/// Starts the poller of one section.
pub fn spawn(
    section: Arc<dyn DynSection>,
    id: SectionId,
    schedule: Schedule,
    store: StoreWriter,
) -> PollerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let poller = Poller {
        section,
        id,
        schedule,
        store,
        straggler: None,
        kicks: rx,
        waiting: Vec::new(),
        pushed: false,
    };
    PollerHandle {
        id,
        task: tokio::spawn(poller.run()),
        kick: Kick(tx),
    }
}

struct Poller {
    section: Arc<dyn DynSection>,
    id: SectionId,
    schedule: Schedule,
    store: StoreWriter,
    /// A collection that timed out but could not be cancelled (blocking work).
    straggler: Option<(JoinHandle<Collected>, Instant)>,
    kicks: mpsc::UnboundedReceiver<KickMsg>,
    /// Acks waiting for the next published collection: kept across skipped
    /// ticks, so a kick never resolves without a publish.
    waiting: Vec<oneshot::Sender<()>>,
    /// A push was published while the current collection ran.
    pushed: bool,
}

fn start(work: Work<Arc<dyn ErasedBody>>) -> JoinHandle<Collected> {
    match work.run {
        // Gated work was let in by its gate (see `Poller::let_in`).
        Run::Blocking(f) | Run::Gated { work: f, .. } => tokio::task::spawn_blocking(f),
        Run::Async(fut) => tokio::spawn(fut),
        Run::Done(result) => tokio::spawn(std::future::ready(result)),
    }
}

impl Poller {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.schedule.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let changes = self.section.changes().map(|c| c.notify.clone());
        loop {
            // A kick that came during the last collection is served at once.
            if self.waiting.is_empty() || self.busy() {
                let wake = self.section.wake_at();
                let kick = tokio::select! {
                    _ = ticker.tick() => None,
                    _ = sleep_until_opt(wake) => None,
                    Some(k) = self.kicks.recv() => Some(k),
                    _ = changed(&changes) => {
                        self.settle(&changes).await;
                        None
                    }
                };
                // A push published from itself needs no collection.
                if kick.is_some_and(|k| self.take_kick(k)) {
                    continue;
                }
                // Every kick queued so far is served by this one collection.
                while let Ok(k) = self.kicks.try_recv() {
                    self.take_kick(k);
                }
                if self.busy() {
                    continue;
                }
            }
            self.collect().await;
        }
    }

    /// `fut`'s output, taking the kicks that come meanwhile: a push is
    /// published at once, any other kick waits for the next collection.
    async fn taking_kicks<F: std::future::Future>(&mut self, fut: F) -> F::Output {
        tokio::pin!(fut);
        loop {
            let kick = tokio::select! {
                out = &mut fut => return out,
                Some(k) = self.kicks.recv() => k,
            };
            self.take_kick(kick);
        }
    }

    /// Waits until `changes` has been quiet for [`DEBOUNCE`], at most
    /// [`DEBOUNCE_MAX`], publishing pushes meanwhile.
    async fn settle(&mut self, changes: &Option<Arc<tokio::sync::Notify>>) {
        let Some(n) = changes else { return };
        let until = tokio::time::Instant::now() + DEBOUNCE_MAX;
        loop {
            let heard = self
                .taking_kicks(tokio::time::timeout(DEBOUNCE, n.notified()))
                .await;
            if heard.is_err() || tokio::time::Instant::now() >= until {
                return;
            }
        }
    }

    /// A push the section builds from itself is published now (true); any
    /// other kick waits for the next collection.
    fn take_kick(&mut self, (asked, ack): KickMsg) -> bool {
        if asked == Asked::Push {
            if let Some((result, as_of)) = self.pushed_result() {
                let now = Utc::now();
                self.send(now, std::time::Duration::ZERO, result, as_of, vec![ack]);
                self.pushed = true;
                return true;
            }
        }
        self.waiting.push(ack);
        false
    }

    /// The section's outcome from its push, if it builds one without I/O.
    fn pushed_result(&self) -> Option<(Collected, Option<crate::stamp::Stamp>)> {
        let work = self.section.pushed_erased()?;
        match work.run {
            Run::Done(result) => Some((result, work.as_of)),
            _ => {
                tracing::warn!(section = %self.id, "a push's outcome must ask nothing: collected instead");
                None
            }
        }
    }

    /// True while a timed-out blocking collection still holds its thread. Its
    /// error stays on the section, and staleness runs its course.
    fn busy(&mut self) -> bool {
        match &self.straggler {
            Some((handle, since)) if !handle.is_finished() => {
                tracing::debug!(
                    section = %self.id,
                    running_for = ?since.elapsed(),
                    "skipping a tick: the previous collection is still running"
                );
                true
            }
            _ => {
                self.straggler = None;
                false
            }
        }
    }

    async fn collect(&mut self) {
        let acks = std::mem::take(&mut self.waiting);
        self.pushed = false;
        let attempted_at = Utc::now();
        let began = Instant::now();
        let work = self.section.collect_erased();
        let cancellable = !matches!(work.run, Run::Blocking(_) | Run::Gated { .. });
        let gate = match &work.run {
            Run::Gated { gate, .. } => Some(gate.clone()),
            _ => None,
        };
        let as_of = work.as_of;
        let result = match self.let_in(work) {
            Ok(work) => self.wait(start(work), cancellable, began).await,
            Err(stuck) => Err(stuck),
        };
        // A gated source that did not answer in time cannot be read.
        let result = match (result, gate) {
            (Err(e), Some(g)) if e.message.starts_with("timed out") => Err(
                CollectError::unreadable(format!("{} did not answer: {}", g.what(), e.message)),
            ),
            (r, _) => r,
        };
        if let Err(e) = &result {
            tracing::debug!(section = %self.id, error = %e, "collection failed");
            // A change it had taken is read again at the next collection.
            if let Some(c) = self.section.changes() {
                c.failed();
            }
        }
        // A push published while this ran: this collection's body may hold
        // the push before it. The push, merged with what this collection just
        // observed, is published instead (a failure is published as it is:
        // the push stays the last good body).
        let replace = self.pushed && result.is_ok();
        let (result, as_of) = match replace.then(|| self.pushed_result()).flatten() {
            Some(pushed) => pushed,
            None => (result, as_of),
        };
        self.send(attempted_at, began.elapsed(), result, as_of, acks);
    }

    /// Hands an outcome to the store.
    fn send(
        &self,
        attempted_at: chrono::DateTime<Utc>,
        duration: std::time::Duration,
        result: Collected,
        as_of: Option<crate::stamp::Stamp>,
        acks: Vec<oneshot::Sender<()>>,
    ) {
        let prepared = crate::engine::store::prepare(&result);
        self.store.send(Outcome {
            section: self.id,
            attempted_at,
            duration,
            prepared,
            result,
            as_of,
            refresh: self.section.refresh(),
            acks,
        });
    }

    /// Gated work, let in by its gate (it then holds its ticket until it
    /// returns); or, when the source is stuck in an earlier read, that as
    /// the error, with nothing started.
    fn let_in(
        &self,
        work: Work<Arc<dyn ErasedBody>>,
    ) -> Result<Work<Arc<dyn ErasedBody>>, CollectError> {
        let Work { run, as_of } = work;
        let run = match run {
            Run::Gated { gate, work } => {
                let ticket = gate
                    .enter(self.schedule.timeout)
                    .map_err(CollectError::unreadable)?;
                Run::Gated {
                    gate,
                    work: Box::new(move || {
                        let _inside = ticket;
                        work()
                    }),
                }
            }
            other => other,
        };
        Ok(Work { run, as_of })
    }

    /// The collection's result, or its timeout, panic or cancellation as an error.
    async fn wait(
        &mut self,
        mut handle: JoinHandle<Collected>,
        cancellable: bool,
        began: Instant,
    ) -> Collected {
        let timeout = self.schedule.timeout;
        // Pushes are published while it runs; other kicks wait for the next.
        let ended = self
            .taking_kicks(tokio::time::timeout(timeout, &mut handle))
            .await;
        match ended {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => {
                tracing::error!(section = %self.id, "collector panicked");
                Err(CollectError::new("collector panicked"))
            }
            Ok(Err(_)) => Err(CollectError::new("collection was cancelled")),
            Err(_) => {
                handle.abort();
                if cancellable {
                    // Aborted async work ends at its next await point.
                    let _ = handle.await;
                } else {
                    // Blocking work cannot be cancelled: it runs on until it returns.
                    self.straggler = Some((handle, began));
                }
                let t = humantime::format_duration(timeout);
                tracing::warn!(section = %self.id, timeout = %t, "collection timed out");
                Err(CollectError::new(format!("timed out after {t}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::spawn;
    use crate::config::RollupConfig;
    use crate::engine::store::Store;
    use crate::section_id::SectionId;
    use crate::sections::{CollectError, Schedule, Section, Work};

    /// Counts its collections; the 3rd one fails, the 5th never ends.
    struct Counted(Arc<AtomicU64>);

    impl Section for Counted {
        type Body = serde_json::Value;
        fn collect(&self) -> Work<serde_json::Value> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Work::future(async move {
                match n {
                    3 => Err(CollectError::new("third")),
                    5 => std::future::pending().await,
                    _ => Ok(serde_json::json!({ "n": n })),
                }
            })
        }
    }

    /// On tokio's paused clock (no real waiting): a collection at start and
    /// every interval, a failed one followed by the next on time, and a hung
    /// one given up at its timeout, the schedule going on after it.
    #[tokio::test(start_paused = true)]
    async fn every_interval_through_a_failure_and_a_hang() {
        let id = SectionId::Extra("counted");
        let schedule = Schedule::every(Duration::from_secs(10), Duration::from_secs(2));
        let (store, handle) = Store::new(vec![(id, schedule)], RollupConfig::default());
        let store_task = tokio::spawn(store.run());
        let n = Arc::new(AtomicU64::new(0));
        let p = spawn(Arc::new(Counted(n.clone())), id, schedule, handle.clone());
        let at = |secs: u64| tokio::time::sleep(Duration::from_millis(secs * 1000 + 500));
        at(0).await;
        assert_eq!(n.load(Ordering::SeqCst), 1);
        at(10).await; // t = 11 s
        assert_eq!(n.load(Ordering::SeqCst), 2);
        at(20).await; // t = 31.5 s: the 3rd failed at 20 s, the 4th at 30 s
        assert_eq!(n.load(Ordering::SeqCst), 4);
        at(10).await; // t = 42 s: the 5th (40 s) hangs, given up at 42 s
        assert_eq!(n.load(Ordering::SeqCst), 5);
        at(9).await; // t = 51.5 s: the 6th at 50 s, on time
        assert_eq!(n.load(Ordering::SeqCst), 6);
        p.task.abort();
        store_task.abort();
    }

    /// Told of change; its first collection takes the change, then hangs.
    struct Watched(Arc<crate::sources::watch::Changes>);

    impl Section for Watched {
        type Body = serde_json::Value;
        fn collect(&self) -> Work<serde_json::Value> {
            let _read = self.0.must_read(Duration::from_secs(3600));
            Work::future(std::future::pending())
        }
        fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
            Some(self.0.clone())
        }
    }

    /// A collection given up at its timeout marks the change it had taken
    /// again, so the next one reads it — also for a section shared through
    /// an `Arc` (a host keeping a handle on it).
    #[tokio::test(start_paused = true)]
    async fn a_failed_collection_reads_its_change_again() {
        let id = SectionId::Extra("watched");
        let schedule = Schedule::every(Duration::from_secs(60), Duration::from_secs(2));
        let (store, handle) = Store::new(vec![(id, schedule)], RollupConfig::default());
        let store_task = tokio::spawn(store.run());
        let changes = crate::sources::watch::Changes::new();
        changes.set_watching(true);
        let shared = Arc::new(Watched(changes.clone()));
        let p = spawn(Arc::new(shared), id, schedule, handle.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Taken by the hanging collection: nothing to read now.
        assert!(!changes.must_read(Duration::from_secs(3600)));
        tokio::time::sleep(Duration::from_secs(2)).await; // t = 2.5 s: given up
        assert!(changes.must_read(Duration::from_secs(3600)));
        p.task.abort();
        store_task.abort();
    }
}
