//! Who may see what. Detail endpoints (`/status`, `/status/{section}`, the
//! stream, `/metrics`) need `[server] token_env`'s token when one is set: a
//! handler asks for it by taking an [`Authorized`] argument. Pushes have their
//! own token (`[ingest] token_env`) and, without one, accept only loopback.
//! Tokens are compared in constant time.

use std::future::{ready, Ready};

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

/// `[server] token_env`: when a token is set, detail needs it.
pub struct Access {
    pub token: Option<String>,
}

impl Access {
    /// True when the request may see detail.
    pub fn allows(&self, req: &HttpRequest) -> bool {
        let Some(token) = &self.token else {
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
        ready(if allowed {
            Ok(Authorized)
        } else {
            Err(Refused)
        })
    }
}

/// True when the `Host` header names a loopback address or `localhost`: a
/// page in a browser on this machine that rebinds a name of its own to
/// 127.0.0.1 still sends that name, and is refused.
fn loopback_host(req: &HttpRequest) -> bool {
    let Some(host) = req.headers().get(actix_web::http::header::HOST) else {
        return false;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `None` when a push may proceed, else the refusal: with `token` set, the
/// bearer must match; without, the peer must be on loopback and the `Host`
/// header must name loopback (no DNS rebinding from a browser).
pub fn push_refusal(req: &HttpRequest, token: Option<&str>) -> Option<HttpResponse> {
    let Some(token) = token else {
        let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
        return (!loopback || !loopback_host(req)).then(|| {
            json_error(
                StatusCode::FORBIDDEN,
                "no ingest token is configured: pushes are accepted only from loopback, \
                 addressed to a loopback Host",
            )
        });
    };
    match bearer(req) {
        None => Some(json_error(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer token",
        )),
        Some(g) if token_matches(g, token) => None,
        Some(_) => Some(json_error(StatusCode::FORBIDDEN, "wrong token")),
    }
}
