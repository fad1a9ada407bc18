//! `PUT /ingest/{section}`: pynchy pushes its in-memory state. The one writer
//! of the HTTP layer: it checks the token, reads at most 64 KiB, validates the
//! typed body, stores it whole, has the section collected, and answers once the
//! published snapshot holds it — a push is visible in the very next GET. Any
//! rejection leaves the previous value exactly as it was.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::auth::push_refusal;
use super::reply::json_error;
use crate::delivery::Delivery;
use crate::section_id::SectionId;
use crate::sources::host_state::{pushable, PushError};
use crate::stamp::Stamp;

/// Largest accepted body.
pub const MAX_BODY: usize = 64 * 1024;

/// What the ingest handler needs.
pub struct Ingest {
    /// Swapped whole when the config is reloaded (SIGHUP).
    pub delivery: arc_swap::ArcSwap<Delivery>,
    /// The bearer token, when `[ingest] token_env` names a set variable.
    pub token: arc_swap::ArcSwapOption<String>,
}

impl Ingest {
    pub fn new(delivery: Arc<Delivery>, token: Option<String>) -> Ingest {
        Ingest {
            delivery: arc_swap::ArcSwap::new(delivery),
            token: arc_swap::ArcSwapOption::new(token.map(Arc::new)),
        }
    }
}

pub async fn put(
    req: HttpRequest,
    mut payload: web::Payload,
    ingest: web::Data<Ingest>,
) -> HttpResponse {
    let section = req.match_info().get("section").unwrap_or("").to_string();
    let token = ingest.token.load_full();
    if let Some(refusal) = push_refusal(&req, token.as_deref().map(String::as_str)) {
        return refusal;
    }
    let delivery = ingest.delivery.load_full();
    let Some(id) = pushable(&section) else {
        return json_error(
            StatusCode::NOT_FOUND,
            &PushError::UnknownSection(section).to_string(),
        );
    };
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
    match delivery.memory().accept(id, &body, Stamp::now()) {
        Ok(()) => {
            delivery.pushed(&[id]).await;
            HttpResponse::Ok()
                .content_type("application/json")
                .body(serde_json::json!({ "accepted": section }).to_string())
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// `POST /refresh/{section}`: collect the section now, including what it
/// checks rarely (the gateway's paid model check), and answer once the
/// published snapshot holds it. Protected like pushes.
pub async fn refresh(req: HttpRequest, ingest: web::Data<Ingest>) -> HttpResponse {
    let token = ingest.token.load_full();
    if let Some(refusal) = push_refusal(&req, token.as_deref().map(String::as_str)) {
        return refusal;
    }
    let delivery = ingest.delivery.load_full();
    let name = req.match_info().get("section").unwrap_or("");
    let id = SectionId::builtin(name);
    match id {
        Some(id) if delivery.refresh(id).await => HttpResponse::Ok()
            .content_type("application/json")
            .body(serde_json::json!({ "refreshed": id }).to_string()),
        _ => json_error(
            StatusCode::NOT_FOUND,
            &format!("unknown section `{name}`; known: {}", SectionId::known()),
        ),
    }
}
