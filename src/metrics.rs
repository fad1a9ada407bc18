//! `/metrics`: the Prometheus text exposition (prometheus-client), rendered
//! once per snapshot from the same state as `/status`.
//!
//! Per section: `pynchy_status_section_duration_seconds`,
//! `pynchy_status_section_success`, `pynchy_status_section_last_success_timestamp_seconds`,
//! `pynchy_status_section_stale`. Then the numbers people alert on.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::rollup::Rollup;
use crate::store::SectionState;

type G = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SectionLabel {
    section: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabel {
    role: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabel {
    health: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepoLabel {
    repo: String,
}

fn gauge(reg: &mut Registry, name: &str, help: &str, value: f64) {
    let g = G::default();
    g.set(value);
    reg.register(name, help, g);
}

fn family<L>(reg: &mut Registry, name: &str, help: &str, values: Vec<(L, f64)>)
where
    L: Clone + std::fmt::Debug + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static,
{
    let f = Family::<L, G>::default();
    for (labels, v) in values {
        f.get_or_create(&labels).set(v);
    }
    reg.register(name, help, f);
}

fn body<'a>(states: &'a [SectionState], name: &str) -> Option<&'a Value> {
    states.iter().find(|s| s.name == name)?.body.as_ref()
}

fn num(v: Option<&Value>, key: &str) -> Option<f64> {
    v?.get(key)?.as_f64()
}

fn count_where(v: Option<&Value>, key: &str) -> f64 {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|i| i.get(key) == Some(&Value::Bool(true)))
                .count()
        })
        .unwrap_or(0) as f64
}

/// The exposition text for this state.
pub fn render(states: &[SectionState], rollup: &Rollup, now: Instant) -> String {
    let mut reg = Registry::default();
    let label = |s: &SectionState| SectionLabel {
        section: s.name.to_string(),
    };
    family(
        &mut reg,
        "pynchy_status_section_duration_seconds",
        "How long the section's last collection attempt took",
        states
            .iter()
            .filter_map(|s| s.duration.map(|d| (label(s), d.as_secs_f64())))
            .collect(),
    );
    family(
        &mut reg,
        "pynchy_status_section_success",
        "1 if the section's last collection attempt succeeded",
        states
            .iter()
            .filter(|s| s.attempted_at.is_some())
            .map(|s| (label(s), if s.error.is_none() { 1.0 } else { 0.0 }))
            .collect(),
    );
    family(
        &mut reg,
        "pynchy_status_section_last_success_timestamp_seconds",
        "Unix time of the section's last successful collection",
        states
            .iter()
            .filter_map(|s| {
                s.collected_at()
                    .map(|t| (label(s), t.timestamp_millis() as f64 / 1000.0))
            })
            .collect(),
    );
    family(
        &mut reg,
        "pynchy_status_section_stale",
        "1 if the section's last good data is older than its stale_after",
        states
            .iter()
            .map(|s| (label(s), if s.is_stale(now) { 1.0 } else { 0.0 }))
            .collect(),
    );
    gauge(
        &mut reg,
        "pynchy_status_rollup",
        "The rollup: 0 ok, 1 degraded, 2 down",
        f64::from(rollup.status.code()),
    );
    gauge(
        &mut reg,
        "pynchy_status_reasons",
        "How many reasons the rollup gives",
        rollup.reasons.len() as f64,
    );

    let messages = body(states, "messages");
    for (name, key, help) in [
        (
            "pynchy_messages_inbound",
            "total_inbound",
            "Inbound messages in pynchy's database",
        ),
        (
            "pynchy_messages_outbound",
            "total_outbound",
            "Outbound messages in pynchy's ledger",
        ),
        (
            "pynchy_messages_pending_deliveries",
            "pending_deliveries",
            "Deliveries not yet delivered",
        ),
    ] {
        if let Some(v) = num(messages, key) {
            gauge(&mut reg, name, help, v);
        }
    }

    if let Some(gw) = body(states, "gateway").filter(|g| g.get("mode") == Some(&"litellm".into())) {
        let containers: Vec<(ContainerLabel, f64)> = [
            ("litellm", "litellm_container"),
            ("postgres", "postgres_container"),
        ]
        .iter()
        .filter_map(|(role, key)| {
            let state = gw.get(*key)?.as_str()?;
            (state != "unreachable").then(|| {
                (
                    ContainerLabel {
                        role: role.to_string(),
                        state: state.to_string(),
                    },
                    if state == "running" { 1.0 } else { 0.0 },
                )
            })
        })
        .collect();
        family(
            &mut reg,
            "pynchy_gateway_container_running",
            "1 if the gateway container is running (label state: Docker's State.Status)",
            containers,
        );
        let models: Vec<(HealthLabel, f64)> = [
            ("healthy", "healthy_models"),
            ("unhealthy", "unhealthy_models"),
        ]
        .iter()
        .filter_map(|(h, key)| {
            Some((
                HealthLabel {
                    health: h.to_string(),
                },
                num(Some(gw), key)?,
            ))
        })
        .collect();
        family(
            &mut reg,
            "pynchy_gateway_models",
            "Model endpoints by health, as LiteLLM reports",
            models,
        );
    }

    let queue = body(states, "queue");
    for (name, key, help) in [
        (
            "pynchy_queue_active_containers",
            "active_containers",
            "Agent containers running",
        ),
        (
            "pynchy_queue_max_concurrent",
            "max_concurrent",
            "The queue's concurrency limit",
        ),
        (
            "pynchy_queue_groups_waiting",
            "groups_waiting",
            "Groups waiting for a container",
        ),
    ] {
        if let Some(v) = num(queue, key) {
            gauge(&mut reg, name, help, v);
        }
    }

    gauge(
        &mut reg,
        "pynchy_tasks_overdue",
        "Scheduled tasks overdue",
        count_where(body(states, "tasks"), "overdue"),
    );
    gauge(
        &mut reg,
        "pynchy_host_jobs_overdue",
        "Enabled host jobs overdue",
        count_where(body(states, "host_jobs"), "overdue"),
    );

    if let Some(repos) = body(states, "repos").and_then(Value::as_object) {
        let label = |slug: &String| RepoLabel { repo: slug.clone() };
        family(
            &mut reg,
            "pynchy_repo_dirty",
            "1 if the repo's main checkout has uncommitted changes",
            repos
                .iter()
                .filter_map(|(slug, r)| {
                    Some((
                        label(slug),
                        if r.get("dirty")?.as_bool()? { 1.0 } else { 0.0 },
                    ))
                })
                .collect(),
        );
        family(
            &mut reg,
            "pynchy_worktrees_in_conflict",
            "Worktrees of the repo with a merge, rebase, cherry-pick or revert in conflict",
            repos
                .iter()
                .map(|(slug, r)| {
                    let n = r
                        .get("worktrees")
                        .and_then(Value::as_object)
                        .map(|w| {
                            w.values()
                                .filter(|w| w.get("conflict") == Some(&Value::Bool(true)))
                                .count()
                        })
                        .unwrap_or(0);
                    (label(slug), n as f64)
                })
                .collect(),
        );
    }

    if let Some(chans) = body(states, "channels").and_then(Value::as_object) {
        family(
            &mut reg,
            "pynchy_channel_connected",
            "1 if the chat channel is connected",
            chans
                .iter()
                .map(|(name, c)| {
                    (
                        ChannelLabel {
                            channel: name.clone(),
                        },
                        if c.get("connected") == Some(&Value::Bool(true)) {
                            1.0
                        } else {
                            0.0
                        },
                    )
                })
                .collect(),
        );
    }

    let mut out = String::with_capacity(4096);
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}
