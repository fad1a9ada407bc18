//! The TOML config file: its keys, their defaults, and validation with clear errors.
//!
//! The file is read with serde (`deny_unknown_fields` everywhere, so a typo is an
//! error that names the key), durations are humantime strings (`"5s"`, `"1m 30s"`),
//! and relative paths resolve against the config file's own folder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default listen address of `serve` and `demo`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8484";

/// A secret from the environment variable `var`: `None` when unset or empty.
/// Secrets are never read from the config file.
pub fn secret(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// Why a config could not be loaded. Each variant names the file or the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The schedule overrides of one `[sections.<name>]` table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SectionOverride {
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub stale_after: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    #[serde(default)]
    pynchy: RawPynchy,
    #[serde(default)]
    repos: Vec<RawRepo>,
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    rollup: RawRollup,
    #[serde(default)]
    sections: BTreeMap<String, SectionOverride>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollup {
    pending_deliveries_max: Option<u64>,
    ok_http_status: Option<u16>,
    degraded_http_status: Option<u16>,
    down_http_status: Option<u16>,
    #[serde(default)]
    severity: BTreeMap<String, crate::rollup::Severity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPynchy {
    root: Option<PathBuf>,
    database: Option<PathBuf>,
    timezone: Option<String>,
    #[serde(default, with = "humantime_serde")]
    overdue_grace: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    slug: String,
    path: PathBuf,
    worktrees: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    mode: Option<GatewayMode>,
    url: Option<String>,
    key_env: Option<String>,
    litellm_container: Option<String>,
    postgres_container: Option<String>,
    docker_host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    token_env: Option<String>,
    #[serde(default, with = "humantime_serde")]
    ttl: Option<Duration>,
    pull_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    token_env: Option<String>,
    max_streams: Option<usize>,
}

/// How pynchy reaches LLMs: the gateway section reports on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayMode {
    Litellm,
    Builtin,
    None,
}

impl GatewayMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayMode::Litellm => "litellm",
            GatewayMode::Builtin => "builtin",
            GatewayMode::None => "none",
        }
    }
}

/// `[pynchy]`: where pynchy lives.
#[derive(Debug, Clone)]
pub struct PynchyConfig {
    /// pynchy's checkout: the deploy section's repo.
    pub root: PathBuf,
    /// pynchy's SQLite state database (read-only).
    pub database: PathBuf,
    /// IANA zone for cron schedules.
    pub timezone: chrono_tz::Tz,
    /// How late a scheduled run may be before it counts as overdue.
    pub overdue_grace: Duration,
}

/// One `[[repos]]` entry.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    pub slug: String,
    pub path: PathBuf,
    /// Folder whose subfolders are this repo's linked worktrees.
    pub worktrees: Option<PathBuf>,
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
}

/// `[ingest]`: state pushed (or pulled) from the pynchy process.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub token_env: String,
    pub ttl: Duration,
    pub pull_url: Option<String>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// When set, detail endpoints need `Authorization: Bearer <token>`.
    pub token_env: Option<String>,
    /// Most concurrent `/status/stream` clients (default 64).
    pub max_streams: usize,
}

