//! The routes. Every handler loads the current snapshot and answers with bytes
//! rendered before the request arrived: no git, no SQL, no serialization here.

use actix_web::http::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, VARY,
};
use actix_web::http::StatusCode;
use actix_web::{guard, web, FromRequest, Handler, HttpRequest, HttpResponse, Responder};
use bytes::Bytes;

use super::auth::{Access, AuthFailures, Authorized};
use super::conditional;
use super::reply::json_error;
use crate::engine::snapshot::Rendered;
use crate::engine::store::Snapshots;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

/// Registers every route, each with a JSON 405 for other methods.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/", dashboard))
        .service(get_only("/status", status))
        .service(get_only("/status/stream", super::stream::stream))
        .service(get_only("/status/schema", schema))
        .service(get_only("/status/events", events))
        .service(get_only("/status/notify", notify_status))
        .service(get_only("/status/{section}", section))
        // A key may hold `/` (a task id is any text): the rest of the path.
        .service(get_only("/status/{section}/{key:.+}", page))
        .service(get_only("/health", health))
        .service(get_only("/livez", livez))
        .service(get_only("/readyz", readyz))
        .service(get_only("/metrics", metrics))
        .service(
            web::resource("/push/{section}")
                .route(web::put().to(super::push::put))
                .default_service(web::to(|| async { method_not_allowed("PUT") })),
        )
        // The older name of the same route, for pushers written against it.
        .service(
            web::resource("/ingest/{section}")
                .route(web::put().to(super::push::put))
                .default_service(web::to(|| async { method_not_allowed("PUT") })),
        )
        .service(
            web::resource("/refresh/{section}")
                .route(web::post().to(super::push::refresh))
                .default_service(web::to(|| async { method_not_allowed("POST") })),
        );
}

/// A resource answering GET and HEAD with `handler` (actix-web sends no body for
/// HEAD, keeping the headers), and a JSON 405 with `Allow` for anything else.
fn get_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler),
        )
        .default_service(web::to(|| async { method_not_allowed("GET, HEAD") }))
}

/// The dashboard page, embedded in the binary.
const DASHBOARD: &str = include_str!("dashboard.html");

async fn dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .insert_header((CACHE_CONTROL, NO_CACHE))
        .body(DASHBOARD)
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// The JSON 404 for any path we do not serve.
pub async fn not_found() -> HttpResponse {
    json_error(StatusCode::NOT_FOUND, "not found")
}

/// Answers with a pre-rendered body: gzip if the client takes it, 304 if the
/// client holds this snapshot in either encoding (both tags name the same
/// content), each representation with its own ETag.
fn respond(req: &HttpRequest, r: &Rendered) -> HttpResponse {
    let headers = req.headers();
    let gzip = conditional::accepts_gzip(headers) && !r.gzip.is_empty();
    let etag = if gzip { &r.gzip_etag } else { &r.etag };
    let tags = [
        r.etag.to_str().unwrap_or_default(),
        r.gzip_etag.to_str().unwrap_or_default(),
    ];
    if conditional::none_match(headers, &tags) {
        return HttpResponse::NotModified()
            .insert_header((ETAG, etag.clone()))
            .insert_header((CACHE_CONTROL, NO_CACHE))
            .insert_header((VARY, HeaderValue::from_static("Accept-Encoding")))
            .finish();
    }
    let mut b = HttpResponse::Ok();
    b.insert_header((CONTENT_TYPE, JSON))
        .insert_header((ETAG, etag.clone()))
        .insert_header((CACHE_CONTROL, NO_CACHE))
        .insert_header((VARY, HeaderValue::from_static("Accept-Encoding")));
    if gzip {
        b.insert_header((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        b.body(r.gzip.clone())
    } else {
        b.body(r.plain.clone())
    }
}

/// `GET /status/schema`: the JSON Schema of `/status` (the same for every
/// install: no token needed), made once.
async fn schema() -> HttpResponse {
    static SCHEMA: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let body = SCHEMA.get_or_init(|| {
        let text = serde_json::to_vec_pretty(&crate::schema::document()).unwrap_or_default();
        Bytes::from(text)
    });
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/schema+json"),
        ))
        .body(body.clone())
}

