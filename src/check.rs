//! `pynchy-status check`: fetch `/status` and print one readable screen — a
//! line per section with its state, age and key numbers, then the reasons —
//! or, with `--json`, a compact machine-readable summary. The exit code is the
//! verdict: 0 ok, 1 degraded, 2 down, 3 unreachable or unparsable.

use std::fmt::Write as _;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::rollup::{Level, Reason};
use crate::section_id::SectionId;
use crate::sections::{self, Body};

/// Exit code when the daemon cannot be reached or its answer not understood.
pub const UNREACHABLE: u8 = 3;

/// Why `check` could not get a verdict.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer a status document: {reason}")]
    Unparsable { url: String, reason: String },
}

/// One section's `meta` entry, as `check` reads it.
#[derive(Debug, Deserialize)]
pub struct MetaEntry {
    pub collected_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub stale: bool,
    pub error: Option<String>,
}

/// The `/status` document: the verdict, the reasons, each section's meta, and
/// the section bodies (read into their typed bodies when summarised).
#[derive(Debug, Deserialize)]
pub struct Document {
    pub status: Level,
    /// Since when the verdict is what it is.
    #[serde(default)]
    pub status_since: Option<DateTime<Utc>>,
    pub reasons: Vec<Reason>,
    pub meta: IndexMap<String, MetaEntry>,
    #[serde(flatten)]
    pub bodies: IndexMap<String, Value>,
}

/// An error and its causes, for a person ("error sending request: connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// The most of `/status` read: a real document is a few KB to a few hundred.
pub const MAX_DOCUMENT: u64 = 16 << 20;

/// Fetches `{base}/status` (with a bearer token if given), at most
/// [`MAX_DOCUMENT`] bytes of it.
pub async fn fetch(
    base: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Document, CheckError> {
    let url = format!("{}/status", base.trim_end_matches('/'));
    let unreachable = |reason: String| CheckError::Unreachable {
        url: url.clone(),
        reason,
    };
    let client = crate::client::outbound().map_err(|e| unreachable(chain(&e)))?;
    let mut req = client.get(&url).timeout(timeout);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| unreachable(chain(&e.without_url())))?;
    if !resp.status().is_success() {
        return Err(CheckError::Status {
            url,
            status: resp.status().as_u16(),
        });
    }
    let body = match crate::client::read_capped(resp, MAX_DOCUMENT).await {
        Ok(b) => b,
        Err(e @ crate::client::ReadError::TooLarge { .. }) => {
            return Err(CheckError::Unparsable {
                url,
                reason: e.to_string(),
            })
        }
        Err(crate::client::ReadError::Transport(e)) => {
            return Err(unreachable(chain(&e.without_url())))
        }
    };
    serde_json::from_slice(&body).map_err(|e| CheckError::Unparsable {
        url: url.clone(),
        reason: e.to_string(),
    })
}

/// The exit code for a document's verdict.
pub fn exit_code(doc: &Document) -> u8 {
    doc.status.code()
}

fn age(meta: &MetaEntry, now: DateTime<Utc>) -> Option<i64> {
    Some((now - meta.collected_at?).num_seconds().max(0))
}

fn human_age(secs: Option<i64>) -> String {
    match secs {
        None => "never".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) => format!("{}h", s / 3600),
    }
}

/// A section's state word: error, stale, the worst reason's level, or ok.
fn state(name: &str, meta: &MetaEntry, doc: &Document) -> &'static str {
    if meta.error.is_some() {
        return "error";
    }
    if meta.stale {
        return "stale";
    }
    doc.reasons
        .iter()
        .filter(|r| r.section == name)
        .map(|r| r.level)
        .max()
        .unwrap_or(Level::Ok)
        .as_str()
}

/// The key numbers of one section, in a few words, from its typed body.
pub fn summary(name: &str, body: &Value) -> String {
    if body.is_null() {
        return "-".into();
    }
    let entry = SectionId::builtin(name).and_then(sections::lookup);
    match entry {
        Some(e) => match (e.decode)(body.clone()) {
            Ok(b) => b.summary(),
            Err(err) => format!("unreadable body: {err}"),
        },
        None => Body::summary(body),
    }
}

fn style_for(word: &str) -> Style {
    let color = match word {
        "ok" => AnsiColor::Green,
        "degraded" | "stale" => AnsiColor::Yellow,
        _ => AnsiColor::Red,
    };
    Style::new().fg_color(Some(color.into())).bold()
}

/// How long since `since` (RFC 3339), for a person: " (for 2h)".
fn held_for(since: Option<&str>, now: DateTime<Utc>) -> String {
    let Some(t) = since.and_then(|s| DateTime::parse_from_rfc3339(s).ok()) else {
        return String::new();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    format!(" (for {})", human_age(Some(secs)))
}

fn reasons_table(out: &mut String, reasons: &[Reason], now: DateTime<Utc>) {
    if reasons.is_empty() {
        let _ = writeln!(out, "no reasons: all well");
        return;
    }
    let _ = writeln!(out, "reasons:");
    for r in reasons {
        let level = r.level.as_str();
        let st = style_for(level);
        let held = held_for(r.since.as_deref(), now);
        let _ = writeln!(
            out,
            "  {st}{level:<8}{st:#} {}: {}{held}",
            r.section, r.reason
        );
    }
}

/// The readable screen. Colour codes are always written; `anstream` strips them
/// when stdout is not a terminal.
pub fn table(doc: &Document, url: &str, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let verdict = doc.status.as_str();
    let st = style_for(verdict);
    let since = doc.status_since.map(|t| t.to_rfc3339());
    let _ = writeln!(
        out,
        "pynchy-status {url}: {st}{}{st:#}{}",
        verdict.to_uppercase(),
        held_for(since.as_deref(), now)
    );
    let _ = writeln!(
        out,
        "{:<10} {:<9} {:>6}  DETAILS",
        "SECTION", "STATE", "AGE"
    );
    for (name, m) in &doc.meta {
        let word = state(name, m, doc);
        let st = style_for(word);
        let body = doc.bodies.get(name).unwrap_or(&Value::Null);
        let _ = writeln!(
            out,
            "{name:<10} {st}{word:<9}{st:#} {:>6}  {}",
            human_age(age(m, now)),
            summary(name, body)
        );
        if let Some(e) = &m.error {
            let _ = writeln!(out, "{:<10} {:<9} {:>6}  error: {e}", "", "", "");
        }
    }
    reasons_table(&mut out, &doc.reasons, now);
    out
}

/// The `--json` summary: verdict, reasons, and each section's state and age.
pub fn summary_json(doc: &Document, now: DateTime<Utc>) -> Value {
    let sections: serde_json::Map<String, Value> = doc
        .meta
        .iter()
        .map(|(name, m)| {
            let entry = json!({
                "state": state(name, m, doc),
                "age_seconds": age(m, now),
                "error": m.error,
            });
            (name.clone(), entry)
        })
        .collect();
    json!({"status": doc.status, "reasons": doc.reasons, "sections": sections})
}
