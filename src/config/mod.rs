//! The TOML config file: its keys, their defaults, and validation with clear errors.
//!
//! The file is read with serde (`deny_unknown_fields` everywhere, so a typo is an
//! error that names the key), durations are humantime strings (`"5s"`, `"1m 30s"`),
//! and relative paths resolve against the config file's own folder. Every
//! default is named once, in [`defaults`]; `examples/pynchy-status.toml` states
//! them all (a test holds it to that).
//!
//! A leaf of the module graph: it names sections by [`SectionId`] and imports
//! nothing else of the crate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::section_id::SectionId;

mod discover;
mod limits;
mod push;
mod repos;
mod rollup;
mod server;
pub use limits::LimitsConfig;
use limits::RawLimits;
pub use push::PushConfig;
use push::RawPush;
use repos::RawRepo;
pub use repos::RepoConfig;
use rollup::RawRollup;
pub use rollup::RollupConfig;
use server::RawServer;
pub use server::ServerConfig;
mod effective;
mod gateway;
pub use gateway::{GatewayConfig, GatewayMode};
mod llm;
pub use llm::LlmConfig;
mod notify;
pub use notify::{MinLevel, NotifyKind, NotifyTarget, UrlSource};
pub mod pynchy;
mod pynchy_table;
pub use pynchy_table::PynchyConfig;
use pynchy_table::RawPynchy;
mod sections;
pub use sections::SectionOverride;

pub use effective::render as effective_toml;
use pynchy::Install;
pub use pynchy::Origin;

pub mod defaults;

/// Default listen address of `serve` and `demo`.
pub const DEFAULT_LISTEN: &str = defaults::LISTEN;

pub use crate::file::size_text;
pub use defaults::{stated_defaults, OPTIONAL_KEYS};

/// A secret value: never printed (`Debug` shows `<set>` or `<unset>`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub Option<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "<set>" } else { "<unset>" })
    }
}

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

/// The shortest interval or timeout accepted: below it a section spins.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest duration accepted anywhere (one year): longer ones overflow
/// when they meet a clock.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Largest config file read (a config is a few KB; `/dev/zero` must not
/// take the daemon's memory).
pub const MAX_CONFIG_BYTES: u64 = crate::file::CONFIG;

/// Reads a config file of at most [`MAX_CONFIG_BYTES`].
fn read_capped(path: &Path) -> Result<String, ConfigError> {
    crate::file::read_text(path, MAX_CONFIG_BYTES).map_err(|e| file_error(path, e))
}

/// A file's read error as a config error naming the file.
pub(crate) fn file_error(path: &Path, e: crate::file::FileError) -> ConfigError {
    match e {
        crate::file::FileError::Io { source, .. } => ConfigError::Read {
            path: path.to_path_buf(),
            source,
        },
        crate::file::FileError::TooLarge { cap, .. } => ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!("larger than {cap}: not a config file"),
        },
        crate::file::FileError::NotText { .. } => ConfigError::Parse {
            path: path.to_path_buf(),
            message: "not UTF-8 text".into(),
        },
    }
}

/// `[watch] enabled` from `PYNCHY_STATUS_WATCH` (`off`, `0`, `false`: polling;
/// how the whole test suite runs in polling mode), when the file does not say.
fn watch_from_env(origins: &mut BTreeMap<String, Origin>) -> Option<bool> {
    let v = std::env::var("PYNCHY_STATUS_WATCH").ok()?;
    origins.insert("watch.enabled".into(), Origin::Environment);
    Some(!matches!(
        v.to_ascii_lowercase().as_str(),
        "off" | "0" | "false"
    ))
}

/// `value` when it is at most a year (zero allowed), else the key's error.
fn bounded_any(key: &str, value: Option<Duration>) -> Result<Option<Duration>, ConfigError> {
    match value {
        Some(v) if v > MAX_DURATION => Err(invalid(key, "must be at most 1 year")),
        v => Ok(v),
    }
}

/// `value` when it is from 100 ms to a year, else the key's error.
fn bounded(key: &str, value: Option<Duration>) -> Result<Option<Duration>, ConfigError> {
    match value {
        Some(v) if v < MIN_INTERVAL || v > MAX_DURATION => {
            Err(invalid(key, "must be from 100ms to 1 year"))
        }
        v => Ok(v),
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// What a rule's trigger does to the verdict (`[rollup.severity]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Down,
    Degraded,
    Ignore,
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
    gateway: gateway::RawGateway,
    #[serde(default)]
    llm: llm::RawLlm,
    #[serde(default)]
    notify: Vec<notify::RawTarget>,
    #[serde(default)]
    /// `[push]`; `[ingest]` is its older name, still read.
    #[serde(alias = "ingest")]
    push: RawPush,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    rollup: RawRollup,
    #[serde(default)]
    sections: BTreeMap<String, SectionOverride>,
    #[serde(default)]
    watch: RawWatch,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    enabled: Option<bool>,
}

/// `[watch]`: follow changes by events (file, database, Docker) or poll.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// False: every section reads its source every interval, as before.
    pub enabled: bool,
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
    /// `[llm]`: LiteLLM usage (the `llm` section).
    pub llm: LlmConfig,
    /// `[[notify]]`: where problems are told.
    pub notify: Vec<NotifyTarget>,
    pub push: PushConfig,
    pub server: ServerConfig,
    /// Per-section schedule overrides.
    pub sections: BTreeMap<SectionId, SectionOverride>,
    pub rollup: RollupConfig,
    pub watch: WatchConfig,
    pub limits: LimitsConfig,
    /// Where each key's value came from, by dotted key (`pynchy-status config`).
    pub origins: BTreeMap<String, Origin>,
}

