//! `/metrics`: the Prometheus text exposition (prometheus-client), rendered
//! once per snapshot from the same state as `/status`.
//!
//! The families every section has — `pynchy_status_section_duration_seconds`,
//! `_success`, `_last_success_timestamp_seconds`, `_stale` — and the verdict
//! are written here; then each section's body writes its own families.

use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;

use crate::engine::record::SectionRecord;
use crate::engine::rollup::Rollup;
use crate::sections::prom::{family, flag, gauge};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    section: String,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SectionLabel {
    section: String,
}

/// One family with a value per section, where `value` has one.
fn per_section(
    reg: &mut Registry,
    states: &[SectionRecord],
    name: &str,
    help: &str,
    value: impl Fn(&SectionRecord) -> Option<f64>,
) {
    let values = states
        .iter()
        .filter_map(|s| {
            let label = SectionLabel {
                section: s.id.name().to_string(),
            };
            Some((label, value(s)?))
        })
        .collect();
    family(reg, name, help, values);
}

/// The verdict, the number of reasons, and since when each holds.
fn verdict(reg: &mut Registry, rollup: &Rollup) {
    gauge(
        reg,
        "pynchy_status_rollup",
        "The rollup: 0 ok, 1 degraded, 2 down",
        f64::from(rollup.status.code()),
    );
    gauge(
        reg,
        "pynchy_status_reasons",
        "How many reasons the rollup gives",
        rollup.reasons.len() as f64,
    );
    reason_since(reg, rollup);
}

/// `pynchy_status_reason_since_timestamp_seconds{section,rule}`: since when
/// each active (section, rule) holds, from its oldest reason.
fn reason_since(reg: &mut Registry, rollup: &Rollup) {
    let mut since: std::collections::BTreeMap<(String, String), f64> = Default::default();
    for r in &rollup.reasons {
        let Some(t) = r
            .since
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        else {
            continue;
        };
        let secs = t.timestamp_millis() as f64 / 1000.0;
        let slot = since
            .entry((r.section.clone(), r.rule.clone()))
            .or_insert(secs);
        *slot = slot.min(secs);
    }
    let values = since
        .into_iter()
        .map(|((section, rule), v)| (ReasonLabel { section, rule }, v))
        .collect();
    family(
        reg,
        "pynchy_status_reason_since_timestamp_seconds",
        "Unix time since which each active reason's condition holds, by section and rule",
        values,
    );
}

/// The exposition text for this state.
pub fn render(states: &[SectionRecord], rollup: &Rollup, now: Instant) -> String {
    let mut reg = Registry::default();
    per_section(
        &mut reg,
        states,
        "pynchy_status_section_duration_seconds",
        "How long the section's last collection attempt took",
        |s| s.duration.map(|d| d.as_secs_f64()),
    );
    per_section(
        &mut reg,
        states,
        "pynchy_status_section_success",
        "1 if the section's last collection attempt succeeded",
        |s| s.attempted_at.map(|_| flag(s.error.is_none())),
    );
    per_section(
        &mut reg,
        states,
        "pynchy_status_section_last_success_timestamp_seconds",
        "Unix time of the section's last successful collection",
        |s| {
            s.collected_at()
                .map(|t| t.timestamp_millis() as f64 / 1000.0)
        },
    );
    per_section(
        &mut reg,
        states,
        "pynchy_status_section_stale",
        "1 if the section's last good data is older than its stale_after",
        |s| Some(flag(s.is_stale(now))),
    );
    per_section(
        &mut reg,
        states,
        "pynchy_status_section_event_driven",
        "1 if the section follows events, 0 if it reads its source every interval (events off, or its watches could not be set)",
        |s| Some(flag(s.refresh == crate::sections::Refresh::Event)),
    );
    verdict(&mut reg, rollup);
    for body in states.iter().filter_map(|s| s.body.as_ref()) {
        body.metrics(&mut reg);
    }
    let mut out = String::with_capacity(4096);
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}
