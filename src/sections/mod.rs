//! Sections: the parts of the status document, one file each.
//!
//! A section's file holds its whole story: what it collects (by asking the
//! sources), the typed body it serves, when that body is a problem (its
//! [`Rule`]s and the [`Finding`]s it raises), what it exports to Prometheus,
//! what it adds to `/health`, and its one-line summary for `check` and the
//! dashboard. Nothing outside this folder reads a body's fields.
//!
//! The poller runs a section's [`Section::collect`]; the store keeps the body
//! it returns, type-erased as an [`ErasedBody`], until the snapshot is rendered.
//!
//! Adding a section: a new file here, its line in `section_ids!` (the
//! [`SectionId`] variant and its name), and its arm in [`entry`] — the one
//! registration, an exhaustive `match` that the compiler holds to every
//! variant. What the rest of the daemon must know of it (its rules, that it
//! reads pynchy's database, the pushes its collection reads, its default
//! schedule) are associated items of its [`Builtin`] impl.
//!
//! Beside the section files, the contract they implement, one idea a file:
//! - `contract`: [`Section`] (what the poller runs), [`Builtin`] (what the
//!   daemon knows of a built-in one), [`Body`] (what a body means: rules and
//!   findings, metrics, `/health`, summary, pages).
//! - `work`: one collection — the [`Work`] handed to the poller, the
//!   [`Update`] it found, the [`CollectError`] it failed with.
//! - `schedule`: when a section runs ([`Schedule`]) and how it learns of
//!   change ([`Refresh`]).
//! - `registry`: the one registration ([`entry`]) and what derives from it.
//! - `support`: helpers the section files share (gated reads, pynchy's
//!   database, pushed state and its freshness).

pub mod channels;
pub mod deploy;
pub mod gateway;
pub mod groups;
pub mod host_jobs;
pub mod llm;
mod llm_body;
pub mod llm_read;
pub mod llm_window;
pub mod mcp;
pub mod messages;
pub mod prom;
pub mod queue;
mod queue_body;
mod queue_read;
pub mod repos;
mod scheduled;
pub mod service;
mod service_body;
mod service_read;
pub mod task_history;
pub mod tasks;

mod contract;
mod registry;
mod schedule;
mod support;
mod work;

pub use contract::*;
pub use registry::*;
pub use schedule::*;
pub use support::*;
pub use work::*;
