//! Pre-rendered bytes: one response body in every form a request may ask for
//! (plain, gzip, each with its strong ETag), and a section's own pages. Made
//! where the bytes are made (a render, a section's collection), served as they
//! are: requests never serialize, compress or hash.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::HeaderValue;

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