/// A validated config with every path absolute and every default filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    pub pynchy: PynchyConfig,
    pub repos: Vec<RepoConfig>,
    pub gateway: GatewayConfig,
    pub ingest: IngestConfig,
    pub server: ServerConfig,
    /// Per-section schedule overrides, by section name.
    pub sections: BTreeMap<String, SectionOverride>,
    /// `[rollup]`: thresholds, rule severities, `/health` status codes.
    pub rollup: crate::rollup::RollupConfig,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        let mut cfg = Config::parse(&text, &base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses config text, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string().trim().replace('\n', " | "),
        })?;
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text
            .parse::<SocketAddr>()
            .map_err(|e| ConfigError::Invalid {
                key: "listen".into(),
                message: format!("`{listen_text}` is not an address like 127.0.0.1:8484 ({e})"),
            })?;
        let root = resolve(raw.pynchy.root.as_deref().unwrap_or(Path::new(".")));
        let database = match &raw.pynchy.database {
            Some(p) => resolve(p),
            None => root.join("data").join("messages.db"),
        };
        let tz_name = raw.pynchy.timezone.unwrap_or_else(|| "UTC".to_string());
        let timezone = tz_name
            .parse::<chrono_tz::Tz>()
            .map_err(|_| ConfigError::Invalid {
                key: "pynchy.timezone".into(),
                message: format!("`{tz_name}` is not an IANA time zone name like Europe/Berlin"),
            })?;
        let mut repos = Vec::with_capacity(raw.repos.len());
        for (i, r) in raw.repos.into_iter().enumerate() {
            if r.slug.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    key: format!("repos[{i}].slug"),
                    message: "must not be empty".into(),
                });
            }
            if repos.iter().any(|x: &RepoConfig| x.slug == r.slug) {
                return Err(ConfigError::Invalid {
                    key: format!("repos[{i}].slug"),
                    message: format!("`{}` is listed twice", r.slug),
                });
            }
            repos.push(RepoConfig {
                slug: r.slug,
                path: resolve(&r.path),
                worktrees: r.worktrees.as_deref().map(resolve),
            });
        }
        let gateway = GatewayConfig {
            mode: raw.gateway.mode.unwrap_or(GatewayMode::Litellm),
            url: raw
                .gateway
                .url
                .unwrap_or_else(|| "http://127.0.0.1:4000".into()),
            key_env: raw
                .gateway
                .key_env
                .unwrap_or_else(|| "GATEWAY__MASTER_KEY".into()),
            litellm_container: raw
                .gateway
                .litellm_container
                .unwrap_or_else(|| "pynchy-litellm".into()),
            postgres_container: raw
                .gateway
                .postgres_container
                .unwrap_or_else(|| "pynchy-litellm-db".into()),
            docker_host: raw.gateway.docker_host.unwrap_or_else(|| {
                std::env::var("DOCKER_HOST")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
            }),
        };
        let ingest = IngestConfig {
            token_env: raw
                .ingest
                .token_env
                .unwrap_or_else(|| "PYNCHY_STATUS_TOKEN".into()),
            ttl: raw.ingest.ttl.unwrap_or(Duration::from_secs(30)),
            pull_url: raw.ingest.pull_url,
        };
        for (name, o) in &raw.sections {
            for (key, value) in [
                ("interval", o.interval),
                ("timeout", o.timeout),
                ("stale_after", o.stale_after),
            ] {
                if value == Some(Duration::ZERO) {
                    return Err(ConfigError::Invalid {
                        key: format!("sections.{name}.{key}"),
                        message: "must be longer than zero".into(),
                    });
                }
            }
        }
        let defaults = crate::rollup::RollupConfig::default();
        for rule in raw.rollup.severity.keys() {
            if !crate::rollup::RULES.iter().any(|(n, _, _)| n == rule) {
                let known: Vec<&str> = crate::rollup::RULES.iter().map(|(n, _, _)| *n).collect();
                return Err(ConfigError::Invalid {
                    key: format!("rollup.severity.{rule}"),
                    message: format!("unknown rule; known rules: {}", known.join(", ")),
                });
            }
        }
        for (key, code) in [
            ("ok_http_status", raw.rollup.ok_http_status),
            ("degraded_http_status", raw.rollup.degraded_http_status),
            ("down_http_status", raw.rollup.down_http_status),
        ] {
            if code.is_some_and(|c| !(200..=599).contains(&c)) {
                return Err(ConfigError::Invalid {
                    key: format!("rollup.{key}"),
                    message: "must be an HTTP status from 200 to 599".into(),
                });
            }
        }
        let rollup = crate::rollup::RollupConfig {
            pending_deliveries_max: raw
                .rollup
                .pending_deliveries_max
                .unwrap_or(defaults.pending_deliveries_max),
            severity: raw.rollup.severity,
            ok_http_status: raw.rollup.ok_http_status.unwrap_or(defaults.ok_http_status),
            degraded_http_status: raw
                .rollup
                .degraded_http_status
                .unwrap_or(defaults.degraded_http_status),
            down_http_status: raw
                .rollup
                .down_http_status
                .unwrap_or(defaults.down_http_status),
        };
        Ok(Config {
            source: None,
            rollup,
            listen,
            pynchy: PynchyConfig {
                root,
                database,
                timezone,
                overdue_grace: raw.pynchy.overdue_grace.unwrap_or(Duration::from_secs(300)),
            },
            repos,
            gateway,
            ingest,
            server: ServerConfig {
                token_env: raw.server.token_env,
                max_streams: raw.server.max_streams.unwrap_or(64),
            },
            sections: raw.sections,
        })
    }

    /// Checks that every `[sections.<name>]` names a known section.
    pub fn check_section_names(&self, known: &[&str]) -> Result<(), ConfigError> {
        for name in self.sections.keys() {
            if !known.contains(&name.as_str()) {
                return Err(ConfigError::Invalid {
                    key: format!("sections.{name}"),
                    message: format!("unknown section; known sections: {}", known.join(", ")),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_relative_paths() {
        let cfg = Config::parse("[pynchy]\nroot = \"p\"\n", Path::new("/etc/x")).unwrap();
        assert_eq!(cfg.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(cfg.pynchy.root, PathBuf::from("/etc/x/p"));
        assert_eq!(
            cfg.pynchy.database,
            PathBuf::from("/etc/x/p/data/messages.db")
        );
        assert_eq!(cfg.ingest.ttl, Duration::from_secs(30));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[pynchy]\nrooot = 1\n", Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("rooot"), "{e}");
    }

    #[test]
    fn bad_duration_is_named() {
        let e = Config::parse(
            "[sections.service]\ninterval = \"5 parsecs\"\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("interval"), "{e}");
    }
}
