//! `[[notify]]`: where problems are told (Alertmanager, Slack, ntfy, a
//! webhook), each target in its own table. Secrets (a Slack webhook URL,
//! tokens) are named by the env var that holds them, never written here.

use std::time::Duration;

use serde::Deserialize;

use super::{bounded_any, invalid, ConfigError};

/// What a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    Alertmanager,
    Slack,
    Ntfy,
    Webhook,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Alertmanager => "alertmanager",
            NotifyKind::Slack => "slack",
            NotifyKind::Ntfy => "ntfy",
            NotifyKind::Webhook => "webhook",
        }
    }
}

/// The lowest level that notifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MinLevel {
    Degraded,
    Down,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    name: Option<String>,
    kind: NotifyKind,
    url: Option<String>,
    url_env: Option<String>,
    token_env: Option<String>,
    min_level: Option<MinLevel>,
    #[serde(default)]
    sections: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
    resolved: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    repeat: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    group_wait: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    resend: Option<Duration>,
    queue: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    retry_for: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    instance: Option<String>,
    link: Option<String>,
}

/// Where the target's URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// Written in the config (not a secret).
    Given(String),
    /// Read from this env var when sending (a secret: never logged or shown).
    Env(String),
}

/// One `[[notify]]` target, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyTarget {
    pub name: String,
    pub kind: NotifyKind,
    pub url: UrlSource,
    /// Env var of a bearer token (ntfy, webhook).
    pub token_env: Option<String>,
    pub min_level: MinLevel,
    /// Only these sections' reasons (empty: all).
    pub sections: Vec<String>,
    /// Only these rules' reasons (empty: all).
    pub rules: Vec<String>,
    /// Whether resolutions are sent.
    pub resolved: bool,
    /// A problem still there is told again this often; `None`: never.
    pub repeat: Option<Duration>,
    /// Changes within this window make one message.
    pub group_wait: Duration,
    /// Alertmanager: active alerts are sent again this often (it forgets an
    /// alert not re-sent within its `resolve_timeout`, 5 min by default).
    pub resend: Duration,
    /// Messages waiting at most; past it the oldest are dropped (counted).
    pub queue: usize,
    /// A message is retried with backoff this long, then dropped (counted).
    pub retry_for: Duration,
    pub timeout: Duration,
    /// The `instance` label and the name in messages (default: the host name).
    pub instance: String,
    /// A link to the dashboard, put in messages.
    pub link: Option<String>,
}

pub const REPEAT: Duration = Duration::from_secs(4 * 3600);
pub const GROUP_WAIT: Duration = Duration::from_secs(5);
pub const RESEND: Duration = Duration::from_secs(60);
pub const QUEUE: usize = 100;
pub const RETRY_FOR: Duration = Duration::from_secs(600);
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The machine's host name (the default `instance`).
fn hostname() -> String {
    crate::file::read_text(std::path::Path::new("/proc/sys/kernel/hostname"), 4096)
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "pynchy".into())
}

/// Where a target's URL comes from: given, or (a secret) from an env var.
fn url(
    kind: NotifyKind,
    given: Option<String>,
    env: Option<String>,
    key: &dyn Fn(&str) -> String,
) -> Result<UrlSource, ConfigError> {
    Ok(match (given, env) {
        (Some(_), Some(_)) => return Err(invalid(key("url"), "give url or url_env, not both")),
        (Some(_), None) if kind == NotifyKind::Slack => {
            return Err(invalid(
                key("url"),
                "a Slack webhook URL is a secret: put it in an env var and name it in url_env",
            ))
        }
        (Some(u), None) => {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(invalid(key("url"), "must start with http:// or https://"));
            }
            UrlSource::Given(u)
        }
        (None, Some(e)) if !e.is_empty() => UrlSource::Env(e),
        _ => {
            return Err(invalid(
                key("url"),
                "missing: give url (or url_env for a secret URL)",
            ))
        }
    })
}

