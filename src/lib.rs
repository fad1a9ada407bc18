//! pynchy-status: "is everything on this pynchy server healthy, and if not,
//! what?" answered with one cheap HTTP call.
//!
//! Data flows one way:
//!
//! ```text
//! sources (git, SQLite, Docker, LiteLLM, pynchy's process and HTTP server, its
//!          systemd unit, pushes)
//!   -> sections (one file per part of /status: typed body, rules, metrics, summary)
//!   -> engine: poller (schedule, timeout, single-flight, panic isolation)
//!        -> store (last good bodies + meta; staleness deadlines)
//!        -> render (rollup, transitions, metrics, /health, bytes, gzip, ETags)
//!        -> ArcSwap<Snapshot>
//!   -> http (load, pick variant, answer)
//! ```
//!
//! Requests never wait on I/O: handlers load the latest snapshot and clone bytes.
//!
//! Modules, leaves first:
//! - `stamp`, `section_id`, `file`, `rendered`: when a value was true; the
//!   names of the sections; the one capped file reader; pre-rendered bytes.
//! - [`config`]: the TOML file and its defaults.
//! - `client`: the outbound HTTP client every caller shares.
//! - [`sources`]: adapters to outside systems, returning typed values (and the
//!   gates that keep a stuck source from piling up reads).
//! - `context`: what sections share (config, start time, shutdown flag, what
//!   outlives a reload).
//! - [`sections`]: one file per section, and the registry.
//! - `cron`, `overdue`: pynchy's schedules in croniter's dialect; when a
//!   scheduled task or host job is late by pynchy's own rules.
//! - `engine`: the serving core (poller, publish, store, state, render,
//!   rollup, transitions, metrics, snapshot); see its header.
//! - `http`: the actix-web routes and the token check.
//! - [`app`]: wiring and shutdown.
//! - [`demo`], [`stand_in`]: the self-contained demo world, and the stand-in
//!   of pynchy's HTTP server it (and the tests) run as pynchy.
//! - [`check`]: the `check` command's screen and exit code.
//! - [`notify`]: notifications of problems to `[[notify]]` targets.

pub mod app;
pub mod check;
mod client;
pub mod config;
mod context;
mod cron;
pub mod demo;
mod engine;
mod file;
mod http;
pub mod notify;
mod overdue;
mod rendered;
pub mod schema;
pub mod section_id;
pub mod sections;
pub mod sources;
mod stamp;
pub mod stand_in;

pub use app::{Daemon, Running};
/// The verdict's rules and levels (in the engine), for tests and embedders.
pub use engine::rollup;
pub use section_id::SectionId;
pub use stamp::Stamp;

/// What tests and benches reach inside the crate for: small, and not API.
#[doc(hidden)]
pub mod testing {
    pub use crate::context::Context;
    pub use crate::cron::{next_fire, parse_cron, parse_schedule, Recurrence};
    pub use crate::engine::record::SectionRecord;
    pub use crate::overdue::{due_at, Due, Judge};
    pub use crate::sources::db::{read_only_uri, Db, DbError};
    pub use crate::sources::git::{open, read_checkout, repo_report};
    pub use crate::sources::litellm::parse as parse_litellm;
    pub use crate::stamp::parse_time;

    use std::sync::Arc;

    use crate::sections::{Body, Schedule};

    /// A section's state holding `body`, collected just now.
    pub fn fresh<B: Body>(id: crate::SectionId, body: B) -> SectionRecord {
        let mut s = SectionRecord::new(
            id,
            Schedule::every(
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs(5),
            ),
        );
        s.summary = Some(body.summary());
        s.body = Some(Arc::new(body));
        s.collected = Some(crate::Stamp::now());
        s.attempted_at = Some(chrono::Utc::now());
        s
    }
}
