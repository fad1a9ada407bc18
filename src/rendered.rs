//! Pre-rendered bytes: one response body in every form a request may ask for
//! (plain, gzip, each with its strong ETag), and a section's own pages. Made
//! where the bytes are made (a render, a section's collection), served as they
//! are: requests never serialize, compress or hash.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
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
        let gzip = Bytes::from(gzip(&plain));
        Rendered {
            plain: Bytes::from(plain),
            gzip,
            etag,
            gzip_etag,
        }
    }
}

thread_local! {
    /// One deflate state per thread, reset for each body: making a new one
    /// allocates and zeroes its tables (hundreds of KiB), which was most of
    /// a render's cost while nothing else changed.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
}

/// `plain` as a gzip member (RFC 1952: header, raw deflate, CRC-32, size),
/// as flate2's `GzEncoder` writes it at the fast level.
fn gzip(plain: &[u8]) -> Vec<u8> {
    // ID1 ID2, deflate, no flags, no mtime, XFL 4 (fastest), OS unknown.
    let mut out = Vec::with_capacity(plain.len() / 3 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
    DEFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset();
        loop {
            let before = d.total_in();
            let rest = plain
                .get(usize::try_from(before).unwrap_or(usize::MAX)..)
                .unwrap_or(&[]);
            out.reserve(rest.len() / 2 + 1024);
            match d.compress_vec(rest, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => continue,
                // A deflate of bytes in memory does not fail; were it to,
                // the gzip form is left out (clients get the plain one).
                Err(_) => {
                    out.clear();
                    return;
                }
            }
        }
    });
    if out.is_empty() {
        return out;
    }
    let mut crc = Crc::new();
    crc.update(plain);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
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

#[cfg(test)]
mod gzip_tests {
    use std::io::Read;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    #[test]
    fn gzip_round_trips_with_one_reused_state() {
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes())
            .collect();
        let json = br#"{"status":"ok","reasons":[]}"#.repeat(500);
        for plain in [&b""[..], b"{}", &json, &big, b"{}"] {
            let gz = super::gzip(plain);
            assert_eq!(&gz[..2], &[0x1f, 0x8b]);
            assert_eq!(gunzip(&gz), plain);
        }
        assert!(super::gzip(&json).len() < json.len() / 10);
    }
}
