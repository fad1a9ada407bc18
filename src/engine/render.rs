//! Rendering: the sections' state at one instant turned into a [`Snapshot`] —
//! the full document, each section alone, `/health`, `/metrics` and the event
//! stream's frame, serialized and compressed once.

use std::time::Instant;

use bytes::Bytes;

use crate::config::RollupConfig;
use crate::engine::record::{Meta, SectionRecord};
use crate::engine::rollup::{self, Rollup};
use crate::engine::snapshot::{Rendered, Snapshot};
use crate::engine::transitions::Tracker;
use crate::sections::Health;

/// Writes `"name":` into `out`.
fn push_key(out: &mut Vec<u8>, name: &str) {
    // A &str always serializes.
    let _ = serde_json::to_writer(&mut *out, name);
    out.push(b':');
}

fn push_body(out: &mut Vec<u8>, s: &SectionRecord) {
    match &s.body_json {
        Some(b) => out.extend_from_slice(b),
        None => out.extend_from_slice(b"null"),
    }
}

fn push_meta(out: &mut Vec<u8>, s: &SectionRecord, now: Instant, t: &Tracker) {
    let _ = serde_json::to_writer(&mut *out, &Meta::of(s, now, t.section_since(s.id)));
}

/// `/status`: the verdict, each body under its name, then `meta`.
fn document(states: &[SectionRecord], rollup: &Rollup, now: Instant, t: &Tracker) -> Vec<u8> {
    let mut doc = Vec::with_capacity(4096);
    doc.push(b'{');
    push_key(&mut doc, "status");
    let _ = serde_json::to_writer(&mut doc, rollup.status.as_str());
    doc.push(b',');
    push_key(&mut doc, "status_since");
    let _ = serde_json::to_writer(&mut doc, &t.status_since());
    doc.push(b',');
    push_key(&mut doc, "reasons");
    let _ = serde_json::to_writer(&mut doc, &rollup.reasons);
    doc.push(b',');
    for s in states {
        push_key(&mut doc, s.id.name());
        push_body(&mut doc, s);
        doc.push(b',');
    }
    push_key(&mut doc, "meta");
    doc.push(b'{');
    for (i, s) in states.iter().enumerate() {
        if i > 0 {
            doc.push(b',');
        }
        push_key(&mut doc, s.id.name());
        push_meta(&mut doc, s, now, t);
    }
    doc.extend_from_slice(b"}}");
    doc
}

/// `/status/{section}`: the body under its name, and its meta alone; the
/// previous rendering when its bytes did not change (no gzip, no hash).
fn one_section(s: &SectionRecord, now: Instant, t: &Tracker, prev: Option<&Rendered>) -> Rendered {
    let mut one = Vec::with_capacity(512);
    one.push(b'{');
    push_key(&mut one, s.id.name());
    push_body(&mut one, s);
    one.push(b',');
    push_key(&mut one, "meta");
    one.push(b'{');
    push_key(&mut one, s.id.name());
    push_meta(&mut one, s, now, t);
    one.extend_from_slice(b"}}");
    match prev {
        Some(p) if p.plain[..] == one[..] => p.clone(),
        _ => Rendered::new(one),
    }
}

/// `/status/events` (made again only when something was added) and the
/// stream's `transition` events for the `added` newest, oldest first.
fn transitions(t: &Tracker, added: usize, prev: Option<&Snapshot>) -> (Bytes, Bytes) {
    let events = match prev {
        Some(p) if added == 0 => p.events.clone(),
        _ => {
            let all: Vec<_> = t.events().collect();
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({ "events": all })).unwrap_or_default(),
            )
        }
    };
    let mut sse = Vec::new();
    let new: Vec<_> = t.events().take(added).collect();
    for e in new.into_iter().rev() {
        sse.extend_from_slice(b"event: transition\ndata: ");
        let _ = serde_json::to_writer(&mut sse, e);
        sse.extend_from_slice(b"\n\n");
    }
    (events, Bytes::from(sse))
}

/// `/health`: the verdict and what each section adds to it.
fn health(states: &[SectionRecord], rollup: &Rollup) -> Vec<u8> {
    let mut h = Health {
        status: rollup.status.as_str(),
        ..Health::default()
    };
    for body in states.iter().filter_map(|s| s.body.as_ref()) {
        body.health(&mut h);
    }
    serde_json::to_vec(&h).unwrap_or_default()
}

/// What notifications read of this render.
fn alerts(rollup: &Rollup, tracker: &Tracker) -> crate::engine::snapshot::Alerts {
    crate::engine::snapshot::Alerts {
        verdict: Some(rollup.status),
        reasons: rollup
            .reasons
            .iter()
            .map(|r| (crate::engine::transitions::key(r), r.clone()))
            .collect(),
        flapping: tracker.flapping(),
    }
}

/// Renders every response body from the sections' state at `now`, reusing
/// the sections of `prev` whose bytes did not change.
pub fn render(
    states: &[SectionRecord],
    cfg: &RollupConfig,
    generation: u64,
    now: Instant,
    prev: Option<&Snapshot>,
    tracker: &mut Tracker,
) -> Snapshot {
    let mut rollup = rollup::compute(states, cfg, now);
    let section_states: Vec<_> = states.iter().map(|s| (s.id, s.state(now))).collect();
    let added = tracker.observe(&mut rollup, &section_states, chrono::Utc::now(), now);
    let (events, sse_transitions) = transitions(tracker, added, prev);
    let tracker = &*tracker;
    let doc = document(states, &rollup, now, tracker);
    let alerts = alerts(&rollup, tracker);
    let health_public =
        serde_json::to_vec(&serde_json::json!({ "status": rollup.status })).unwrap_or_default();
    let names: Vec<&str> = states.iter().map(|s| s.id.name()).collect();
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
        sections: states
            .iter()
            .map(|s| {
                let old = prev.and_then(|p| p.section(s.id.name()));
                (s.id, one_section(s, now, tracker, old))
            })
            .collect(),
        health: Bytes::from(health(states, &rollup)),
        health_code: rollup::http_status(cfg, rollup.status),
        health_public: Bytes::from(health_public),
        metrics: Bytes::from(crate::engine::metrics::render(states, &rollup, now)),
        ready: states.iter().all(|s| s.attempted_at.is_some()),
        events,
        sse_transitions,
        unknown_section: Bytes::from(unknown_section),
        pages: states
            .iter()
            .filter_map(|s| Some((s.id, s.pages.clone()?)))
            .collect(),
        alerts: std::sync::Arc::new(alerts),
    }
}
