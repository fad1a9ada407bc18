//! The immutable, pre-rendered snapshot that requests are answered from.
//!
//! A snapshot holds every response body the HTTP layer can send, already
//! serialized, gzip-compressed and tagged with a strong ETag. Requests load the
//! current one from an `ArcSwap` and clone `Bytes`: they never serialize,
//! compress, hash, or touch git or SQL.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;

/// One response body in every form a request may ask for.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The JSON bytes.
    pub plain: Bytes,
    /// The same bytes gzip-compressed, once, at render time.
    pub gzip: Bytes,
    /// A strong, quoted ETag of `plain` (the same for both encodings' content).
    pub etag: String,
}

impl Rendered {
    /// Compresses and tags `plain`.
    pub fn new(plain: Vec<u8>) -> Rendered {
        let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&plain));
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
        }
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
    pub sections: Vec<(&'static str, Rendered)>,
    /// `GET /health` and its HTTP status code.
    pub health: Rendered,
    pub health_code: u16,
    /// `GET /health` for a client without the token, when detail is hidden: the status alone.
    pub health_public: Rendered,
    /// `GET /metrics`: Prometheus text.
    pub metrics: Bytes,
    /// The `/status/stream` event carrying `status.plain`: `event: status`, `data: …`.
    pub sse: Bytes,
    /// The rollup's verdict.
    pub level: crate::rollup::Level,
    /// True once every section has had its first collection attempt.
    pub ready: bool,
    /// The JSON for a 404 on an unknown section name, listing the known ones.
    pub unknown_section: Bytes,
}

impl Snapshot {
    /// The pre-rendered `/status/{name}` body, if `name` is a section.
    pub fn section(&self, name: &str) -> Option<&Rendered> {
        self.sections
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| r)
    }

    /// A placeholder served before the store's first render.
    pub fn empty() -> Snapshot {
        Snapshot {
            generation: 0,
            status: Rendered::new(b"{}".to_vec()),
            sections: Vec::new(),
            health: Rendered::new(b"{\"status\":null}".to_vec()),
            health_code: 200,
            health_public: Rendered::new(b"{\"status\":null}".to_vec()),
            metrics: Bytes::new(),
            sse: Bytes::new(),
            level: crate::rollup::Level::Ok,
            ready: false,
            unknown_section: Bytes::from_static(b"{\"error\":\"unknown section\"}"),
        }
    }
}