fn target(i: usize, raw: RawTarget) -> Result<NotifyTarget, ConfigError> {
    let key = |k: &str| format!("notify[{i}].{k}");
    let name = raw
        .name
        .unwrap_or_else(|| format!("{}-{i}", raw.kind.as_str()));
    let url = url(raw.kind, raw.url, raw.url_env, &key)?;
    if raw.token_env.is_some() && raw.kind == NotifyKind::Slack {
        return Err(invalid(
            key("token_env"),
            "Slack's webhook URL is its only credential",
        ));
    }
    let queue = raw.queue.unwrap_or(QUEUE);
    if !(1..=100_000).contains(&queue) {
        return Err(invalid(key("queue"), "must be from 1 to 100000"));
    }
    let positive = |k: &str, v: Option<Duration>, d: Duration| -> Result<Duration, ConfigError> {
        match bounded_any(&key(k), v)? {
            Some(v) if v.is_zero() => Err(invalid(key(k), "must be more than 0")),
            v => Ok(v.unwrap_or(d)),
        }
    };
    Ok(NotifyTarget {
        name,
        kind: raw.kind,
        url,
        token_env: raw.token_env,
        min_level: raw.min_level.unwrap_or(MinLevel::Degraded),
        sections: raw.sections,
        rules: raw.rules,
        resolved: raw.resolved.unwrap_or(true),
        repeat: match bounded_any(&key("repeat"), raw.repeat)? {
            Some(d) if d.is_zero() => None,
            d => Some(d.unwrap_or(REPEAT)),
        },
        group_wait: bounded_any(&key("group_wait"), raw.group_wait)?.unwrap_or(GROUP_WAIT),
        resend: positive("resend", raw.resend, RESEND)?,
        queue,
        retry_for: positive("retry_for", raw.retry_for, RETRY_FOR)?,
        timeout: positive("timeout", raw.timeout, TIMEOUT)?,
        instance: raw.instance.unwrap_or_else(hostname),
        link: raw.link,
    })
}

/// Every target; names must be unique, and filters must name known
/// sections (rules are checked against the rules when the daemon is built).
pub(super) fn targets(raw: Vec<RawTarget>) -> Result<Vec<NotifyTarget>, ConfigError> {
    let mut out: Vec<NotifyTarget> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let t = target(i, r)?;
        if out.iter().any(|o| o.name == t.name) {
            return Err(invalid(
                format!("notify[{i}].name"),
                format!("{} is used twice", t.name),
            ));
        }
        for s in &t.sections {
            if crate::section_id::SectionId::builtin(s).is_none() {
                return Err(invalid(
                    format!("notify[{i}].sections"),
                    format!(
                        "unknown section {s}; known: {}",
                        crate::section_id::SectionId::known()
                    ),
                ));
            }
        }
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("/")).unwrap_err().to_string()
    }

    #[test]
    fn bad_targets_are_named() {
        let e = err("[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\n");
        assert!(e.contains("notify[0].url") && e.contains("url_env"), "{e}");
        assert!(!e.contains("hooks.slack.com"), "the secret is echoed: {e}");
        let e = err("[[notify]]\nkind = \"pager\"\nurl = \"http://x\"\n");
        assert!(e.contains("pager"), "{e}");
        let e = err("[[notify]]\nkind = \"ntfy\"\n");
        assert!(e.contains("notify[0].url") && e.contains("missing"), "{e}");
        let e = err("[[notify]]\nkind = \"webhook\"\nurl = \"ftp://x\"\n");
        assert!(e.contains("http://"), "{e}");
        let e = err("[[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://x\"\n[[notify]]\nname = \"a\"\nkind = \"ntfy\"\nurl = \"http://y\"\n");
        assert!(e.contains("notify[1].name") && e.contains("twice"), "{e}");
        let e =
            err("[[notify]]\nkind = \"webhook\"\nurl = \"http://x\"\nsections = [\"weather\"]\n");
        assert!(e.contains("unknown section weather"), "{e}");
        let e = err("[[notify]]\nkind = \"webhook\"\nurl = \"http://x\"\nqueue = 0\n");
        assert!(e.contains("notify[0].queue"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = Config::parse(
            "[[notify]]\nkind = \"ntfy\"\nurl = \"https://ntfy.sh/t\"\nrepeat = \"0s\"\n",
            Path::new("/"),
        )
        .unwrap();
        let t = &c.notify[0];
        assert_eq!(t.name, "ntfy-0");
        assert_eq!(t.repeat, None);
        assert_eq!(t.group_wait, super::GROUP_WAIT);
        assert!(t.resolved);
    }
}
