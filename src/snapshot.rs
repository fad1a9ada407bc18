//! The immutable, pre-rendered snapshot that requests are answered from.
//!
//! A snapshot holds every response body the HTTP layer can send, already
//! serialized, gzip-compressed and tagged with a strong ETag. Requests load the
//! current one from an `ArcSwap` and clone `Bytes`: they never serialize,
//! compress, hash, or touch git or SQL.
//!
//! It knows no web framework: headers are the `http` crate's types, which
//! actix-web uses as they are.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::HeaderValue;

use crate::section_id::SectionId;

/// One response body in every form a request may ask for.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The JSON bytes.
    pub plain: Bytes,
    /// The same bytes gzip-compressed, once, at render time.
    pub gzip: Bytes,
    /// A strong, quoted ETag of `plain`, ready to be a header.
    pub etag: HeaderValue,
    /// The gzip representation's own strong ETag (`"<hash>-gz"`): a strong
    /// validator must differ between representations with different bytes.
    pub gzip_etag: HeaderValue,
}

impl Rendered {
    /// Compresses and tags `plain`.
    pub fn new(plain: Vec<u8>) -> Rendered {
        let hash = xxhash_rust::xxh3::xxh3_64(&plain);
        // Hex digits and quotes: always a valid header value.
        let tag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{hash:016x}{suffix}\""))
                .unwrap_or(HeaderValue::from_static("\"\""))
        };
        let (etag, gzip_etag) = (tag(""), tag("-gz"));
        let mut enc = GzEncoder::new(
            Vec::with_capacity(plain.len() / 3 + 64),
            Compression::fast(),
        );
        // Writing into a Vec cannot fail.
        let gzip = match enc.write_all(&plain).and_then(|_| enc.finish()) {
            Ok(v) => Bytes::from(v),
            Err(_) => Bytes::new(),
        };
        Rendered {
            plain: Bytes::from(plain),
            gzip,
            etag,
            gzip_etag,
        }
    }
}

/// A section's own pages (`GET /status/{section}/{key}`, such as one task's
/// history), rendered where the section was collected: a render only hands
/// the pointer on.
#[derive(Debug, Default)]
pub struct Pages {
    pub pages: std::collections::HashMap<String, Rendered>,
    /// The 404's JSON for a key not there (`{"error": "unknown task"}`).
    pub missing: Bytes,
}

impl Pages {
    /// `pages`, whose keys name a `what` ("task").
    pub fn new(what: &str, pages: std::collections::HashMap<String, Rendered>) -> Pages {
        let missing = serde_json::json!({ "error": format!("unknown {what}") });
        Pages {
            pages,
            missing: Bytes::from(missing.to_string()),
        }
    }
}

impl PartialEq for Pages {
    /// Same keys, same bytes (by their tags).
    fn eq(&self, other: &Pages) -> bool {
        self.missing == other.missing
            && self.pages.len() == other.pages.len()
            && self
                .pages
                .iter()
                .all(|(k, r)| other.pages.get(k).is_some_and(|o| o.etag == r.etag))
    }
}

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
