//! The store: every section's last good body and meta, and the one task that
//! renders them into snapshots.
//!
//! Pollers send *outcomes* to the store over a channel (pushed state reaches it
//! through its section's poller too).
//! The store task applies them, renders a new [`Snapshot`], swaps it into the
//! `ArcSwap`, and bumps a `watch` channel so subscribers (SSE) learn of it. It
//! also wakes itself at the next staleness deadline, so `stale` turns true on
//! time even when a poller is hung and nothing new arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::RollupConfig;
use crate::engine::record::SectionRecord;
use crate::engine::render::render;
use crate::engine::snapshot::Snapshot;
use crate::section_id::SectionId;
use crate::sections::{CollectError, Collected, ErasedBody, Refresh, Schedule, Update};
use crate::stamp::Stamp;

/// The result of one collection attempt (or one push), as the store receives it.
pub struct Outcome {
    pub section: SectionId,
    pub attempted_at: DateTime<Utc>,
    pub duration: Duration,
    pub result: Collected<Arc<dyn ErasedBody>>,
    /// When the body was true, if not now (pushed state).
    pub as_of: Option<Stamp>,
    /// How the section learns of change, as of this collection.
    pub refresh: Refresh,
    /// Fired once a snapshot holding this outcome is published.
    pub acks: Vec<oneshot::Sender<()>>,
    /// The new body's JSON and summary, made by the sender (see [`prepare`]).
    pub prepared: Option<Prepared>,
}

/// A new body serialized where it was collected, not on the store task:
/// however big a body, the store's own work per outcome stays a swap.
pub struct Prepared {
    json: Result<Bytes, String>,
    summary: String,
    pages: Option<Arc<crate::engine::snapshot::Pages>>,
}

impl Prepared {
    fn of(body: &dyn ErasedBody) -> Prepared {
        Prepared {
            json: body.to_json().map(Bytes::from).map_err(|e| e.to_string()),
            summary: body.summary(),
            pages: body.pages(),
        }
    }
}

/// What the store needs of a new body, made ahead (`None`: no new body).
pub fn prepare(result: &Collected<Arc<dyn ErasedBody>>) -> Option<Prepared> {
    match result {
        Ok(Update::New(b) | Update::Rejudged(b)) => Some(Prepared::of(b.as_ref())),
        _ => None,
    }
}

/// How long the store gathers outcomes into one render (pushes excepted).
const COALESCE: Duration = Duration::from_millis(25);

/// The read side, what the HTTP layer and subscribers hold: the published
/// snapshot and word of each new one. Nothing here can change the store.
#[derive(Clone)]
pub struct Snapshots {
    snapshot: Arc<ArcSwap<Snapshot>>,
    published: watch::Receiver<u64>,
}

impl Snapshots {
    /// The current snapshot: one atomic load.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// A receiver that changes each time a new snapshot is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.clone()
    }
}

/// The write side, what pollers and the daemon's wiring hold: outcomes and
/// reconfigurations in, to the one store task.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::UnboundedSender<Outcome>,
    ctl: mpsc::UnboundedSender<Reconfigure>,
    snapshots: Snapshots,
}

impl StoreWriter {
    /// Hands an outcome to the store. Never blocks.
    pub fn send(&self, outcome: Outcome) {
        // Fails only after the store task ended, at shutdown: nothing to do then.
        let _ = self.tx.send(outcome);
    }

    /// A reloaded config's schedules and rollup: bodies are kept, staleness
    /// and the verdict follow the new values from the next render.
    pub fn reconfigure(&self, schedules: Vec<(SectionId, Schedule)>, rollup: RollupConfig) {
        let _ = self.ctl.send(Reconfigure { schedules, rollup });
    }

    /// The read side of the same store.
    pub fn snapshots(&self) -> Snapshots {
        self.snapshots.clone()
    }
}

/// New schedules and rollup rules (a config reload).
pub struct Reconfigure {
    schedules: Vec<(SectionId, Schedule)>,
    rollup: RollupConfig,
}

/// The store task's state.
pub struct Store {
    states: Vec<SectionRecord>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    published: watch::Sender<u64>,
    generation: u64,
    rx: mpsc::UnboundedReceiver<Outcome>,
    ctl: mpsc::UnboundedReceiver<Reconfigure>,
    /// Acks to fire after the next publish.
    acks: Vec<oneshot::Sender<()>>,
    rollup: RollupConfig,
    /// Since when: reasons, verdict and section states across renders.
    tracker: crate::engine::transitions::Tracker,
}

