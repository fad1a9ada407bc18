//! `pynchy-status check`: fetch `/status` and print one readable screen — a
//! line per section with its state, age and key numbers, then the reasons —
//! or, with `--json`, a compact machine-readable summary. The exit code is the
//! verdict: 0 ok, 1 degraded, 2 down, 3 unreachable or unparsable.

use std::fmt::Write as _;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

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

/// Fetches `{base}/status` (with a bearer token if given).
pub async fn fetch(
    base: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Value, CheckError> {
    let url = format!("{}/status", base.trim_end_matches('/'));
    let mut req = crate::sources::litellm::client().get(&url).timeout(timeout);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| CheckError::Unreachable {
        url: url.clone(),
        reason: chain(&e.without_url()),
    })?;
    if !resp.status().is_success() {
        return Err(CheckError::Status {
            url,
            status: resp.status().as_u16(),
        });
    }
    let body = resp.bytes().await.map_err(|e| CheckError::Unreachable {
        url: url.clone(),
        reason: chain(&e.without_url()),
    })?;
    let doc: Value = serde_json::from_slice(&body).map_err(|e| CheckError::Unparsable {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    if !doc.get("status").is_some_and(Value::is_string)
        || !doc.get("meta").is_some_and(Value::is_object)
    {
        return Err(CheckError::Unparsable {
            url,
            reason: "no `status` or `meta`".into(),
        });
    }
    Ok(doc)
}

/// The exit code for a document's verdict.
pub fn exit_code(doc: &Value) -> u8 {
    match doc.get("status").and_then(Value::as_str) {
        Some("ok") => 0,
        Some("degraded") => 1,
        Some("down") => 2,
        _ => UNREACHABLE,
    }
}

fn age(meta: &Value, now: DateTime<Utc>) -> Option<i64> {
    let t: DateTime<Utc> = meta.get("collected_at")?.as_str()?.parse().ok()?;
    Some((now - t).num_seconds().max(0))
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
fn state(name: &str, doc: &Value) -> &'static str {
    let meta = &doc["meta"][name];
    if meta["error"].is_string() {
        return "error";
    }
    if meta["stale"] == json!(true) {
        return "stale";
    }
    let levels: Vec<&str> = doc["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["section"] == name)
        .filter_map(|r| r["level"].as_str())
        .collect();
    if levels.contains(&"down") {
        "down"
    } else if levels.contains(&"degraded") {
        "degraded"
    } else {
        "ok"
    }
}

fn count(v: &Value, key: &str) -> usize {
    v.as_array()
        .map(|a| a.iter().filter(|i| i[key] == json!(true)).count())
        .unwrap_or(0)
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The key numbers of one section, in a few words.
pub fn summary(name: &str, body: &Value) -> String {
    if body.is_null() {
        return "-".into();
    }
    match name {
        "service" => format!(
            "{} up {}s",
            show(&body["status"]),
            show(&body["uptime_seconds"])
        ),
        "deploy" => format!(
            "{} dirty={} unpushed={} \"{}\"",
            body["head_sha"]
                .as_str()
                .map(|s| &s[..s.len().min(8)])
                .unwrap_or("-"),
            show(&body["dirty"]),
            show(&body["unpushed_commits"]),
            show(&body["head_commit"])
        ),
        "channels" => body
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            if v["connected"] == json!(true) {
                                "up"
                            } else {
                                "DOWN"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        "gateway" => {
            if body["mode"] != "litellm" {
                format!("mode={}", show(&body["mode"]))
            } else {
                format!(
                    "litellm={} postgres={} models {}/{} healthy",
                    show(&body["litellm_container"]),
                    show(&body["postgres_container"]),
                    show(&body["healthy_models"]),
                    match (
                        body["healthy_models"].as_u64(),
                        body["unhealthy_models"].as_u64()
                    ) {
                        (Some(h), Some(u)) => (h + u).to_string(),
                        _ => "?".into(),
                    }
                )
            }
        }
        "queue" => format!(
            "active {}/{} waiting {}",
            show(&body["active_containers"]),
            show(&body["max_concurrent"]),
            show(&body["groups_waiting"])
        ),
        "repos" => body
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(slug, r)| {
                        let wts = r["worktrees"].as_object();
                        let n = wts.map_or(0, |w| w.len());
                        let conflicts = wts.map_or(0, |w| {
                            w.values().filter(|w| w["conflict"] == json!(true)).count()
                        });
                        format!(
                            "{slug}: dirty={} {n} worktrees {conflicts} in conflict",
                            show(&r["dirty"])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default(),
        "messages" => format!(
            "in {} out {} pending {} last in {}",
            show(&body["total_inbound"]),
            show(&body["total_outbound"]),
            show(&body["pending_deliveries"]),
            show(&body["last_received_at"])
        ),
        "tasks" | "host_jobs" => format!(
            "{} total, {} overdue",
            body.as_array().map_or(0, Vec::len),
            count(body, "overdue")
        ),
        "groups" => format!(
            "{} groups, {} active sessions",
            show(&body["total"]),
            show(&body["active_sessions"])
        ),
        _ => {
            let s = body.to_string();
            if s.len() > 60 {
                format!(
                    "{}…",
                    &s[..s.char_indices().nth(60).map_or(s.len(), |(i, _)| i)]
                )
            } else {
                s
            }
        }
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

/// The readable screen. Colour codes are always written; `anstream` strips them
/// when stdout is not a terminal.
pub fn table(doc: &Value, url: &str, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let verdict = doc["status"].as_str().unwrap_or("?");
    let st = style_for(verdict);
    let _ = writeln!(
        out,
        "pynchy-status {url}: {st}{}{st:#}",
        verdict.to_uppercase()
    );
    let _ = writeln!(
        out,
        "{:<10} {:<9} {:>6}  DETAILS",
        "SECTION", "STATE", "AGE"
    );
    if let Some(meta) = doc["meta"].as_object() {
        for (name, m) in meta {
            let word = state(name, doc);
            let st = style_for(word);
            let _ = writeln!(
                out,
                "{name:<10} {st}{word:<9}{st:#} {:>6}  {}",
                human_age(age(m, now)),
                summary(name, &doc[name.as_str()])
            );
            if let Some(e) = m["error"].as_str() {
                let _ = writeln!(out, "{:<10} {:<9} {:>6}  error: {e}", "", "", "");
            }
        }
    }
    let reasons = doc["reasons"].as_array().cloned().unwrap_or_default();
    if reasons.is_empty() {
        let _ = writeln!(out, "no reasons: all well");
    } else {
        let _ = writeln!(out, "reasons:");
        for r in reasons {
            let level = r["level"].as_str().unwrap_or("?");
            let st = style_for(level);
            let _ = writeln!(
                out,
                "  {st}{level:<8}{st:#} {}: {}",
                r["section"].as_str().unwrap_or("?"),
                r["reason"].as_str().unwrap_or("?")
            );
        }
    }
    out
}

/// The `--json` summary: verdict, reasons, and each section's state and age.
pub fn summary_json(doc: &Value, now: DateTime<Utc>) -> Value {
    let sections: serde_json::Map<String, Value> = doc["meta"]
        .as_object()
        .map(|meta| {
            meta.iter()
                .map(|(name, m)| {
                    (
                        name.clone(),
                        json!({"state": state(name, doc), "age_seconds": age(m, now), "error": m["error"]}),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"status": doc["status"], "reasons": doc["reasons"], "sections": sections})
}
