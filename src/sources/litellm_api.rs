//! LiteLLM's management API, through reqwest: what the `llm` section reads
//! (LiteLLM 1.108.7, facts in `shared/spec/litellm-usage.md`). None of these
//! calls makes an LLM request: they read the proxy's Postgres or its memory.
//!
//! The calls, their bounds (timeout, body cap) and their errors are here;
//! what each answer holds and how it is parsed is in `litellm_answers.rs`.
//! The deprecated `/spend/logs` (up to 10,000 full rows) is never asked.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::client::ReadError;
use crate::config::size_text;
pub use crate::sources::litellm_answers::*;
/// Why a call gave nothing. Short, and free of anything the proxy said
/// beyond its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("LiteLLM unreachable")]
    Unreachable,
    #[error("LiteLLM did not answer {0} within {1}")]
    Timeout(&'static str, String),
    #[error("LiteLLM answered {0} with HTTP {1}")]
    Status(&'static str, u16),
    /// `/spend/logs/v2` and the other database-backed calls without a database.
    #[error("LiteLLM has no database (spend tracking off)")]
    NoDatabase,
    /// `/provider/budgets` without `provider_budget_config`: none set.
    #[error("LiteLLM has no provider budgets")]
    NotConfigured,
    #[error("LiteLLM's answer to {0} is not in the expected shape")]
    Malformed(&'static str),
    #[error("LiteLLM's answer to {0} is too large (over {1})")]
    TooLarge(&'static str, String),
}

/// One client for one proxy: its url, key, timeout and body cap.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub url: String,
    pub key: Option<String>,
    pub timeout: Duration,
    pub limit: u64,
}

/// What `/health/readiness` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// 200, with a database: spend tracking on.
    WithDatabase,
    /// 200, `"db": "Not connected"`: no database, spend tracking off.
    NoDatabase,
    /// Not ready (503: starting, stopping, database down), or no answer.
    NotReady,
}

#[derive(Deserialize)]
struct ReadinessAnswer {
    db: Option<String>,
}

/// One spend-log row: the fields the section keeps, nothing else.
#[derive(Debug, Clone, Copy)]
pub struct LogsQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub page: u32,
    pub page_size: u32,
}

/// Spend and requests by name (provider or model group) for one UTC day.
pub fn query_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

impl From<Malformed> for ApiError {
    fn from(m: Malformed) -> ApiError {
        ApiError::Malformed(m.0)
    }
}

