//! What pynchy's own install says, taken where the config file is silent:
//! its server's port (our `pynchy.url` and `listen`), its scheduler and
//! container settings, its repos and its gateway. Each key taken records its
//! origin, for `pynchy-status config`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::pynchy::{Install, Origin};
use super::{ConfigError, GatewayMode, RawConfig, RawRepo};

pub(super) type Origins = BTreeMap<String, Origin>;

pub(super) fn set(origins: &mut Origins, key: &str, origin: Origin) {
    origins.entry(key.to_string()).or_insert(origin);
}

/// The listen address and the scheduler's settings from pynchy's install.
pub(super) fn discover_host(
    raw: &mut RawConfig,
    install: &Install,
    o: &mut Origins,
) -> Result<(), ConfigError> {
    let (port, origin) = install
        .number("server.port")?
        .unwrap_or((8484.0, Origin::Default));
    if raw.pynchy.url.is_none() {
        raw.pynchy.url = Some(format!("http://127.0.0.1:{}", port as u64));
        let from = format!("pynchy's [server] port ({origin})");
        set(o, "pynchy.url", Origin::Derived(from));
    }
    if raw.pynchy.max_concurrent.is_none() {
        if let Some((n, origin)) = install.number("container.max_concurrent")? {
            // pynchy clamps it to at least 1.
            raw.pynchy.max_concurrent = Some((n as u64).max(1));
            set(o, "pynchy.max_concurrent", origin);
        }
    }
    if raw.listen.is_none() {
        // pynchy's own server has that port: take the next one.
        raw.listen = Some(format!("127.0.0.1:{}", port as u64 + 1));
        let from = format!("pynchy's [server] port ({origin}) + 1");
        set(o, "listen", Origin::Derived(from));
    }
    if raw.pynchy.timezone.is_none() {
        let (tz, origin) = install.timezone()?;
        raw.pynchy.timezone = Some(tz);
        set(o, "pynchy.timezone", origin);
    }
    if raw.pynchy.poll_interval.is_none() {
        if let Some((secs, origin)) = install.number("scheduler.poll_interval")? {
            raw.pynchy.poll_interval = Some(Duration::from_secs_f64(secs));
            set(o, "pynchy.poll_interval", origin);
        }
    }
    if raw.pynchy.container_timeout.is_none() {
        if let Some((ms, origin)) = install.number("container.timeout_ms")? {
            raw.pynchy.container_timeout = Some(Duration::from_secs_f64(ms / 1000.0));
            set(o, "pynchy.container_timeout", origin);
        }
    }
    Ok(())
}

/// The repos and the gateway from pynchy's install; returns the master key.
pub(super) fn discover_services(
    raw: &mut RawConfig,
    install: &Install,
    o: &mut Origins,
) -> Result<Option<String>, ConfigError> {
    if raw.repos.is_empty() {
        for (slug, path, auto_clone) in install.repos()? {
            let worktrees = install.root.join("data/worktrees").join(&slug);
            raw.repos.push(RawRepo {
                slug,
                path,
                worktrees: Some(worktrees),
                auto_clone,
            });
            set(o, "repos", Origin::PynchyToml);
        }
    }
    if raw.gateway.mode.is_none() {
        let config = install.string("gateway.litellm_config")?;
        let litellm = config.as_ref().is_some_and(|(c, _)| !c.is_empty());
        raw.gateway.mode = Some(if litellm {
            GatewayMode::Litellm
        } else {
            GatewayMode::Builtin
        });
        let from = Origin::Derived("pynchy's [gateway] litellm_config".into());
        set(o, "gateway.mode", from);
    }
    if raw.gateway.url.is_none() {
        let (port, origin) = install
            .number("gateway.port")?
            .unwrap_or((4010.0, Origin::Default));
        raw.gateway.url = Some(format!("http://127.0.0.1:{}", port as u64));
        let from = Origin::Derived(format!("pynchy's [gateway] port ({origin})"));
        set(o, "gateway.url", from);
    }
    let key = install.string("gateway.master_key")?;
    if let Some((_, origin)) = &key {
        set(o, "gateway.master_key", origin.clone());
    }
    Ok(key.map(|(k, _)| k).filter(|k| !k.is_empty()))
}
