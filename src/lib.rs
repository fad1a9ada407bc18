//! pynchy-status: "is everything on this pynchy server healthy, and if not,
//! what?" answered with one cheap HTTP call.
//!
//! Data flows one way:
//!
//! ```text
//! sources (git, SQLite, Docker, LiteLLM)  ->  sections (one per part of /status)
//!   -> poller (schedule, timeout, single-flight, panic isolation)
//!   -> store (last good bodies + meta; renders snapshots; staleness deadlines)
//!   -> ArcSwap<Snapshot> (pre-rendered bytes, gzip, ETags)
//!   -> http (load, pick variant, answer)
//! ```
//!
//! Requests never wait on I/O: handlers load the latest snapshot and clone bytes.
//!
//! - [`config`]: the TOML file.
//! - [`context`]: what sections share (config, start time, shutdown flag).
//! - [`sources`]: adapters to outside systems, returning typed values.
//! - [`sections`]: one file per section, and the registry.
//! - [`poller`]: runs sections on their schedules.
//! - [`store`] and [`snapshot`]: section state and the rendered snapshot.
//! - [`rollup`]: ok / degraded / down and the reasons, at render time.
//! - [`metrics`]: the Prometheus exposition, at render time.
//! - [`http`]: the actix-web routes.
//! - [`overdue`]: when a scheduled task or host job is late.
//! - [`app`]: wiring and shutdown.
//! - [`demo`]: the self-contained demo world.
//! - [`check`]: the `check` command's screen and exit code.

pub mod app;
pub mod check;
pub mod config;
pub mod context;
pub mod demo;
pub mod http;
pub mod metrics;
pub mod overdue;
pub mod poller;
pub mod rollup;
pub mod sections;
pub mod snapshot;
pub mod sources;
pub mod store;
