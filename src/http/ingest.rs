//! `PUT /ingest/{section}`: pynchy pushes its in-memory state. The one writer
//! of the HTTP layer: it checks the token, reads at most 64 KiB, validates the
//! typed body, stores it whole, has the section collected, and answers once the
//! published snapshot holds it — a push is visible in the very next GET. Any
//! rejection leaves the previous value exactly as it was.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::routes::{bearer, json_error, token_matches};
use crate::poller::Kick;
use crate::sections::Stamp;
use crate::sources::host_state::{MemoryHostState, PushError, PUSHABLE};

/// Largest accepted body.
pub const MAX_BODY: usize = 64 * 1024;

/// What the ingest handler needs.
pub struct Ingest {
    pub memory: Arc<MemoryHostState>,
    /// The bearer token, when `[ingest] token_env` names a set variable.
    pub token: Option<String>,
    /// Section name → its poller, to collect right after a push.
    pub kicks: HashMap<&'static str, Kick>,
}

impl Ingest {
    /// Collects the named sections and waits (at most 2 s) until a published
    /// snapshot holds them.
    pub async fn publish(&self, sections: &[&str]) {
        let waits = sections
            .iter()
            .filter_map(|s| self.kicks.get(s))
            .map(|k| k.collect_and_publish());
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            futures_util::future::join_all(waits),
        )
        .await;
    }
}

/// `None` when allowed, else the refusal.
fn authorize(req: &HttpRequest, token: Option<&str>) -> Option<HttpResponse> {
    let Some(token) = token else {
        let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
        return (!loopback).then(|| {
            json_error(
                StatusCode::FORBIDDEN,
                "no ingest token is configured: pushes are accepted only from loopback",
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

pub async fn put(
    req: HttpRequest,
    mut payload: web::Payload,
    ingest: web::Data<Ingest>,
) -> HttpResponse {
    let section = req.match_info().get("section").unwrap_or("").to_string();
    if let Some(refusal) = authorize(&req, ingest.token.as_deref()) {
        return refusal;
    }
    if !PUSHABLE.contains(&section.as_str()) {
        return json_error(
            StatusCode::NOT_FOUND,
            &PushError::UnknownSection(section).to_string(),
        );
    }
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB");
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return json_error(StatusCode::BAD_REQUEST, "could not read the body");
        };
        if body.len() + chunk.len() > MAX_BODY {
            return json_error(StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB");
        }
        body.extend_from_slice(&chunk);
    }
    match ingest.memory.accept(&section, &body, Stamp::now()) {
        Ok(()) => {
            ingest.publish(&[section.as_str()]).await;
            HttpResponse::Ok()
                .content_type("application/json")
                .body(serde_json::json!({ "accepted": section }).to_string())
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}
