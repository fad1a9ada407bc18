//! What a notification says, and how each kind of target hears it: the HTTP
//! request for Alertmanager (`POST /api/v2/alerts`, as Prometheus sends),
//! a Slack incoming webhook, ntfy's publish API, or our webhook's JSON.

use chrono::{DateTime, Utc};

use crate::stamp::rfc3339 as stamp;
use serde::Serialize;

use crate::config::{NotifyKind, NotifyTarget};
use crate::engine::rollup::{Level, Reason};

/// One reason as told: its condition and what it says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The condition's subject (`Finding::about`: what tells two reasons of
    /// one rule apart); empty for a rule that fires once per section.
    #[serde(skip)]
    pub subject: String,
    pub rule: String,
    pub section: String,
    pub level: Level,
    pub reason: String,
    pub since: Option<String>,
    /// It appears and clears too often (the store's flap damping): told
    /// once, its clearing told when it has settled.
    pub flapping: bool,
}

impl Item {
    pub fn of(key: &str, r: &Reason) -> Item {
        Item {
            subject: key.rsplit('\u{1f}').next().unwrap_or(key).to_string(),
            rule: r.rule.clone(),
            section: r.section.clone(),
            level: r.level,
            reason: r.reason.clone(),
            since: r.since.clone(),
            flapping: false,
        }
    }
}

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// Reasons appeared or cleared (grouped over `group_wait`).
    Change,
    /// Problems still there after `repeat`.
    Repeat,
    /// Alertmanager's re-send of what is active (it forgets otherwise).
    Resend,
    /// `pynchy-status notify --test`.
    Test,
}

/// One message to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub why: Why,
    pub appeared: Vec<Item>,
    pub resolved: Vec<Item>,
    /// What is still active besides `appeared` (a repeat's or a resend's
    /// problems).
    pub active: Vec<Item>,
    pub verdict: Level,
    pub previous: Option<Level>,
    pub at: DateTime<Utc>,
}

/// A request ready to send (the URL and token are read at send time).
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// Headers besides the content type and the bearer token.
    pub headers: Vec<(&'static str, String)>,
    /// Appended to the target's URL (Alertmanager's API path).
    pub path: &'static str,
}

fn line(i: &Item) -> String {
    let since = i
        .since
        .as_deref()
        .map(|s| format!(" (since {s})"))
        .unwrap_or_default();
    let flapping = if i.flapping { " (flapping)" } else { "" };
    format!(
        "[{}] {}: {}{since}{flapping}",
        i.level.as_str(),
        i.section,
        i.reason
    )
}

/// The message's title: where, what, and the verdict's change.
pub fn title(m: &Message, t: &NotifyTarget) -> String {
    let change = match m.previous {
        Some(p) if p != m.verdict => format!(" (was {})", p.as_str()),
        _ => String::new(),
    };
    let what = match m.why {
        Why::Test => "test message".to_string(),
        Why::Repeat => "still".to_string(),
        _ => String::new(),
    };
    let sep = if what.is_empty() { "" } else { " " };
    format!(
        "pynchy-status on {}: {what}{sep}{}{change}",
        t.instance,
        m.verdict.as_str()
    )
}

/// The message as plain lines (Slack, ntfy).
pub fn text(m: &Message) -> String {
    let mut out = Vec::new();
    if m.why == Why::Test {
        out.push("A test message from pynchy-status: this target works.".to_string());
    }
    for i in &m.appeared {
        out.push(format!("⚠ {}", line(i)));
    }
    for i in &m.active {
        out.push(format!("… {}", line(i)));
    }
    for i in &m.resolved {
        out.push(format!("✓ resolved: {}: {}", i.section, i.reason));
    }
    if out.is_empty() {
        out.push("no reasons".into());
    }
    out.join("\n")
}

#[derive(Serialize)]
struct AmAlert<'a> {
    labels: std::collections::BTreeMap<&'static str, &'a str>,
    annotations: std::collections::BTreeMap<&'static str, &'a str>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
}

