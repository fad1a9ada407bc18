//! Pushes: what only pynchy's memory holds — is it shutting down, each
//! channel, its container queue, its live sessions — handed over by a
//! patched pynchy (no released pynchy pushes: the sections observe it
//! without, and a push refines them while fresh).
//!
//! [`PushSource`] mirrors what pynchy's own status code asks its process
//! for. [`PushStore`] is the implementation fed over HTTP, by pushes (`PUT
//! /push/{section}`) or by pulling `[push] pull_url`; a Rust host embedding
//! pynchy-status can implement the trait itself and answer from its own
//! memory. Every value carries the [`Stamp`] of when it was true.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::section_id::SectionId;
use crate::stamp::Stamp;

/// pynchy's own status, as pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushedStatus {
    Ok,
    ShuttingDown,
}

/// A time as pynchy sent it: kept verbatim (served back exactly), and read
/// as RFC 3339 or, without an offset, as UTC (Python's naive `isoformat()`).
#[derive(Debug, Clone, PartialEq)]
pub struct PushedTime {
    pub raw: String,
    pub at: DateTime<Utc>,
}

impl Serialize for PushedTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

/// In the schema: a string in ISO 8601 (served back as pynchy sent it).
impl schemars::JsonSchema for PushedTime {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PushedTime".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "an ISO 8601 time, as pynchy sent it"
        })
    }
}

impl<'de> Deserialize<'de> for PushedTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match crate::stamp::parse_time(&raw) {
            Some(at) => Ok(PushedTime { raw, at }),
            None => Err(serde::de::Error::custom(format!(
                "`{raw}` is not an ISO 8601 time like 2026-01-01T00:00:00+00:00"
            ))),
        }
    }
}

/// `service`: pynchy's status (`ok` or `shutting_down`) and when it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceState {
    pub status: PushedStatus,
    pub started_at: PushedTime,
}

/// One channel in `channels`: pushed as an object with a bool `connected`, or
/// as a bare bool (what pynchy's own `get_channel_status()` returns); served as
/// the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ChannelState {
    pub connected: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelObject {
    connected: bool,
}

impl<'de> Deserialize<'de> for ChannelState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ChannelState;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false, or an object with a bool `connected`")
            }
            fn visit_bool<E>(self, connected: bool) -> Result<ChannelState, E> {
                Ok(ChannelState { connected })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ChannelState, A::Error> {
                let o =
                    ChannelObject::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ChannelState {
                    connected: o.connected,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `channels`: each channel's name and whether it is connected.
pub type Channels = BTreeMap<String, ChannelState>;

/// One group in `queue.per_group` (the default: nothing running or pending).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupQueue {
    pub active: bool,
    pub is_task: bool,
    pub pending_messages: bool,
    pub pending_tasks: u64,
}

/// `queue`: pynchy's container queue, as its queue reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueState {
    pub active_containers: u64,
    pub max_concurrent: u64,
    pub groups_waiting: u64,
    pub per_group: BTreeMap<String, GroupQueue>,
}

/// `groups`: pynchy's live session count (merged with `total` from the database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupsState {
    pub active_sessions: u64,
}

/// A value and when it was true.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped<T> {
    pub value: T,
    pub stamp: Stamp,
}

/// What the pynchy host knows about itself. `None`: not known (yet).
pub trait PushSource: Send + Sync + 'static {
    /// Shutting down or not, and since when pynchy runs.
    fn service(&self) -> Option<Stamped<ServiceState>>;
    /// Channel name → connected.
    fn channels(&self) -> Option<Stamped<Channels>>;
    /// The container queue.
    fn queue(&self) -> Option<Stamped<QueueState>>;
    /// Groups with a live agent session.
    fn active_sessions(&self) -> Option<Stamped<u64>>;
}

/// The sections that can be pushed.
pub const PUSHABLE: [SectionId; 4] = [
    SectionId::Service,
    SectionId::Channels,
    SectionId::Queue,
    SectionId::Groups,
];

