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
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::rollup::{Rollup, RollupConfig};
use crate::sections::{CollectError, Schedule, Stamp};
use crate::snapshot::{Rendered, Snapshot};

/// The result of one collection attempt (or one push), as the store receives it.
#[derive(Debug)]
pub struct Outcome {
    /// Index of the section in document order.
    pub section: usize,
    pub attempted_at: DateTime<Utc>,
    pub duration: Duration,
    pub result: Result<Value, CollectError>,
    /// When the body was true, if not now (pushed state).
    pub as_of: Option<Stamp>,
    /// Fired once a snapshot holding this outcome is published.
    pub acks: Vec<oneshot::Sender<()>>,
}

/// What the store knows about one section.
#[derive(Debug, Clone)]
pub struct SectionState {
    pub name: &'static str,
    pub schedule: Schedule,
    /// The last good body (kept through later errors).
    pub body: Option<Value>,
    /// `body` serialized once, when it arrived.
    body_json: Option<Bytes>,
    /// When the last good body was true.
    pub collected: Option<Stamp>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub duration: Option<Duration>,
    pub error: Option<CollectError>,
}

impl SectionState {
    fn new(name: &'static str, schedule: Schedule) -> Self {
        SectionState {
            name,
            schedule,
            body: None,
            body_json: None,
            collected: None,
            attempted_at: None,
            duration: None,
            error: None,
        }
    }

    /// Wall-clock time of the last good body.
    pub fn collected_at(&self) -> Option<DateTime<Utc>> {
        self.collected.map(|c| c.at)
    }

    /// True when there is no good body, or the last one is older than `stale_after`.
    pub fn is_stale(&self, now: Instant) -> bool {
        match self.collected {
            None => true,
            Some(c) => now.saturating_duration_since(c.instant) >= self.schedule.stale_after,
        }
    }

    /// When this section turns stale, if it is fresh now.
    fn stale_deadline(&self, now: Instant) -> Option<Instant> {
        let t = self.collected?.instant + self.schedule.stale_after;
        (t > now).then_some(t)
    }
}

/// The meta entry of one section, as served.
#[derive(Serialize)]
struct Meta<'a> {
    collected_at: Option<String>,
    attempted_at: Option<String>,
    duration_ms: Option<f64>,
    interval_seconds: f64,
    stale: bool,
    error: Option<&'a str>,
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl<'a> Meta<'a> {
    fn of(s: &'a SectionState, now: Instant) -> Self {
        Meta {
            collected_at: s.collected_at().as_ref().map(rfc3339),
            attempted_at: s.attempted_at.as_ref().map(rfc3339),
            duration_ms: s
                .duration
                .map(|d| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0),
            interval_seconds: s.schedule.interval.as_secs_f64(),
            stale: s.is_stale(now),
            error: s.error.as_ref().map(|e| e.message.as_str()),
        }
    }
}

/// The handle pollers, the HTTP layer and subscribers hold.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::UnboundedSender<Outcome>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    changes: watch::Receiver<u64>,
}

impl StoreHandle {
    /// Hands an outcome to the store. Never blocks.
    pub fn send(&self, outcome: Outcome) {
        // Fails only after the store task ended, at shutdown: nothing to do then.
        let _ = self.tx.send(outcome);
    }

