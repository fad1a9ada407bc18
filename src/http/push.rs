//! `PUT /push/{section}` (and its older name `PUT /ingest/{section}`): a
//! patched pynchy pushes its in-memory state. The one writer
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
use crate::engine::publish::Publisher;
use crate::section_id::SectionId;
use crate::sources::push::{pushable, PushError};
use crate::stamp::Stamp;

/// Largest accepted body.
pub const MAX_BODY: usize = 64 * 1024;

/// What the push handler needs.
pub struct PushRoute {
    /// Swapped whole when the config is reloaded (SIGHUP).
    pub publisher: arc_swap::ArcSwap<Publisher>,
    /// The bearer token, when `[push] token_env` names a set variable.
    pub token: arc_swap::ArcSwapOption<String>,
}

impl PushRoute {
    pub fn new(publisher: Arc<Publisher>, token: Option<String>) -> PushRoute {
        PushRoute {
            publisher: arc_swap::ArcSwap::new(publisher),
            token: arc_swap::ArcSwapOption::new(token.map(Arc::new)),
        }
    }
}

pub async fn put(
    req: HttpRequest,
    mut payload: web::Payload,
    route: web::Data<PushRoute>,
) -> HttpResponse {
    let section = req.match_info().get("section").unwrap_or("").to_string();
    let token = route.token.load_full();
    if let Some(refusal) = push_refusal(&req, token.as_deref().map(String::as_str)) {
        return refusal;
    }
    let publisher = route.publisher.load_full();
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
    match publisher.store().push(id, &body, Stamp::now()) {
        Ok(()) => {
            publisher.after_push(&[id]).await;
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
pub async fn refresh(req: HttpRequest, route: web::Data<PushRoute>) -> HttpResponse {
    let token = route.token.load_full();
    if let Some(refusal) = push_refusal(&req, token.as_deref().map(String::as_str)) {
        return refusal;
    }
    let publisher = route.publisher.load_full();
    let name = req.match_info().get("section").unwrap_or("");
    let id = SectionId::builtin(name);
    match id {
        Some(id) if publisher.refresh(id).await => HttpResponse::Ok()
            .content_type("application/json")
            .body(serde_json::json!({ "refreshed": id }).to_string()),
        _ => json_error(
            StatusCode::NOT_FOUND,
            &format!("unknown section `{name}`; known: {}", SectionId::known()),
        ),
    }
}