/// The pushable section called `name`.
pub fn pushable(name: &str) -> Option<SectionId> {
    PUSHABLE.into_iter().find(|s| s.name() == name)
}

/// Why a pushed body was refused. The text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("unknown section `{0}`; pushable: {list}", list = PUSHABLE.map(SectionId::name).join(", "))]
    UnknownSection(String),
    #[error("{0}")]
    Invalid(String),
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, PushError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return PushError::Invalid(format!("invalid body: not JSON ({inner})"));
        }
        PushError::Invalid(if path.is_empty() || path == "." || path == "?" {
            format!("invalid body: {inner}")
        } else {
            format!("invalid field `{path}`: {inner}")
        })
    })?;
    // Validated whole: nothing may follow the value but white space.
    de.end().map_err(|e| {
        PushError::Invalid(format!("invalid body: data after the JSON value ({e})"))
    })?;
    Ok(value)
}

/// Host state held in memory, written by pushes or pulls. Each section is
/// replaced whole, atomically: readers never see a mix of two pushes.
#[derive(Default)]
pub struct PushStore {
    service: ArcSwapOption<Stamped<ServiceState>>,
    channels: ArcSwapOption<Stamped<Channels>>,
    queue: ArcSwapOption<Stamped<QueueState>>,
    groups: ArcSwapOption<Stamped<GroupsState>>,
}

impl PushStore {
    pub fn new() -> Arc<PushStore> {
        Arc::new(PushStore::default())
    }

    /// Validates a pushed JSON body for `section` and, only if it is whole and
    /// right, replaces that section's value. On error nothing changes.
    pub fn push(&self, section: SectionId, body: &[u8], stamp: Stamp) -> Result<(), PushError> {
        match section {
            SectionId::Service => self.service.store(Some(Arc::new(Stamped {
                value: parse::<ServiceState>(body)?,
                stamp,
            }))),
            SectionId::Channels => self.channels.store(Some(Arc::new(Stamped {
                value: parse::<Channels>(body)?,
                stamp,
            }))),
            SectionId::Queue => self.queue.store(Some(Arc::new(Stamped {
                value: parse::<QueueState>(body)?,
                stamp,
            }))),
            SectionId::Groups => self.groups.store(Some(Arc::new(Stamped {
                value: parse::<GroupsState>(body)?,
                stamp,
            }))),
            other => return Err(PushError::UnknownSection(other.name().to_string())),
        }
        Ok(())
    }

    /// Applies a pulled document holding any of the pushable sections. Each
    /// present section is validated alone; returns the sections accepted and
    /// the errors of the others.
    pub fn push_document(
        &self,
        doc: &[u8],
        stamp: Stamp,
    ) -> Result<(Vec<SectionId>, Vec<String>), PushError> {
        let value: serde_json::Map<String, serde_json::Value> = parse(doc)?;
        let (mut ok, mut errors) = (Vec::new(), Vec::new());
        for id in PUSHABLE {
            if let Some(v) = value.get(id.name()) {
                let bytes = serde_json::to_vec(v).unwrap_or_default();
                match self.push(id, &bytes, stamp) {
                    Ok(()) => ok.push(id),
                    Err(e) => errors.push(format!("{id}: {e}")),
                }
            }
        }
        Ok((ok, errors))
    }
}

/// Pulls `url` every `interval` (loopback or the host's own address), applying
/// each document like pushes; `on_accept` is told which sections changed.
/// Runs until the task is dropped.
pub async fn pull_loop<F, Fut>(
    url: String,
    memory: Arc<PushStore>,
    interval: std::time::Duration,
    limit: u64,
    on_accept: F,
) where
    F: Fn(Vec<SectionId>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let client = match crate::client::outbound() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client: pulling is off");
            return;
        }
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut too_large = false;
    loop {
        ticker.tick().await;
        let body = fetch(&client, &url, interval, limit, &mut too_large).await;
        let Some(body) = body else { continue };
        match memory.push_document(&body, Stamp::now()) {
            Ok((accepted, errors)) => {
                for e in errors {
                    tracing::warn!(error = %e, "pulled section refused");
                }
                on_accept(accepted).await;
            }
            Err(e) => tracing::warn!(error = %e, "pulled document refused"),
        }
    }
}

