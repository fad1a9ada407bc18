//! Rendering: the sections' state at one instant turned into a [`Snapshot`] —
//! the full document, each section alone, `/health`, `/metrics` and the event
//! stream's frame, serialized and compressed once.

use std::time::Instant;

use bytes::Bytes;

use crate::config::RollupConfig;
use crate::rollup::{self, Rollup};
use crate::sections::Health;
use crate::snapshot::{Rendered, Snapshot};
use crate::state::{Meta, SectionState};

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

/// `/status`: the verdict, each body under its name, then `meta`.
fn document(states: &[SectionState], rollup: &Rollup, now: Instant) -> Vec<u8> {
    let mut doc = Vec::with_capacity(4096);
    doc.push(b'{');
    push_key(&mut doc, "status");
    let _ = serde_json::to_writer(&mut doc, rollup.status.as_str());
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
        push_meta(&mut doc, s, now);
    }
    doc.extend_from_slice(b"}}");
    doc
}

/// `/status/{section}`: the body under its name, and its meta alone; the
/// previous rendering when its bytes did not change (no gzip, no hash).
fn one_section(s: &SectionState, now: Instant, prev: Option<&Rendered>) -> Rendered {
    let mut one = Vec::with_capacity(512);
    one.push(b'{');
    push_key(&mut one, s.id.name());
    push_body(&mut one, s);
    one.push(b',');
    push_key(&mut one, "meta");
    one.push(b'{');
    push_key(&mut one, s.id.name());
    push_meta(&mut one, s, now);
    one.extend_from_slice(b"}}");
    match prev {
        Some(p) if p.plain[..] == one[..] => p.clone(),
        _ => Rendered::new(one),
    }
}

/// `/health`: the verdict and what each section adds to it.
fn health(states: &[SectionState], rollup: &Rollup) -> Vec<u8> {
    let mut h = Health {
        status: rollup.status.as_str(),
        ..Health::default()
    };
    for body in states.iter().filter_map(|s| s.body.as_ref()) {
        body.health(&mut h);
    }
    serde_json::to_vec(&h).unwrap_or_default()
}

/// Renders every response body from the sections' state at `now`, reusing
/// the sections of `prev` whose bytes did not change.
pub fn render(
    states: &[SectionState],
    cfg: &RollupConfig,
    generation: u64,
    now: Instant,
    prev: Option<&Snapshot>,
) -> Snapshot {
    let rollup = rollup::compute(states, cfg, now);
    let doc = document(states, &rollup, now);
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
                (s.id, one_section(s, now, old))
            })
            .collect(),
        health: Bytes::from(health(states, &rollup)),
        health_code: rollup::http_status(cfg, rollup.status),
        health_public: Bytes::from(health_public),
        metrics: Bytes::from(crate::metrics::render(states, &rollup, now)),
        ready: states.iter().all(|s| s.attempted_at.is_some()),
        unknown_section: Bytes::from(unknown_section),
    }
}
