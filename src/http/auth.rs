//! Who may see what. Detail endpoints (`/status`, `/status/{section}`, the
//! stream, `/metrics`) need `[server] token_env`'s token when one is set: a
//! handler asks for it by taking an [`Authorized`] argument. Pushes have their
//! own token (`[push] token_env`) and, without one, accept only loopback.
//! Tokens are compared in constant time. Refusals for a missing or wrong
//! token are counted per endpoint ([`AuthFailures`]: `/metrics`) and logged
//! at most once a minute, with a count.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::{ready, Ready};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};

use super::reply::json_error;

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn token_matches(given: &str, token: &str) -> bool {
    constant_time_eq::constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// Requests refused for a missing or wrong token, by endpoint (the route's
/// pattern, so an attacker cannot grow the map with paths of their own).
#[derive(Default)]
pub struct AuthFailures {
    inner: Mutex<FailureLog>,
}

#[derive(Default)]
struct FailureLog {
    total: BTreeMap<String, u64>,
    /// Refusals since the last log line, and when that was.
    unlogged: u64,
    logged_at: Option<Instant>,
}

/// At most one log line per this long.
const LOG_EVERY: Duration = Duration::from_secs(60);

impl AuthFailures {
    /// Counts one refusal of `req`, logging if the last line is a minute old.
    pub fn record(&self, req: &HttpRequest, why: &'static str) {
        let endpoint = req.match_pattern().unwrap_or_else(|| "other".into());
        let mut log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *log.total.entry(endpoint.clone()).or_default() += 1;
        log.unlogged += 1;
        if log.logged_at.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            let peer = req.peer_addr().map(|a| a.ip().to_string());
            tracing::warn!(
                endpoint = %endpoint,
                peer = peer.as_deref().unwrap_or("unknown"),
                why,
                refused = log.unlogged,
                "requests refused for a missing or wrong token (at most one line a minute; refused counts since the last line)"
            );
            log.unlogged = 0;
            log.logged_at = Some(Instant::now());
        }
    }

    /// `pynchy_status_auth_failures_total{endpoint}` in OpenMetrics text.
    pub fn exposition(&self) -> String {
        let log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::from(
            "# HELP pynchy_status_auth_failures Requests refused for a missing or wrong token.\n\
             # TYPE pynchy_status_auth_failures counter\n",
        );
        for (endpoint, n) in &log.total {
            let label = endpoint.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "pynchy_status_auth_failures_total{{endpoint=\"{label}\"}} {n}"
            );
        }
        out
    }
}

fn record(req: &HttpRequest, why: &'static str) {
    if let Some(f) = req.app_data::<web::Data<AuthFailures>>() {
        f.record(req, why);
    }
}

/// `[server] token_env`: when a token is set, detail needs it.
pub struct Access {
    /// Swapped when the config is reloaded (SIGHUP).
    pub token: arc_swap::ArcSwapOption<String>,
}

impl Access {
    pub fn new(token: Option<String>) -> Access {
        Access {
            token: arc_swap::ArcSwapOption::new(token.map(std::sync::Arc::new)),
        }
    }

    /// True when the request may see detail.
    pub fn allows(&self, req: &HttpRequest) -> bool {
        let token = self.token.load();
        let Some(token) = token.as_deref() else {
            return true;
        };
        bearer(req).is_some_and(|g| token_matches(g, token))
    }
}

/// Proof that the request may see detail; a handler that takes one answers
/// 401 (with `WWW-Authenticate: Bearer`) to anyone else.
pub struct Authorized;

/// The refusal of a request without the right token.
#[derive(Debug, thiserror::Error)]
#[error("this endpoint needs Authorization: Bearer <token>")]
pub struct Refused;

impl ResponseError for Refused {
    fn error_response(&self) -> HttpResponse {
        let mut r = json_error(StatusCode::UNAUTHORIZED, &self.to_string());
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    }
}

impl FromRequest for Authorized {
    type Error = Refused;
    type Future = Ready<Result<Authorized, Refused>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let allowed = req
            .app_data::<web::Data<Access>>()
            .is_none_or(|a| a.allows(req));
        if !allowed {
            let why = if bearer(req).is_some() {
                "wrong token"
            } else {
                "no token"
            };
            record(req, why);
        }
        ready(if allowed {
            Ok(Authorized)
        } else {
            Err(Refused)
        })
    }
}

/// The `Host` header as a host and an optional port, and nothing else: no
/// user info (`127.0.0.1:80@evil.com`), path or stray characters.
fn host_header(req: &HttpRequest) -> Option<(&str, Option<u16>)> {
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)?
        .to_str()
        .ok()?;
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => {
            let (name, rest) = v6.split_once(']')?;
            (name, rest)
        }
        None => match host.rsplit_once(':') {
            Some((name, _)) => (name, &host[name.len()..]),
            None => (host, ""),
        },
    };
    let port = match port.strip_prefix(':') {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
        None if port.is_empty() => None,
        None => return None,
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':');
    (!name.is_empty() && name.bytes().all(plain)).then_some((name, port))
}

/// True when the `Host` header names a loopback address or `localhost`: a
/// page in a browser on this machine that rebinds a name of its own to
/// 127.0.0.1 still sends that name, and is refused.
fn loopback_host(req: &HttpRequest) -> bool {
    let Some((name, _)) = host_header(req) else {
        return false;
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// True when a browser says the request comes from another site: its
/// `Sec-Fetch-Site` is not `same-origin` or `none`, or its `Origin` is not
/// this very origin (scheme, the `Host` header). A form or a `fetch` with
/// `Content-Type: text/plain` is sent cross-site without a preflight; tools
/// (curl, pynchy) send neither header.
fn cross_site(req: &HttpRequest) -> bool {
    // A header that is not text counts as foreign.
    let header = |name| req.headers().get(name).map(|v| v.to_str().unwrap_or(""));
    if header("sec-fetch-site").is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return true;
    }
    let Some(origin) = header("origin") else {
        return false;
    };
    let host = header("host").filter(|_| host_header(req).is_some());
    !host.is_some_and(|h| {
        ["http", "https"]
            .iter()
            .any(|scheme| origin.eq_ignore_ascii_case(&format!("{scheme}://{h}")))
    })
}

/// `None` when a push (or a refresh) may proceed, else the refusal: never
/// from another web page ([`cross_site`]); with `token` set, the bearer must
/// match; without, the peer must be on loopback and the `Host` header must
/// name loopback (no DNS rebinding from a browser).
pub fn push_refusal(req: &HttpRequest, token: Option<&str>) -> Option<HttpResponse> {
    if cross_site(req) {
        record(req, "cross-site");
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "a cross-site request: pushes and refreshes are not taken from other web pages",
        ));
    }
    let Some(token) = token else {
        let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
        return (!loopback || !loopback_host(req)).then(|| {
            json_error(
                StatusCode::FORBIDDEN,
                "no push token is configured: pushes are accepted only from loopback, \
                 addressed to a loopback Host",
            )
        });
    };
    match bearer(req) {
        None => {
            record(req, "no token");
            Some(json_error(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer token",
            ))
        }
        Some(g) if token_matches(g, token) => None,
        Some(_) => {
            record(req, "wrong token");
            Some(json_error(StatusCode::FORBIDDEN, "wrong token"))
        }
    }
}