/// One pull: the document, or `None` (logged at debug; an answer over
/// `limit` at warn, once per run of them, tracked in `too_large`).
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    interval: std::time::Duration,
    limit: u64,
    too_large: &mut bool,
) -> Option<bytes::Bytes> {
    let answer = client
        .get(url)
        .timeout(interval.max(std::time::Duration::from_secs(1)))
        .send()
        .await;
    let resp = match answer {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            tracing::debug!(status = r.status().as_u16(), "pull answered with an error");
            return None;
        }
        Err(e) => {
            tracing::debug!(error = %e.without_url(), "pull failed");
            return None;
        }
    };
    match crate::client::read_capped(resp, limit).await {
        Ok(b) => {
            *too_large = false;
            Some(b)
        }
        Err(e @ crate::client::ReadError::TooLarge { .. }) => {
            if !*too_large {
                tracing::warn!(error = %e, "pulled document refused: [limits] pull_body");
            }
            *too_large = true;
            None
        }
        Err(crate::client::ReadError::Transport(e)) => {
            tracing::debug!(error = %e.without_url(), "pull body could not be read");
            None
        }
    }
}

fn cloned<T: Clone>(v: &ArcSwapOption<Stamped<T>>) -> Option<Stamped<T>> {
    v.load_full().map(|s| (*s).clone())
}

impl PushSource for PushStore {
    fn service(&self) -> Option<Stamped<ServiceState>> {
        cloned(&self.service)
    }
    fn channels(&self) -> Option<Stamped<Channels>> {
        cloned(&self.channels)
    }
    fn queue(&self) -> Option<Stamped<QueueState>> {
        cloned(&self.queue)
    }
    fn active_sessions(&self) -> Option<Stamped<u64>> {
        self.groups.load_full().map(|s| Stamped {
            value: s.value.active_sessions,
            stamp: s.stamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_change_nothing() {
        let m = PushStore::default();
        let good = br#"{"active_containers":1,"max_concurrent":4,"groups_waiting":0,"per_group":{"admin":{"active":true,"is_task":false,"pending_messages":true,"pending_tasks":0}}}"#;
        m.push(SectionId::Queue, good, Stamp::now()).unwrap();
        let before = m.queue();
        let bad = br#"{"active_containers":1,"max_concurrent":4,"groups_waiting":0,"per_group":{"admin":{"active":"yes","is_task":false,"pending_messages":true,"pending_tasks":0}}}"#;
        let e = m
            .push(SectionId::Queue, bad, Stamp::now())
            .unwrap_err()
            .to_string();
        assert!(e.contains("per_group.admin.active"), "{e}");
        let e = m
            .push(
                SectionId::Channels,
                br#"{"slack":{"connected":true,"extra":1}}"#,
                Stamp::now(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
        assert_eq!(m.queue(), before);
        assert!(m.channels().is_none());
        assert!(matches!(
            m.push(SectionId::Extra("weather"), b"{}", Stamp::now()),
            Err(PushError::UnknownSection(_))
        ));
        // Two values, or trailing garbage: refused, nothing changes.
        let started = br#"{"status":"ok","started_at":"2026-01-01T00:00:00Z"}"#;
        for body in [
            [&started[..], &started[..]].concat(),
            [&started[..], b" trailing"].concat(),
        ] {
            let e = m.push(SectionId::Service, &body, Stamp::now()).unwrap_err();
            assert!(e.to_string().contains("after the JSON value"), "{e}");
        }
        assert!(m.service().is_none());
    }
}