/// `GET /status/events`: the last transitions, newest first (detail: the
/// token applies).
async fn events(_: Authorized, snapshots: web::Data<Snapshots>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, JSON))
        .insert_header((CACHE_CONTROL, NO_CACHE))
        .body(snapshots.load().events.clone())
}

async fn status(_: Authorized, req: HttpRequest, snapshots: web::Data<Snapshots>) -> HttpResponse {
    respond(&req, &snapshots.load().status)
}

/// The snapshot's exposition, with the auth-failure counters (which change
/// per request, not per snapshot) written in before its `# EOF`.
async fn metrics(
    _: Authorized,
    snapshots: web::Data<Snapshots>,
    failures: web::Data<AuthFailures>,
    notifier: web::Data<crate::notify::Notifier>,
) -> HttpResponse {
    let rendered = snapshots.load().metrics.clone();
    let text = std::str::from_utf8(&rendered).unwrap_or_default();
    let head = text.strip_suffix("# EOF\n").unwrap_or(text);
    let body = format!(
        "{head}{}{}# EOF\n",
        failures.exposition(),
        notifier.shown().metrics
    );
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ))
        .insert_header((CACHE_CONTROL, NO_CACHE))
        .body(body)
}

/// `GET /status/notify`: each `[[notify]]` target's record.
async fn notify_status(
    _: Authorized,
    notifier: web::Data<crate::notify::Notifier>,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, JSON))
        .insert_header((CACHE_CONTROL, NO_CACHE))
        .body(notifier.shown().status.clone())
}

async fn section(_: Authorized, req: HttpRequest, snapshots: web::Data<Snapshots>) -> HttpResponse {
    let snap = snapshots.load();
    let name = req.match_info().get("section").unwrap_or("");
    match snap.section(name) {
        Some(r) => respond(&req, r),
        None => HttpResponse::NotFound()
            .insert_header((CONTENT_TYPE, JSON))
            .body(snap.unknown_section.clone()),
    }
}

/// `GET /status/{section}/{key}`: one of a section's own pages (a task's
/// history); a JSON 404 naming what was not found.
async fn page(_: Authorized, req: HttpRequest, snapshots: web::Data<Snapshots>) -> HttpResponse {
    let snap = snapshots.load();
    let info = req.match_info();
    let (name, key) = (
        info.get("section").unwrap_or(""),
        info.get("key").unwrap_or(""),
    );
    // actix-web leaves `%2F`, `%25` and `%2B` encoded in a match: the key as
    // sent, else wholly decoded (`encodeURIComponent` of any id).
    let decoded = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
    match snap.pages(name) {
        Some(p) => match p.pages.get(key).or_else(|| p.pages.get(decoded.as_ref())) {
            Some(r) => respond(&req, r),
            None => HttpResponse::NotFound()
                .insert_header((CONTENT_TYPE, JSON))
                .body(p.missing.clone()),
        },
        None => json_error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn health(
    req: HttpRequest,
    snapshots: web::Data<Snapshots>,
    access: web::Data<Access>,
) -> HttpResponse {
    let snap = snapshots.load();
    let body = if access.allows(&req) {
        &snap.health
    } else {
        &snap.health_public
    };
    HttpResponse::build(StatusCode::from_u16(snap.health_code).unwrap_or(StatusCode::OK))
        .insert_header((CONTENT_TYPE, JSON))
        .insert_header((CACHE_CONTROL, NO_CACHE))
        .body(body.clone())
}

async fn livez() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, JSON))
        .body(Bytes::from_static(b"{\"status\":\"alive\"}"))
}

async fn readyz(snapshots: web::Data<Snapshots>) -> HttpResponse {
    if snapshots.load().ready {
        HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, JSON))
            .body(Bytes::from_static(b"{\"ready\":true}"))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((CONTENT_TYPE, JSON))
            .body(Bytes::from_static(b"{\"ready\":false}"))
    }
}