/// Resolves relative paths against the config file's folder.
struct Resolver<'a>(&'a Path);

impl Resolver<'_> {
    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.0.join(p)
        }
    }
}

fn listen(raw: Option<&str>) -> Result<SocketAddr, ConfigError> {
    let text = raw.unwrap_or(defaults::LISTEN);
    text.parse::<SocketAddr>().map_err(|e| {
        invalid(
            "listen",
            format!("`{text}` is not an address like 127.0.0.1:8484 ({e})"),
        )
    })
}

/// Every dotted key set in a TOML text (tables descended, arrays as one key).
fn keys_of(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => keys_of(t, &key, out),
            _ => out.push(key),
        }
    }
}

use discover::{discover_host, discover_services};

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::resolve(Some(path), None)
    }

    /// The effective config: pynchy-status's own `file` (if any) over the
    /// pynchy install at `pynchy_root` (the command line's, else the file's
    /// `[pynchy] root` when that folder has a `config.toml`), over the defaults.
    pub fn resolve(file: Option<&Path>, pynchy_root: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, base) = match file {
            Some(path) => {
                let text = read_capped(path)?;
                let base = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                (text, base)
            }
            None => (String::new(), PathBuf::from(".")),
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        let named = |e: ConfigError| match (e, file) {
            (ConfigError::Parse { message, .. }, Some(path)) => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            (other, _) => other,
        };
        let mut cfg = Config::build(&text, &base, pynchy_root).map_err(named)?;
        cfg.source = file.map(Path::to_path_buf);
        // The environment, where the file does not say: read here, not in
        // `build`, so `parse` (and the stated defaults) never depend on it.
        if !cfg.origins.contains_key("watch.enabled") {
            if let Some(on) = watch_from_env(&mut cfg.origins) {
                cfg.watch.enabled = on;
            }
        }
        Ok(cfg)
    }

    /// Parses config text, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        Config::build(text, base, None)
    }

    fn build(text: &str, base: &Path, cli_root: Option<&Path>) -> Result<Config, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string().trim().replace('\n', " | "),
        };
        let table: toml::Table = text.parse().map_err(parse_error)?;
        let mut raw: RawConfig = toml::from_str(text).map_err(parse_error)?;
        let mut own = Vec::new();
        keys_of(&table, "", &mut own);
        let mut origins: BTreeMap<String, Origin> =
            own.into_iter().map(|k| (k, Origin::ThisFile)).collect();
        let r = Resolver(base);
        let root = match (cli_root, &raw.pynchy.root) {
            (Some(root), _) => {
                origins.insert("pynchy.root".into(), Origin::CommandLine);
                Some(std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()))
            }
            (None, Some(root)) if r.path(root).join("config.toml").is_file() => Some(r.path(root)),
            _ => None,
        };
        let mut master_key = None;
        if let Some(root) = root {
            let install = Install::read(&root)?;
            raw.pynchy.root = Some(root);
            discover_host(&mut raw, &install, &mut origins)?;
            master_key = discover_services(&mut raw, &install, &mut origins)?;
        }
        let mut gateway = gateway::gateway(raw.gateway, &r)?;
        gateway.master_key = Secret(master_key);
        Ok(Config {
            source: None,
            listen: listen(raw.listen.as_deref())?,
            pynchy: pynchy_table::build(raw.pynchy, &r)?,
            repos: repos::build(raw.repos, &r)?,
            gateway,
            llm: llm::llm(raw.llm)?,
            notify: notify::targets(raw.notify)?,
            push: PushConfig {
                token_env: raw
                    .push
                    .token_env
                    .unwrap_or_else(|| defaults::PUSH_TOKEN_ENV.into()),
                ttl: bounded("push.ttl", raw.push.ttl)?.unwrap_or(defaults::PUSH_TTL),
                pull_url: raw.push.pull_url,
            },
            server: server::build(raw.server)?,
            sections: sections::build(raw.sections)?,
            rollup: rollup::build(raw.rollup)?,
            watch: WatchConfig {
                enabled: raw.watch.enabled.unwrap_or(defaults::WATCH),
            },
            limits: limits::build(raw.limits)?,
            origins,
        })
    }

    /// Checks that every `[rollup.severity]` key names one of `rules`.
    pub fn check_rule_names(&self, rules: &[&str]) -> Result<(), ConfigError> {
        for rule in self.rollup.severity.keys() {
            if !rules.contains(&rule.as_str()) {
                return Err(invalid(
                    format!("rollup.severity.{rule}"),
                    format!("unknown rule; known rules: {}", rules.join(", ")),
                ));
            }
        }
        for (i, t) in self.notify.iter().enumerate() {
            if let Some(r) = t.rules.iter().find(|r| !rules.contains(&r.as_str())) {
                return Err(invalid(
                    format!("notify[{i}].rules"),
                    format!("unknown rule {r}; known rules: {}", rules.join(", ")),
                ));
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
        assert_eq!(cfg.push.ttl, Duration::from_secs(30));
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
