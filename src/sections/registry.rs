//! The one registration: [`entry`], an exhaustive `match` from a
//! [`SectionId`] to its section's type, and what is derived from it.

use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::context::Context;
use crate::section_id::SectionId;

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
