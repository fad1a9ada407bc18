//! A pynchy install, read the way pynchy reads its own settings: `config.toml`
//! in its root, then `.env` there, then the process environment, the later
//! winning, with `__` nesting sections (`GATEWAY__MASTER_KEY`,
//! `SCHEDULER__TIMEZONE`), case-insensitive. Only the keys pynchy-status uses
//! are looked at; the rest of pynchy's schema is its own business.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Where a setting came from (`pynchy-status config` shows it beside each key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    /// pynchy's `config.toml`.
    PynchyToml,
    /// pynchy's `.env`.
    DotEnv,
    /// This process's environment.
    Environment,
    /// pynchy-status's own config file.
    ThisFile,
    CommandLine,
    /// Worked out from other settings; says from what.
    Derived(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::PynchyToml => f.write_str("pynchy's config.toml"),
            Origin::DotEnv => f.write_str("pynchy's .env"),
            Origin::Environment => f.write_str("environment"),
            Origin::ThisFile => f.write_str("this config file"),
            Origin::CommandLine => f.write_str("command line"),
            Origin::Derived(from) => write!(f, "derived from {from}"),
        }
    }
}

/// One value found in the install: as text (env values are text) or TOML.
#[derive(Debug, Clone)]
pub enum Found {
    Text(String),
    Toml(toml::Value),
}

impl Found {
    fn as_string(&self) -> Option<String> {
        match self {
            Found::Text(s) => Some(s.clone()),
            Found::Toml(toml::Value::String(s)) => Some(s.clone()),
            Found::Toml(_) => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Found::Text(s) => s.trim().parse().ok(),
            Found::Toml(toml::Value::Integer(i)) => Some(*i as f64),
            Found::Toml(toml::Value::Float(f)) => Some(*f),
            Found::Toml(_) => None,
        }
    }
}

/// A pynchy install's settings.
#[derive(Debug)]
pub struct Install {
    pub root: PathBuf,
    toml_path: PathBuf,
    toml_text: String,
    toml: toml::Table,
    /// `.env`'s keys, lower-cased.
    dotenv: BTreeMap<String, String>,
    /// The environment's keys, lower-cased.
    env: BTreeMap<String, String>,
}

fn lower_keys(pairs: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
    pairs.map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
}

impl Install {
    /// Reads `root/config.toml` (missing: every default) and `root/.env`.
    pub fn read(root: &Path) -> Result<Install, ConfigError> {
        let toml_path = root.join("config.toml");
        let toml_text = match crate::file::read_text(&toml_path, crate::file::CONFIG) {
            Ok(t) => t,
            Err(e) if e.kind() == Some(std::io::ErrorKind::NotFound) => String::new(),
            Err(e) => return Err(super::file_error(&toml_path, e)),
        };
        let toml: toml::Table =
            toml_text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: toml_path.clone(),
                    message: e.to_string().trim().replace('\n', " | "),
                })?;
        let env_path = root.join(".env");
        let dotenv = match crate::file::read(&env_path, crate::file::CONFIG) {
            Ok(bytes) => {
                let pairs: Result<Vec<(String, String)>, _> =
                    dotenvy::from_read_iter(bytes.as_slice()).collect();
                lower_keys(
                    pairs
                        .map_err(|e| ConfigError::Parse {
                            path: env_path.clone(),
                            message: e.to_string(),
                        })?
                        .into_iter(),
                )
            }
            Err(e) if e.kind() == Some(std::io::ErrorKind::NotFound) => BTreeMap::new(),
            Err(e) => return Err(super::file_error(&env_path, e)),
        };
        Ok(Install {
            root: root.to_path_buf(),
            toml_path,
            toml_text,
            toml,
            dotenv,
            env: lower_keys(std::env::vars()),
        })
    }

    /// A nested key (`gateway.port`) as pynchy resolves it: the environment,
    /// then `.env` (as `GATEWAY__PORT`), then `config.toml`.
    pub fn get(&self, key: &str) -> Option<(Found, Origin)> {
        let env_key = key.replace('.', "__");
        if let Some(v) = self.env.get(&env_key) {
            return Some((Found::Text(v.clone()), Origin::Environment));
        }
        if let Some(v) = self.dotenv.get(&env_key) {
            return Some((Found::Text(v.clone()), Origin::DotEnv));
        }
        let mut parts = key.split('.');
        let mut v = self.toml.get(parts.next()?)?;
        for p in parts {
            v = v.as_table()?.get(p)?;
        }
        Some((Found::Toml(v.clone()), Origin::PynchyToml))
    }

    /// The line of `key` in `config.toml`, for an error message.
    fn line_of(&self, key: &str) -> Option<usize> {
        let (table, leaf) = key.rsplit_once('.')?;
        let header = format!("[{table}]");
        let mut in_table = false;
        for (i, line) in self.toml_text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                in_table = t == header;
            } else if in_table && t.split('=').next().map(str::trim) == Some(leaf) {
                return Some(i + 1);
            }
        }
        None
    }

    fn wrong(&self, key: &str, origin: &Origin, what: &str) -> ConfigError {
        let at = match (origin, self.line_of(key)) {
            (Origin::PynchyToml, Some(line)) => {
                format!("{}, line {line}", self.toml_path.display())
            }
            (Origin::PynchyToml, None) => self.toml_path.display().to_string(),
            (other, _) => other.to_string(),
        };
        ConfigError::Parse {
            path: PathBuf::from(at),
            message: format!("key `{key}`: {what}"),
        }
    }

    /// A text setting.
    pub fn string(&self, key: &str) -> Result<Option<(String, Origin)>, ConfigError> {
        let Some((v, origin)) = self.get(key) else {
            return Ok(None);
        };
        match v.as_string() {
            Some(s) => Ok(Some((s, origin))),
            None => Err(self.wrong(key, &origin, "must be a string")),
        }
    }

    /// A number setting.
    pub fn number(&self, key: &str) -> Result<Option<(f64, Origin)>, ConfigError> {
        let Some((v, origin)) = self.get(key) else {
            return Ok(None);
        };
        match v.as_f64() {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(Some((n, origin))),
            _ => Err(self.wrong(key, &origin, "must be a non-negative number")),
        }
    }

    /// Every `[repos."owner/repo"]` with its `path` (relative to the root), or
    /// pynchy's auto-clone location `data/repos/<owner>/<repo>` (then `true`).
    pub fn repos(&self) -> Result<Vec<(String, PathBuf, bool)>, ConfigError> {
        let Some(repos) = self.toml.get("repos") else {
            return Ok(Vec::new());
        };
        let Some(repos) = repos.as_table() else {
            return Err(self.wrong("repos", &Origin::PynchyToml, "must be a table"));
        };
        let mut out = Vec::new();
        for (slug, entry) in repos {
            let key = format!("repos.\"{slug}\".path");
            match entry.get("path") {
                Some(toml::Value::String(p)) => out.push((slug.clone(), self.root.join(p), false)),
                Some(_) => return Err(self.wrong(&key, &Origin::PynchyToml, "must be a string")),
                None => out.push((slug.clone(), self.root.join("data/repos").join(slug), true)),
            }
        }
        Ok(out)
    }

    /// The scheduler's zone by pynchy's rule: `[scheduler] timezone`, else
    /// `TZ` (the environment, or `.env`, which pynchy loads into it), else
    /// the zone `/etc/localtime` links to, else UTC.
    pub fn timezone(&self) -> Result<(String, Origin), ConfigError> {
        if let Some((tz, origin)) = self.string("scheduler.timezone")? {
            if !tz.is_empty() {
                return Ok((tz, origin));
            }
        }
        if let Some(tz) = self.env.get("tz").filter(|t| !t.is_empty()) {
            return Ok(zone_of_tz(tz, Origin::Environment));
        }
        if let Some(tz) = self.dotenv.get("tz").filter(|t| !t.is_empty()) {
            return Ok(zone_of_tz(tz, Origin::DotEnv));
        }
        if let Some(tz) = localtime_zone(Path::new("/etc/localtime")) {
            return Ok((tz, Origin::Derived("the /etc/localtime symlink".into())));
        }
        Ok(("UTC".into(), Origin::Default))
    }
}

