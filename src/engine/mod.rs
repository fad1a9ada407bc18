//! The serving core: what turns sections' outcomes into the bytes requests
//! are answered from, in the order data flows.
//!
//! - [`poller`]: runs each section on its schedule (timeout, single flight,
//!   panics caught) and hands the outcome to the store.
//! - [`publish`]: pushes, pulls and refreshes, published at once.
//! - [`store`]: the one task that owns every section's [`record`], wakes at
//!   staleness deadlines, and publishes.
//! - [`render`]: a new [`snapshot`] from the records — the [`rollup`] (the
//!   verdict and its reasons), [`transitions`] (since when, flap damping),
//!   [`metrics`] (Prometheus text), `/health`, the stream's frames.
//! - [`snapshot`]: the immutable, pre-rendered bytes behind the `ArcSwap`.
//!
//! It depends on `sections` (what to collect) and never the other way: a
//! section knows nothing of polling, storing or rendering.

pub mod metrics;
pub mod poller;
pub mod publish;
pub mod record;
pub mod render;
pub mod rollup;
pub mod snapshot;
pub mod store;
pub mod transitions;
