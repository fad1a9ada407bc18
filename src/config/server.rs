//! `[server]`: the HTTP server's token, streams, connections and workers.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) token_env: Option<String>,
    pub(super) max_streams: Option<usize>,
    pub(super) max_connections: Option<usize>,
    pub(super) workers: Option<usize>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// When set, detail endpoints need `Authorization: Bearer <token>`.
    pub token_env: Option<String>,
    /// Most concurrent `/status/stream` clients.
    pub max_streams: usize,
    /// Most open connections (all workers together).
    pub max_connections: usize,
    /// HTTP worker threads; default: one.
    pub workers: usize,
}

pub(super) fn build(raw: RawServer) -> Result<ServerConfig, ConfigError> {
    // actix-web panics past 512 workers.
    if raw.workers.is_some_and(|w| !(1..=512).contains(&w)) {
        return Err(invalid("server.workers", "must be from 1 to 512"));
    }
    if raw
        .max_connections
        .is_some_and(|n| !(8..=1_000_000).contains(&n))
    {
        return Err(invalid(
            "server.max_connections",
            "must be from 8 to 1000000",
        ));
    }
    Ok(ServerConfig {
        token_env: raw.token_env,
        max_streams: raw.max_streams.unwrap_or(defaults::MAX_STREAMS),
        max_connections: raw.max_connections.unwrap_or(defaults::MAX_CONNECTIONS),
        workers: raw.workers.unwrap_or(defaults::WORKERS),
    })
}