/// A `TZ` value as a zone name. pynchy runs with any `TZ` (it hands it on
/// verbatim), so none refuses a start here: an IANA name is itself; a file
/// (`:/etc/localtime`, `/usr/share/zoneinfo/Europe/Berlin`) is the zone it
/// is or links to; anything else (a POSIX rule such as `UTC0` or
/// `CET-1CEST,M3.5.0,M10.5.0/3`) cannot be followed through DST here: UTC,
/// with a warning and the origin saying so.
fn zone_of_tz(tz: &str, origin: Origin) -> (String, Origin) {
    let name = tz.strip_prefix(':').unwrap_or(tz);
    if name.parse::<chrono_tz::Tz>().is_ok() {
        return (name.to_string(), origin);
    }
    if name.starts_with('/') {
        let path = Path::new(name);
        if let Some(zone) = localtime_zone(path).or_else(|| {
            let text = path.to_string_lossy();
            text.split_once("zoneinfo/").map(|(_, z)| z.to_string())
        }) {
            if zone.parse::<chrono_tz::Tz>().is_ok() {
                return (zone, Origin::Derived(format!("TZ={tz} ({origin})")));
            }
        }
    }
    tracing::warn!(
        tz,
        "TZ is not an IANA zone or a zone file: cron schedules are read in UTC"
    );
    (
        "UTC".into(),
        Origin::Derived(format!("TZ={tz} ({origin}), not an IANA zone")),
    )
}

/// The zone `/etc/localtime` links to: the part of its target after `zoneinfo/`.
fn localtime_zone(link: &Path) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    let text = target.to_string_lossy();
    let (_, zone) = text.split_once("zoneinfo/")?;
    Some(zone.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tz_values_pynchy_runs_with_never_refuse_a_start() {
        let zone = |tz: &str| zone_of_tz(tz, Origin::Environment).0;
        assert_eq!(zone("Europe/Berlin"), "Europe/Berlin");
        assert_eq!(zone(":Europe/Berlin"), "Europe/Berlin");
        assert_eq!(zone("/usr/share/zoneinfo/Asia/Kolkata"), "Asia/Kolkata");
        assert_eq!(zone("UTC0"), "UTC");
        assert_eq!(zone("CET-1CEST,M3.5.0,M10.5.0/3"), "UTC");
        assert!(zone(":/etc/localtime").parse::<chrono_tz::Tz>().is_ok());
    }
}