fn am_alert<'a>(i: &'a Item, t: &'a NotifyTarget, m: &Message, ends: DateTime<Utc>) -> AmAlert<'a> {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("alertname", i.rule.as_str());
    labels.insert("section", i.section.as_str());
    labels.insert("severity", i.level.as_str());
    labels.insert("instance", t.instance.as_str());
    // A rule that fires once per section has no subject (and no label).
    if !i.subject.is_empty() {
        labels.insert("subject", i.subject.as_str());
    }
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert("summary", i.reason.as_str());
    if let Some(s) = &i.since {
        annotations.insert("since", s.as_str());
    }
    let starts = i
        .since
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(m.at, |d| d.with_timezone(&Utc));
    AmAlert {
        labels,
        annotations,
        starts_at: stamp(starts),
        ends_at: stamp(ends),
        generator_url: t.link.as_deref(),
    }
}

/// Alertmanager: active alerts end `4 × resend` ahead (as Prometheus does,
/// so a pynchy-status that stops resending lets them resolve), resolved
/// ones now — counted from when the request is sent, not queued: a message
/// retried for minutes must not arrive already ended.
fn alertmanager(m: &Message, t: &NotifyTarget) -> Request {
    let now = Utc::now();
    let ahead = now + chrono::Duration::from_std(t.resend * 4).unwrap_or_default();
    let mut alerts: Vec<AmAlert> = m
        .appeared
        .iter()
        .chain(&m.active)
        .map(|i| am_alert(i, t, m, ahead))
        .collect();
    alerts.extend(m.resolved.iter().map(|i| am_alert(i, t, m, now)));
    Request {
        body: serde_json::to_vec(&alerts).unwrap_or_default(),
        content_type: "application/json",
        headers: Vec::new(),
        path: "/api/v2/alerts",
    }
}

#[derive(Serialize)]
struct Webhook<'a> {
    version: u32,
    why: Why,
    instance: &'a str,
    verdict: Level,
    previous_verdict: Option<Level>,
    appeared: &'a [Item],
    resolved: &'a [Item],
    active: &'a [Item],
    link: Option<&'a str>,
    at: String,
}

/// Builds the request for `t`'s kind.
pub fn request(m: &Message, t: &NotifyTarget) -> Request {
    match t.kind {
        NotifyKind::Alertmanager => alertmanager(m, t),
        NotifyKind::Slack => slack(m, t),
        NotifyKind::Ntfy => ntfy(m, t),
        NotifyKind::Webhook => webhook(m, t),
    }
}

fn json_request(body: &impl Serialize) -> Request {
    Request {
        body: serde_json::to_vec(body).unwrap_or_default(),
        content_type: "application/json",
        headers: Vec::new(),
        path: "",
    }
}

/// Slack's incoming webhook: `{"text": …}` in its mrkdwn.
fn slack(m: &Message, t: &NotifyTarget) -> Request {
    let link = t
        .link
        .as_deref()
        .map(|l| format!("\n<{l}|dashboard>"))
        .unwrap_or_default();
    json_request(&serde_json::json!({
        "text": format!("*{}*\n{}{link}", title(m, t), text(m)),
    }))
}

/// ntfy's publish API: the text as the body, the rest in headers; the
/// priority by the worst of what is told (not the whole verdict).
fn ntfy(m: &Message, t: &NotifyTarget) -> Request {
    let worst = m
        .appeared
        .iter()
        .chain(&m.active)
        .map(|i| i.level)
        .max_by_key(|l| match l {
            Level::Down => 2,
            Level::Degraded => 1,
            Level::Ok => 0,
        });
    let (priority, tags) = match (m.why, worst) {
        (Why::Test, _) => ("3", "test_tube"),
        (_, Some(Level::Down)) => ("5", "rotating_light"),
        (_, Some(Level::Degraded)) => ("4", "warning"),
        _ => ("3", "white_check_mark"),
    };
    let mut headers = vec![
        ("Title", title(m, t)),
        ("Priority", priority.to_string()),
        ("Tags", tags.to_string()),
    ];
    if let Some(l) = &t.link {
        headers.push(("Click", l.clone()));
    }
    Request {
        body: text(m).into_bytes(),
        content_type: "text/plain; charset=utf-8",
        headers,
        path: "",
    }
}

fn webhook(m: &Message, t: &NotifyTarget) -> Request {
    json_request(&Webhook {
        version: 1,
        why: m.why,
        instance: &t.instance,
        verdict: m.verdict,
        previous_verdict: m.previous,
        appeared: &m.appeared,
        resolved: &m.resolved,
        active: &m.active,
        link: t.link.as_deref(),
        at: stamp(m.at),
    })
}