    /// The current snapshot: one atomic load.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// A receiver that changes each time a new snapshot is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

/// The store task's state.
pub struct Store {
    states: Vec<SectionState>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    changes: watch::Sender<u64>,
    generation: u64,
    rx: mpsc::UnboundedReceiver<Outcome>,
    /// Acks to fire after the next publish.
    acks: Vec<oneshot::Sender<()>>,
    rollup: RollupConfig,
}

impl Store {
    /// A store for these sections (name and schedule, in document order), and its handle.
    pub fn new(
        sections: Vec<(&'static str, Schedule)>,
        rollup: RollupConfig,
    ) -> (Store, StoreHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (changes, changes_rx) = watch::channel(1);
        let states: Vec<SectionState> = sections
            .into_iter()
            .map(|(n, s)| SectionState::new(n, s))
            .collect();
        // The first snapshot: every section null and stale, not yet attempted.
        let first = render(&states, &rollup, 1, Instant::now());
        let snapshot = Arc::new(ArcSwap::from_pointee(first));
        let store = Store {
            states,
            snapshot: snapshot.clone(),
            changes,
            generation: 1,
            rx,
            acks: Vec::new(),
            rollup,
        };
        let handle = StoreHandle {
            tx,
            snapshot,
            changes: changes_rx,
        };
        (store, handle)
    }

    fn apply(&mut self, mut o: Outcome) {
        self.acks.append(&mut o.acks);
        let Some(s) = self.states.get_mut(o.section) else {
            return;
        };
        s.attempted_at = Some(o.attempted_at);
        s.duration = Some(o.duration);
        match o.result {
            Ok(body) => {
                s.body_json = serde_json::to_vec(&body).ok().map(Bytes::from);
                s.body = Some(body);
                s.collected = Some(o.as_of.unwrap_or_else(Stamp::now));
                s.error = None;
            }
            Err(e) => s.error = Some(e),
        }
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
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(m) => self.apply(m),
                    None => return,
                },
                _ = sleep_until_opt(deadline) => {}
            }
            // Batch whatever else is already queued into the same render.
            while let Ok(m) = self.rx.try_recv() {
                self.apply(m);
            }
            self.publish();
        }
    }

    /// Renders the current state and swaps the new snapshot in.
    fn publish(&mut self) {
        self.generation += 1;
        let snap = render(&self.states, &self.rollup, self.generation, Instant::now());
        self.snapshot.store(Arc::new(snap));
        self.changes.send_replace(self.generation);
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

/// Writes `"name":` into `out`.
fn push_key(out: &mut Vec<u8>, name: &str) {
    // A &str always serializes.
    let _ = serde_json::to_writer(&mut *out, name);
    out.push(b':');
}

fn push_body(out: &mut Vec<u8>, s: &SectionState) {
    match &s.body_json {
        Some(b) => out.extend_from_slice(b),
        None => out.extend_from_slice(b"null"),
    }
}

fn push_meta(out: &mut Vec<u8>, s: &SectionState, now: Instant) {
    let _ = serde_json::to_writer(&mut *out, &Meta::of(s, now));
}

/// Renders every response body from the sections' state at `now`.
pub fn render(
    states: &[SectionState],
    rollup_cfg: &RollupConfig,
    generation: u64,
    now: Instant,
) -> Snapshot {
    let rollup = crate::rollup::compute(states, rollup_cfg, now);
    // The full document: the verdict, each body under its name, then `meta`.
    let mut doc = Vec::with_capacity(4096);
    doc.push(b'{');
    push_key(&mut doc, "status");
    let _ = serde_json::to_writer(&mut doc, rollup.status.as_str());
    doc.push(b',');
    push_key(&mut doc, "reasons");
    let _ = serde_json::to_writer(&mut doc, &rollup.reasons);
    doc.push(b',');
    for s in states {
        push_key(&mut doc, s.name);
        push_body(&mut doc, s);
        doc.push(b',');
    }
    push_key(&mut doc, "meta");
    doc.push(b'{');
    for (i, s) in states.iter().enumerate() {
        if i > 0 {
            doc.push(b',');
        }
        push_key(&mut doc, s.name);
        push_meta(&mut doc, s, now);
    }
    doc.extend_from_slice(b"}}");

    let sections = states
        .iter()
        .map(|s| {
            let mut one = Vec::with_capacity(512);
            one.push(b'{');
            push_key(&mut one, s.name);
            push_body(&mut one, s);
            one.push(b',');
            push_key(&mut one, "meta");
            one.push(b'{');
            push_key(&mut one, s.name);
            push_meta(&mut one, s, now);
            one.extend_from_slice(b"}}");
            (s.name, Rendered::new(one))
        })
        .collect();

    let health = render_health(states, &rollup);
    let health_code = rollup_cfg.http_status(rollup.status);
    let health_public =
        serde_json::to_vec(&serde_json::json!({ "status": rollup.status })).unwrap_or_default();
    let metrics = crate::metrics::render(states, &rollup, now);
    let names: Vec<&str> = states.iter().map(|s| s.name).collect();
    let unknown_section = serde_json::to_vec(&serde_json::json!({
        "error": "unknown section",
        "known": names,
    }))
    .unwrap_or_default();

    let mut sse = Vec::with_capacity(doc.len() + 32);
    sse.extend_from_slice(b"event: status\ndata: ");
    sse.extend_from_slice(&doc);
    sse.extend_from_slice(b"\n\n");
    Snapshot {
        generation,
        sse: Bytes::from(sse),
        status: Rendered::new(doc),
        sections,
        health: Rendered::new(health),
        health_code,
        health_public: Rendered::new(health_public),
        metrics: Bytes::from(metrics),
        ready: states.iter().all(|s| s.attempted_at.is_some()),
        unknown_section: Bytes::from(unknown_section),
    }
}

fn body<'a>(states: &'a [SectionState], name: &str) -> Option<&'a Value> {
    states.iter().find(|s| s.name == name)?.body.as_ref()
}

fn field(states: &[SectionState], section: &str, key: &str) -> Value {
    body(states, section)
        .and_then(|b| b.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

/// `/health`: the rollup's status and the seed's lightweight fields, all read
/// from the bodies at hand.
fn render_health(states: &[SectionState], rollup: &Rollup) -> Vec<u8> {
    let channels_connected = body(states, "channels")
        .and_then(Value::as_object)
        .map(|chans| {
            Value::Bool(
                chans
                    .values()
                    .all(|c| c.get("connected").and_then(Value::as_bool).unwrap_or(false)),
            )
        })
        .unwrap_or(Value::Null);
    let health = serde_json::json!({
        "status": rollup.status,
        "uptime_seconds": field(states, "service", "uptime_seconds"),
        "head_sha": field(states, "deploy", "head_sha"),
        "head_commit": field(states, "deploy", "head_commit"),
        "dirty": field(states, "deploy", "dirty"),
        "channels_connected": channels_connected,
    });
    serde_json::to_vec(&health).unwrap_or_default()
}
