//! The immutable, pre-rendered snapshot that requests are answered from.
//!
//! A snapshot holds every response body the HTTP layer can send, already
//! serialized, gzip-compressed and tagged with a strong ETag. Requests load the
//! current one from an `ArcSwap` and clone `Bytes`: they never serialize,
//! compress, hash, or touch git or SQL.
//!
//! It knows no web framework: headers are the `http` crate's types, which
//! actix-web uses as they are.

use bytes::Bytes;

pub use crate::rendered::{Pages, Rendered};
use crate::section_id::SectionId;

/// Everything the HTTP layer serves, as of one render.
#[derive(Debug)]
pub struct Snapshot {
    /// Counts renders since start; increases by one per published snapshot.
    pub generation: u64,
    /// `GET /status`.
    pub status: Rendered,
    /// `GET /status/{section}`, in document order.
    pub sections: Vec<(SectionId, Rendered)>,
    /// `GET /health` (always plain JSON) and its HTTP status code.
    pub health: Bytes,
    pub health_code: u16,
    /// `GET /health` for a client without the token, when detail is hidden: the status alone.
    pub health_public: Bytes,
    /// `GET /metrics`: Prometheus text.
    pub metrics: Bytes,
    /// The `/status/stream` event carrying `status.plain`: `event: status`, `data: …`.
    pub sse: Bytes,
    /// True once every section has had its first collection attempt.
    pub ready: bool,
    /// `GET /status/events`: the last transitions, newest first.
    pub events: Bytes,
    /// The stream's `transition` events added by this render (may be empty).
    pub sse_transitions: Bytes,
    /// The JSON for a 404 on an unknown section name, listing the known ones.
    pub unknown_section: Bytes,
    /// Sections' own pages, by section.
    pub pages: Vec<(SectionId, std::sync::Arc<Pages>)>,
    /// What notifications read: the verdict and the reasons, typed.
    pub alerts: std::sync::Arc<Alerts>,
}

/// The verdict and its reasons as of one render, each with its condition
/// (the key `since` and flap damping use), for notifications.
#[derive(Debug, Default)]
pub struct Alerts {
    pub verdict: Option<crate::engine::rollup::Level>,
    pub reasons: Vec<(String, crate::engine::rollup::Reason)>,
    /// Conditions flapping now, present or not: their appearing and clearing
    /// are not told one by one.
    pub flapping: std::collections::HashSet<String>,
}

impl Snapshot {
    /// The pre-rendered `/status/{name}` body, if `name` is a section.
    pub fn section(&self, name: &str) -> Option<&Rendered> {
        self.sections
            .iter()
            .find(|(id, _)| id.name() == name)
            .map(|(_, r)| r)
    }

    /// The pages of section `name`, if it has any.
    pub fn pages(&self, name: &str) -> Option<&Pages> {
        self.pages
            .iter()
            .find(|(id, _)| id.name() == name)
            .map(|(_, p)| p.as_ref())
    }
}
