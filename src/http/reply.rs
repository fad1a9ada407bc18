//! The JSON error answer every handler gives: `{"error": "..."}` with its status.

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// A JSON error body with this status.
pub fn json_error(code: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(code)
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(serde_json::json!({ "error": message }).to_string())
}
