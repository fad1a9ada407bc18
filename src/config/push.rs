//! `[push]` (older name `[ingest]`): state a patched pynchy pushes, or a host serves to pull.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPush {
    pub(super) token_env: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(super) ttl: Option<Duration>,
    pub(super) pull_url: Option<String>,
}

/// `[push]` (older name `[ingest]`): state a patched pynchy pushes (or a host serves to pull).
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub token_env: String,
    pub ttl: Duration,
    pub pull_url: Option<String>,
}