impl Api {
    /// GETs `path` (with its query), returning the body and the answer's
    /// `Date` (our clock when it has none).
    async fn get(
        &self,
        what: &'static str,
        path: &str,
        keyed: bool,
    ) -> Result<(Vec<u8>, DateTime<Utc>), ApiError> {
        let mut req = self
            .client
            .get(format!("{}{path}", self.url.trim_end_matches('/')))
            .timeout(self.timeout);
        if let (true, Some(key)) = (keyed, &self.key) {
            req = req.bearer_auth(key);
        }
        let late = || ApiError::Timeout(what, humantime::format_duration(self.timeout).to_string());
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                late()
            } else {
                ApiError::Unreachable
            }
        })?;
        let status = resp.status().as_u16();
        let date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let body = crate::client::read_capped(resp, self.limit)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge { limit } => ApiError::TooLarge(what, size_text(limit)),
                ReadError::Transport(e) if e.is_timeout() => late(),
                ReadError::Transport(_) => ApiError::Unreachable,
            })?;
        if status != 200 {
            return Err(status_error(what, status, &body));
        }
        Ok((body.to_vec(), date))
    }

    /// `GET /health/readiness` (free, no key).
    pub async fn readiness(&self) -> Ready {
        match self
            .get("/health/readiness", "/health/readiness", false)
            .await
        {
            Ok((body, _)) => match serde_json::from_slice::<ReadinessAnswer>(&body) {
                Ok(ReadinessAnswer { db: Some(db) }) if db == "Not connected" => Ready::NoDatabase,
                Ok(_) => Ready::WithDatabase,
                Err(_) => Ready::NotReady,
            },
            Err(_) => Ready::NotReady,
        }
    }

    /// One page of `/spend/logs/v2`, LiteLLM's own health checks left out.
    pub async fn spend_logs(&self, q: LogsQuery) -> Result<LogsPage, ApiError> {
        let path = format!(
            "/spend/logs/v2?start_date={}&end_date={}&page={}&page_size={}\
             &sort_by=endTime&sort_order=desc&exclude_internal_health_checks=true",
            urlencoding(&query_time(q.from)),
            urlencoding(&query_time(q.to)),
            q.page,
            q.page_size
        );
        let (body, _) = self.get("/spend/logs/v2", &path, true).await?;
        Ok(parse_logs(&body)?)
    }

    /// `/user/daily/activity` for one UTC day.
    pub async fn daily(&self, day: NaiveDate) -> Result<Daily, ApiError> {
        let d = day.format("%Y-%m-%d");
        let path = format!("/user/daily/activity?start_date={d}&end_date={d}&page_size=1000");
        let (body, _) = self.get("/user/daily/activity", &path, true).await?;
        Ok(parse_daily(&body, day)?)
    }

    /// `/global/spend`: the last 30 days' spend.
    pub async fn global_spend(&self) -> Result<f64, ApiError> {
        #[derive(Deserialize)]
        struct Answer {
            spend: Option<f64>,
        }
        let (body, _) = self.get("/global/spend", "/global/spend", true).await?;
        let a: Answer =
            serde_json::from_slice(&body).map_err(|_| ApiError::Malformed("/global/spend"))?;
        Ok(a.spend.unwrap_or(0.0))
    }

    /// `/provider/budgets`; `None` when the proxy has no provider budgets.
    pub async fn provider_budgets(&self) -> Result<Option<Vec<ProviderBudget>>, ApiError> {
        match self
            .get("/provider/budgets", "/provider/budgets", true)
            .await
        {
            Ok((body, at)) => Ok(Some(parse_provider_budgets(&body, at)?)),
            Err(ApiError::NotConfigured) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `/model/info`: deployment budgets.
    pub async fn deployment_budgets(&self) -> Result<Vec<DeploymentBudget>, ApiError> {
        let (body, _) = self.get("/model/info", "/model/info", true).await?;
        Ok(parse_model_info(&body)?)
    }

    /// One page of `/key/list` (100 keys).
    pub async fn keys(&self, page: u32) -> Result<KeysPage, ApiError> {
        let path = format!("/key/list?return_full_object=true&size=100&page={page}");
        let (body, _) = self.get("/key/list", &path, true).await?;
        Ok(parse_keys(&body)?)
    }

    /// `/router/settings`.
    pub async fn router(&self) -> Result<RouterSettings, ApiError> {
        let (body, _) = self
            .get("/router/settings", "/router/settings", true)
            .await?;
        Ok(parse_router(&body)?)
    }
}

/// The error for a non-200 answer. `/spend/logs/v2`'s 401 "Prisma Client is
/// not initialized" is no database, not a bad key.
fn status_error(what: &'static str, status: u16, body: &[u8]) -> ApiError {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let no_db = [
        "Prisma Client is not initialized",
        "No db connected",
        "Database not connected",
    ]
    .iter()
    .any(|m| text.contains(m));
    if no_db {
        ApiError::NoDatabase
    } else if text.contains("No provider budget config found") {
        ApiError::NotConfigured
    } else {
        ApiError::Status(what, status)
    }
}

/// Percent-encodes a query value (dates: digits, `-`, `:` and a space).
fn urlencoding(s: &str) -> String {
    s.replace(' ', "%20").replace(':', "%3A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_database_is_not_a_bad_key() {
        let body = br#"{"error":{"message":"Prisma Client is not initialized","type":"internal_error","param":"None","code":"401"}}"#;
        assert_eq!(
            status_error("/spend/logs/v2", 401, body),
            ApiError::NoDatabase
        );
        assert_eq!(
            status_error(
                "/spend/logs/v2",
                401,
                br#"{"error":{"message":"Invalid key"}}"#
            ),
            ApiError::Status("/spend/logs/v2", 401)
        );
    }
}
