//! `[gateway]`: how pynchy reaches LLMs, and where the gateway and `llm`
//! sections find the LiteLLM proxy and its containers. Its own file, as
//! `[llm]`'s (vector's host_metrics keeps each collector's config so).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{bounded_any, defaults, invalid, secret, ConfigError, Resolver, Secret};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub(super) mode: Option<GatewayMode>,
    pub(super) url: Option<String>,
    pub(super) key_env: Option<String>,
    pub(super) litellm_container: Option<String>,
    pub(super) postgres_container: Option<String>,
    pub(super) docker_host: Option<String>,
    pub(super) models_interval: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(super) models_min_gap: Option<Duration>,
    pub(super) ca_file: Option<PathBuf>,
}

/// How pynchy reaches LLMs: the gateway section reports on it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum GatewayMode {
    Litellm,
    Builtin,
    None,
}

impl GatewayMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            GatewayMode::Litellm => "litellm",
            GatewayMode::Builtin => "builtin",
            GatewayMode::None => "none",
        }
    }
}

/// `[gateway]`.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub mode: GatewayMode,
    pub url: String,
    /// Name of the env var holding the LiteLLM master key (never the key itself).
    pub key_env: String,
    pub litellm_container: String,
    pub postgres_container: String,
    pub docker_host: String,
    /// The key found in pynchy's own settings (`[gateway] master_key`,
    /// `GATEWAY__MASTER_KEY` in its `.env`); `key_env` wins when set.
    pub master_key: Secret,
    /// How often the proxy's paid `/health` model check runs; `None`: never
    /// (`"off"`). Also once at start-up and on `POST /refresh/gateway`.
    pub models_interval: Option<Duration>,
    /// The least time between two paid model checks, whatever asks.
    pub models_min_gap: Duration,
    /// A PEM file of CA certificates trusted for an `https://` url, besides
    /// the system's.
    pub ca_file: Option<PathBuf>,
}

/// `"off"`, or a humantime duration of at least a second.
fn models_interval(raw: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    let Some(text) = raw else {
        return Ok(Some(defaults::MODELS_INTERVAL));
    };
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match humantime::parse_duration(text) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(Some(d)),
        Ok(_) => Err(invalid(
            "gateway.models_interval",
            "must be at least 1s (each check is one paid request per model), or \"off\"",
        )),
        Err(e) => Err(invalid(
            "gateway.models_interval",
            format!("`{text}` is neither a duration like \"10m\" nor \"off\" ({e})"),
        )),
    }
}

/// A PEM file that holds at least one certificate.
fn ca_file(path: PathBuf) -> Result<PathBuf, ConfigError> {
    let key = "gateway.ca_file";
    let text =
        crate::file::read_text(&path, crate::file::PEM).map_err(|e| invalid(key, e.to_string()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid(
            key,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(path)
}

pub(super) fn gateway(raw: RawGateway, r: &Resolver) -> Result<GatewayConfig, ConfigError> {
    let or = |v: Option<String>, d: &str| v.unwrap_or_else(|| d.to_string());
    let models_interval = models_interval(raw.models_interval.as_deref())?;
    let models_min_gap = bounded_any("gateway.models_min_gap", raw.models_min_gap)?
        .unwrap_or(defaults::MODELS_MIN_GAP);
    let ca_file = raw.ca_file.map(|p| ca_file(r.path(&p))).transpose()?;
    if let Some(url) = &raw.url {
        let scheme = url.split("://").next().unwrap_or("");
        if !url.contains("://") || !matches!(scheme, "http" | "https") {
            return Err(invalid(
                "gateway.url",
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
    }
    Ok(GatewayConfig {
        mode: raw.mode.unwrap_or(defaults::GATEWAY_MODE),
        url: or(raw.url, defaults::GATEWAY_URL),
        key_env: or(raw.key_env, defaults::GATEWAY_KEY_ENV),
        litellm_container: or(raw.litellm_container, defaults::LITELLM_CONTAINER),
        postgres_container: or(raw.postgres_container, defaults::POSTGRES_CONTAINER),
        docker_host: raw
            .docker_host
            .or_else(|| secret("DOCKER_HOST"))
            .unwrap_or_else(|| defaults::DOCKER_HOST.to_string()),
        master_key: Secret(None),
        models_interval,
        models_min_gap,
        ca_file,
    })
}
