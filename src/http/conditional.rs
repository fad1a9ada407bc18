//! Conditional requests and content negotiation, without allocating:
//! `If-None-Match` against a snapshot's ETag, and whether the client takes gzip.

use actix_web::http::header::{HeaderMap, ACCEPT_ENCODING, IF_NONE_MATCH};

/// True when `If-None-Match` lists one of `etags` (weak comparison, as RFC 9110
/// asks for this header) or is `*`.
pub fn none_match(headers: &HeaderMap, etags: &[&str]) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || etags.contains(&tag.strip_prefix("W/").unwrap_or(tag)))
}

/// True when `Accept-Encoding` accepts gzip with a q-value above zero.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for item in headers
        .get_all(ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q_positive = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .next_back()
            .map(|q| q.trim().parse::<f32>().map(|q| q > 0.0).unwrap_or(false))
            .unwrap_or(true);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return q_positive;
        }
        if coding == "*" {
            star = q_positive;
        }
    }
    star
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn map(name: actix_web::http::header::HeaderName, v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn etag_lists() {
        let tag = &["\"abc\"", "\"abc-gz\""];
        assert!(none_match(&map(IF_NONE_MATCH, "\"abc\""), tag));
        assert!(none_match(&map(IF_NONE_MATCH, "\"abc-gz\""), tag));
        assert!(none_match(&map(IF_NONE_MATCH, "\"x\", W/\"abc\""), tag));
        assert!(none_match(&map(IF_NONE_MATCH, "*"), tag));
        assert!(!none_match(&map(IF_NONE_MATCH, "\"abcd\""), tag));
        assert!(!none_match(&HeaderMap::new(), tag));
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(&map(ACCEPT_ENCODING, "gzip, deflate, br")));
        assert!(accepts_gzip(&map(ACCEPT_ENCODING, "br;q=1.0, gzip;q=0.5")));
        assert!(!accepts_gzip(&map(ACCEPT_ENCODING, "gzip;q=0")));
        assert!(!accepts_gzip(&map(ACCEPT_ENCODING, "identity")));
        assert!(accepts_gzip(&map(ACCEPT_ENCODING, "*")));
        assert!(!accepts_gzip(&map(ACCEPT_ENCODING, "*, gzip;q=0")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
