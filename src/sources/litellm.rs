//! The LiteLLM proxy, through reqwest: its free readiness probe
//! (`GET /health/readiness`, no key, no LLM call) and its model check
//! (`GET /health`: how many model endpoints are healthy, and the names of the
//! unhealthy ones — one paid request per model, so callers ask it rarely).
//!
//! Only counts and model names leave this module: the proxy's `error` texts,
//! `raw_request_typed_dict`, `api_base` and headers never do, and the key is
//! sent as a bearer token and never written anywhere.

use std::time::Duration;

use serde::Deserialize;

use crate::client::ReadError;
use crate::config::size_text;

/// What `/health` told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelHealth {
    pub healthy: u64,
    pub unhealthy: u64,
    /// Model names of the unhealthy endpoints, sorted: the first
    /// [`MAX_LISTED`] of them.
    pub unhealthy_models: Vec<String>,
    /// How many distinct names there were in all.
    pub unhealthy_names: u64,
}

/// The most unhealthy model names kept from one answer: a proxy listing
/// 100,000 costs the same to serve as one listing 50.
pub const MAX_LISTED: usize = 50;

/// Why the counts are unknown. Short, and free of anything the proxy said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    #[error("gateway unreachable")]
    Unreachable,
    /// No connection could be made: the request never reached the proxy, so
    /// it cost nothing and proved nothing (the proxy not started yet).
    #[error("gateway unreachable")]
    NotReached,
    #[error("gateway did not answer within {0}")]
    Timeout(String),
    #[error("gateway answered HTTP {0}")]
    Status(u16),
    #[error("gateway answer has no model counts yet")]
    NoCounts,
    #[error("gateway answer is not valid JSON")]
    Malformed,
    /// Over `[limits] gateway_body`: reading stopped there.
    #[error("gateway answer too large (over {0})")]
    TooLarge(String),
}

#[derive(Deserialize)]
struct Endpoint {
    model: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Answer {
    healthy_count: Option<u64>,
    unhealthy_count: Option<u64>,
    #[serde(default)]
    unhealthy_endpoints: Vec<Endpoint>,
}

/// What the readiness probe said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// 200: the proxy is up and ready to serve.
    Ready,
    /// It answered, with this non-200 status (503 while starting or stopping).
    NotReady(u16),
    /// No answer: refused, or nothing within the timeout.
    Unreachable,
}

/// Asks `{url}/health/readiness` (no key is sent: the probe needs none).
pub async fn readiness(client: &reqwest::Client, url: &str, timeout: Duration) -> Readiness {
    let req = client
        .get(format!("{}/health/readiness", url.trim_end_matches('/')))
        .timeout(timeout);
    match req.send().await {
        Ok(r) if r.status().as_u16() == 200 => Readiness::Ready,
        Ok(r) => Readiness::NotReady(r.status().as_u16()),
        Err(_) => Readiness::Unreachable,
    }
}

/// Parses a 200 answer's body.
pub fn parse(body: &[u8]) -> Result<ModelHealth, HealthError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|_| HealthError::Malformed)?;
    let (Some(healthy), Some(unhealthy)) = (answer.healthy_count, answer.unhealthy_count) else {
        return Err(HealthError::NoCounts);
    };
    let mut names: Vec<String> = answer
        .unhealthy_endpoints
        .into_iter()
        .filter_map(|e| e.model.and_then(|m| m.as_str().map(str::to_string)))
        .collect();
    names.sort_unstable();
    names.dedup();
    let total = names.len() as u64;
    names.truncate(MAX_LISTED);
    Ok(ModelHealth {
        healthy,
        unhealthy,
        unhealthy_models: names,
        unhealthy_names: total,
    })
}

/// Asks `{url}/health`, giving up after `timeout` or past `limit` bytes.
pub async fn health(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    timeout: Duration,
    limit: u64,
) -> Result<ModelHealth, HealthError> {
    let mut req = client
        .get(format!("{}/health", url.trim_end_matches('/')))
        .timeout(timeout);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            HealthError::Timeout(humantime::format_duration(timeout).to_string())
        } else if e.is_connect() {
            HealthError::NotReached
        } else {
            HealthError::Unreachable
        }
    })?;
    if resp.status().as_u16() != 200 {
        return Err(HealthError::Status(resp.status().as_u16()));
    }
    let body = crate::client::read_capped(resp, limit)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { limit } => HealthError::TooLarge(size_text(limit)),
            ReadError::Transport(e) if e.is_timeout() => {
                HealthError::Timeout(humantime::format_duration(timeout).to_string())
            }
            ReadError::Transport(_) => HealthError::Unreachable,
        })?;
    parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_names_only() {
        let body = br#"{"healthy_endpoints":[{"api_base":"http://127.0.0.1:1/v1","model":"openai/good","model_id":"x"}],
            "unhealthy_endpoints":[{"api_base":"http://127.0.0.1:2/v1","model":"openai/bad","model_id":"y",
              "error":"Traceback ... sk-secret","exception_status":500,"raw_request_typed_dict":{"raw_request_headers":{"Authorization":"Bearer sk-..."}}}],
            "healthy_count":1,"unhealthy_count":1}"#;
        let h = parse(body).unwrap();
        assert_eq!(
            h,
            ModelHealth {
                healthy: 1,
                unhealthy: 1,
                unhealthy_models: vec!["openai/bad".into()],
                unhealthy_names: 1,
            }
        );
    }

    #[test]
    fn unknown_is_not_zero() {
        assert_eq!(parse(b"{}"), Err(HealthError::NoCounts));
        assert_eq!(parse(b"<html>"), Err(HealthError::Malformed));
        assert_eq!(
            parse(br#"{"healthy_count":"1","unhealthy_count":0}"#),
            Err(HealthError::Malformed)
        );
    }
}
