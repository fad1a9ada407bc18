//! The poller: runs each section on its own schedule and hands every outcome to
//! the store.
//!
//! Per section: the first collection runs at start-up; after that one per
//! interval. A collection that outlives its timeout is reported as an error and,
//! if it is blocking work that cannot be cancelled, left to finish on its own:
//! no new collection of that section starts until it has, so calls never pile
//! up. A panic in a collector is caught by tokio's task boundary and reported as
//! an error; the poller itself carries on.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::sections::{CollectError, CollectResult, Schedule, Section, Work};
use crate::store::{Outcome, StoreHandle};

/// Asks a poller for a collection now; the optional sender fires once a
/// snapshot holding that collection is published.
#[derive(Clone)]
pub struct Kick(mpsc::UnboundedSender<Option<oneshot::Sender<()>>>);

impl Kick {
    /// Collects as soon as the section is free; does not wait.
    pub fn collect_now(&self) {
        let _ = self.0.send(None);
    }

    /// Collects as soon as the section is free, and resolves once the result is
    /// in a published snapshot (or the poller is gone).
    pub async fn collect_and_publish(&self) {
        let (tx, rx) = oneshot::channel();
        if self.0.send(Some(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A running poller: its task, and a way to ask for a collection now.
pub struct PollerHandle {
    pub name: &'static str,
    pub task: JoinHandle<()>,
    pub kick: Kick,
}

/// Starts the poller of one section. `index` is its place in the store.
pub fn spawn(
    section: Arc<dyn Section>,
    index: usize,
    schedule: Schedule,
    store: StoreHandle,
) -> PollerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let name = section.name();
    let task = tokio::spawn(run(section, index, schedule, store, rx));
    PollerHandle {
        name,
        task,
        kick: Kick(tx),
    }
}

fn start(work: Work) -> JoinHandle<CollectResult> {
    match work {
        Work::Blocking(f) => tokio::task::spawn_blocking(f),
        Work::Async(fut) => tokio::spawn(fut),
        Work::Done { result, .. } => tokio::spawn(std::future::ready(result)),
    }
}

async fn run(
    section: Arc<dyn Section>,
    index: usize,
    schedule: Schedule,
    store: StoreHandle,
    mut kicks: mpsc::UnboundedReceiver<Option<oneshot::Sender<()>>>,
) {
    let mut ticker = tokio::time::interval(schedule.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // A collection that timed out but could not be cancelled (blocking work).
    let mut straggler: Option<(JoinHandle<CollectResult>, Instant)> = None;
    loop {
        let mut acks = Vec::new();
        tokio::select! {
            _ = ticker.tick() => {}
            Some(k) = kicks.recv() => acks.extend(k),
        }
        // Every kick queued so far is served by this one collection.
        while let Ok(k) = kicks.try_recv() {
            acks.extend(k);
        }
        if let Some((handle, since)) = &straggler {
            if !handle.is_finished() {
                // Single flight: the timed-out call still holds its thread. Its
                // error stays on the section, and staleness runs its course.
                tracing::debug!(
                    section = section.name(),
                    running_for = ?since.elapsed(),
                    "skipping a tick: the previous collection is still running"
                );
                continue;
            }
            straggler = None;
        }
        let attempted_at = Utc::now();
        let began = Instant::now();
        let work = section.collect();
        let cancellable = !matches!(work, Work::Blocking(_));
        let as_of = match &work {
            Work::Done { as_of, .. } => *as_of,
            _ => None,
        };
        let mut handle = start(work);
        let result = match tokio::time::timeout(schedule.timeout, &mut handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => {
                tracing::error!(section = section.name(), "collector panicked");
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
                    straggler = Some((handle, began));
                }
                tracing::warn!(
                    section = section.name(),
                    timeout = %humantime::format_duration(schedule.timeout),
                    "collection timed out"
                );
                Err(CollectError::new(format!(
                    "timed out after {}",
                    humantime::format_duration(schedule.timeout)
                )))
            }
        };
        if let Err(e) = &result {
            tracing::debug!(section = section.name(), error = %e, "collection failed");
        }
        store.send(Outcome {
            section: index,
            attempted_at,
            duration: began.elapsed(),
            result,
            as_of,
            acks,
        });
    }
}