impl Store {
    /// A store for these sections (id and schedule, in document order), and its handle.
    pub fn new(sections: Vec<(SectionId, Schedule)>, rollup: RollupConfig) -> (Store, StoreWriter) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ctl_tx, ctl) = mpsc::unbounded_channel();
        let (published, published_rx) = watch::channel(1);
        let states: Vec<SectionRecord> = sections
            .into_iter()
            .map(|(n, s)| SectionRecord::new(n, s))
            .collect();
        // The first snapshot: every section null and stale, not yet attempted.
        let mut tracker = crate::engine::transitions::Tracker::default();
        let first = render(&states, &rollup, 1, Instant::now(), None, &mut tracker);
        let snapshot = Arc::new(ArcSwap::from_pointee(first));
        let store = Store {
            states,
            snapshot: snapshot.clone(),
            published,
            generation: 1,
            rx,
            ctl,
            acks: Vec::new(),
            rollup,
            tracker,
        };
        let handle = StoreWriter {
            tx,
            ctl: ctl_tx,
            snapshots: Snapshots {
                snapshot,
                published: published_rx,
            },
        };
        (store, handle)
    }

    fn apply(&mut self, mut o: Outcome) {
        self.acks.append(&mut o.acks);
        let Some(s) = self.states.iter_mut().find(|s| s.id == o.section) else {
            return;
        };
        s.attempted_at = Some(o.attempted_at);
        s.duration = Some(o.duration);
        s.refresh = o.refresh;
        let (body, read) = match o.result {
            Err(e) => {
                s.error = Some(e);
                return;
            }
            // Nothing changed since the last body: it is confirmed as of now.
            Ok(Update::Same) if s.body.is_some() => {
                s.checked = Some(Stamp::now());
                s.error = None;
                return;
            }
            Ok(Update::Same) => {
                s.error = Some(CollectError::new("no data yet"));
                return;
            }
            Ok(Update::New(body)) => (body, true),
            Ok(Update::Rejudged(body)) => (body, false),
        };
        let prepared = o.prepared.unwrap_or_else(|| Prepared::of(body.as_ref()));
        match prepared.json {
            Ok(json) => s.body_json = Some(json),
            Err(e) => {
                s.error = Some(CollectError::new(format!("body not serializable: {e}")));
                return;
            }
        }
        s.summary = Some(prepared.summary);
        s.pages = prepared.pages;
        s.body = Some(body);
        let now = Stamp::now();
        if read || s.collected.is_none() {
            s.collected = Some(o.as_of.unwrap_or(now));
        }
        s.checked = Some(o.as_of.unwrap_or(now));
        s.error = None;
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        loop {
            let now = Instant::now();
            let deadline = self
                .states
                .iter()
                .filter_map(|s| s.stale_deadline(now))
                .min();
            let mut waiting = false;
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(m) => {
                        waiting = !m.acks.is_empty();
                        self.apply(m);
                    }
                    None => return,
                },
                _ = sleep_until_opt(deadline) => {}
                Some(r) = self.ctl.recv() => self.reconfigure(r),
            }
            // Sections ticking together (their intervals are multiples of
            // each other) land in one render: gather what arrives within
            // COALESCE, unless a push is waiting for its publish.
            let until = tokio::time::Instant::now() + COALESCE;
            loop {
                while let Ok(m) = self.rx.try_recv() {
                    waiting |= !m.acks.is_empty();
                    self.apply(m);
                }
                if waiting {
                    break;
                }
                match tokio::time::timeout_at(until, self.rx.recv()).await {
                    Ok(Some(m)) => {
                        waiting = !m.acks.is_empty();
                        self.apply(m);
                    }
                    _ => break,
                }
            }
            self.publish();
        }
    }

    fn reconfigure(&mut self, r: Reconfigure) {
        for (id, schedule) in r.schedules {
            if let Some(s) = self.states.iter_mut().find(|s| s.id == id) {
                s.schedule = schedule;
            }
        }
        self.rollup = r.rollup;
    }

    /// Renders the current state and swaps the new snapshot in.
    fn publish(&mut self) {
        self.generation += 1;
        let prev = self.snapshot.load_full();
        let snap = render(
            &self.states,
            &self.rollup,
            self.generation,
            Instant::now(),
            Some(&prev),
            &mut self.tracker,
        );
        self.snapshot.store(Arc::new(snap));
        self.published.send_replace(self.generation);
        for ack in self.acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
