//! `[pynchy]`: where pynchy lives and how it runs (its root, database, zone,
//! scheduler, container limits, HTTP server and systemd unit). Raw as the
//! file says it, filled in from pynchy's own config by `discover.rs`, then
//! validated here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{bounded, bounded_any, defaults, invalid, secret, ConfigError, Resolver};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPynchy {
    pub(super) root: Option<PathBuf>,
    pub(super) database: Option<PathBuf>,
    pub(super) timezone: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(super) overdue_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) poll_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) container_timeout: Option<Duration>,
    pub(super) url: Option<String>,
    pub(super) max_concurrent: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub(super) unresponsive_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) restart_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) agent_slack: Option<Duration>,
    pub(super) systemd_unit: Option<String>,
    pub(super) systemd_bus: Option<String>,
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
    /// How late a scheduled run may be, beyond pynchy's poll interval,
    /// before it counts as overdue.
    pub overdue_grace: Duration,
    /// pynchy's scheduler polls this often.
    pub poll_interval: Duration,
    /// How long a due task may wait for its group's running container.
    pub container_timeout: Duration,
    /// pynchy's own HTTP server (its `[server] port` on loopback).
    pub url: String,
    /// The port of `url`: the process listening there is pynchy.
    pub port: u16,
    /// pynchy's `[container] max_concurrent`.
    pub max_concurrent: u64,
    /// How long pynchy may hold its port without answering before it is down.
    pub unresponsive_grace: Duration,
    /// How long a deploy's restart, or a start, may take before it is down.
    pub restart_grace: Duration,
    /// How long a task's agent container may run past `container_timeout`.
    pub agent_slack: Duration,
    /// pynchy's systemd user unit.
    pub systemd_unit: String,
    /// The D-Bus address of pynchy's user manager: `None` when off.
    pub systemd_bus: Option<String>,
}

/// The port of pynchy's `url`, which must be `http://` (pynchy serves no TLS).
fn pynchy_port(url: &str) -> Result<u16, ConfigError> {
    let bad = || {
        invalid(
            "pynchy.url",
            format!("`{url}` is not an http:// URL like http://127.0.0.1:8484"),
        )
    };
    if !url.starts_with("http://") {
        return Err(bad());
    }
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.port_or_known_default())
        .ok_or_else(bad)
}

/// `[pynchy] systemd_bus`: `"off"`, an address, or (unset) the session bus
/// of `$DBUS_SESSION_BUS_ADDRESS`, else this user's `/run/user/<uid>/bus`.
fn systemd_bus(raw: Option<String>) -> Option<String> {
    match raw {
        Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
        Some(v) if !v.trim().is_empty() => Some(v),
        _ => secret("DBUS_SESSION_BUS_ADDRESS").or_else(|| {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            Some(format!("unix:path=/run/user/{uid}/bus"))
        }),
    }
}

/// `[pynchy]`, validated, with pynchy's own values already filled in.
pub(super) fn build(raw: RawPynchy, r: &Resolver) -> Result<PynchyConfig, ConfigError> {
    let url = raw
        .url
        .clone()
        .unwrap_or_else(|| defaults::PYNCHY_URL.to_string());
    let root = r.path(raw.root.as_deref().unwrap_or(Path::new(defaults::ROOT)));
    let database = match &raw.database {
        Some(p) => r.path(p),
        None => root.join(defaults::DATABASE),
    };
    let tz_name = raw.timezone.as_deref().unwrap_or(defaults::TIMEZONE);
    let timezone = tz_name.parse::<chrono_tz::Tz>().map_err(|_| {
        invalid(
            "pynchy.timezone",
            format!("`{tz_name}` is not an IANA time zone name like Europe/Berlin"),
        )
    })?;
    Ok(PynchyConfig {
        root,
        database,
        timezone,
        overdue_grace: bounded_any("pynchy.overdue_grace", raw.overdue_grace)?
            .unwrap_or(defaults::OVERDUE_GRACE),
        poll_interval: bounded("pynchy.poll_interval", raw.poll_interval)?
            .unwrap_or(defaults::POLL_INTERVAL),
        container_timeout: bounded_any("pynchy.container_timeout", raw.container_timeout)?
            .unwrap_or(defaults::CONTAINER_TIMEOUT),
        port: pynchy_port(&url)?,
        url,
        max_concurrent: match raw.max_concurrent {
            Some(0) => return Err(invalid("pynchy.max_concurrent", "must be at least 1")),
            Some(n) => n,
            None => defaults::MAX_CONCURRENT,
        },
        unresponsive_grace: bounded_any("pynchy.unresponsive_grace", raw.unresponsive_grace)?
            .unwrap_or(defaults::UNRESPONSIVE_GRACE),
        restart_grace: bounded_any("pynchy.restart_grace", raw.restart_grace)?
            .unwrap_or(defaults::RESTART_GRACE),
        agent_slack: bounded_any("pynchy.agent_slack", raw.agent_slack)?
            .unwrap_or(defaults::AGENT_SLACK),
        systemd_unit: raw
            .systemd_unit
            .unwrap_or_else(|| defaults::SYSTEMD_UNIT.to_string()),
        systemd_bus: systemd_bus(raw.systemd_bus),
    })
}
