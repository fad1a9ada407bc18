//! Notifications: a problem reaches a person within seconds of its
//! transition, through `[[notify]]` targets (Alertmanager, Slack, ntfy, a
//! webhook), never on the serving path.
//!
//! The notifier follows the store's snapshots. Per target it keeps the
//! conditions it has told as active, and at each snapshot compares them with
//! the reasons it would tell now (the target's level and filters): what
//! appeared and what cleared within `group_wait` (5 s) make one message; a
//! condition that flaps (the store's damping) is not told clearing while it
//! flaps. Nothing is told before the first complete snapshot, and what is
//! already wrong then is taken as known: a restart pages no one (Alertmanager
//! is sent the active alerts at once: it keeps them deduplicated). A problem
//! still there is told again every `repeat` (4 h; Alertmanager repeats by
//! itself and is sent every active alert every `resend` instead, 1 min).
//! Delivery is each target's [`outbox::Outbox`].

pub mod message;
pub mod outbox;
mod watch;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;

use crate::config::{MinLevel, NotifyTarget};
use crate::engine::rollup::Level;
use crate::engine::snapshot::Alerts;
use crate::engine::store::Snapshots;
use message::{Item, Message, Why};
use outbox::Outbox;
use watch::Watch;
struct Target {
    outbox: Arc<Outbox>,
    watch: Watch,
}

/// Every target, and the HTTP client they send with.
pub struct Notifier {
    client: reqwest::Client,
    /// `[limits] pull_body`: the most read of an answer.
    limit: u64,
    targets: Mutex<Vec<Target>>,
    /// Woken by a reload and by each target's sender (a message sent,
    /// failed or dropped): the run loop looks again and renders [`Shown`].
    reconfigured: Arc<tokio::sync::Notify>,
    /// What `/metrics` and `/status/notify` serve, rendered here when it
    /// changes, so a request only loads it.
    shown: arc_swap::ArcSwap<Shown>,
}

/// The targets' record as the HTTP layer serves it.
#[derive(Default)]
pub struct Shown {
    /// `pynchy_status_notifications_total` and `pynchy_status_notify_queue`.
    pub metrics: String,
    /// `GET /status/notify`'s body.
    pub status: bytes::Bytes,
}
impl Notifier {
    pub fn new(limit: u64) -> Result<Arc<Notifier>, String> {
        Ok(Arc::new(Notifier {
            client: crate::client::outbound().map_err(|e| e.to_string())?,
            limit,
            targets: Mutex::new(Vec::new()),
            reconfigured: Arc::new(tokio::sync::Notify::new()),
            shown: arc_swap::ArcSwap::from_pointee(Shown::default()),
        }))
    }

    /// Applies a config's targets: a target whose settings did not change
    /// keeps its queue and what it was told; others start afresh (primed at
    /// the next snapshot: what is wrong then is not news to them).
    pub fn configure(&self, wanted: &[NotifyTarget]) {
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let mut old: Vec<Target> = targets.drain(..).collect();
        for t in wanted {
            let kept = old
                .iter()
                .position(|o| &o.outbox.target == t)
                .map(|i| old.swap_remove(i));
            let target = kept.unwrap_or_else(|| {
                let outbox = Outbox::new(t.clone(), self.reconfigured.clone());
                outbox.start(self.client.clone(), self.limit);
                Target {
                    outbox,
                    watch: Watch::default(),
                }
            });
            targets.push(target);
        }
        for gone in old {
            let n = gone.outbox.depth();
            if n > 0 {
                tracing::warn!(target_name = %gone.outbox.target.name, dropped = n, "notify target removed or changed: its queued messages are dropped");
            }
        }
        drop(targets);
        self.render();
        self.reconfigured.notify_one();
    }

    /// One look at a snapshot; the next instant to look again regardless.
    fn look(&self, alerts: &Alerts, ready: bool) -> Option<Instant> {
        if !ready {
            return None;
        }
        let now = Instant::now();
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let mut next: Option<Instant> = None;
        for t in targets.iter_mut() {
            if let Some(at) = t.watch.step(&t.outbox.target, &t.outbox, alerts, now) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Follows the store until the task is dropped. Wakes only for a new
    /// snapshot, a reload, or a deadline (a group's window, a repeat, a
    /// resend): nothing at all while nothing changes and no target waits.
    pub async fn run(self: Arc<Self>, store: Snapshots) {
        let mut published = store.subscribe();
        loop {
            let snap = store.load();
            let next = self.look(&snap.alerts, snap.ready);
            self.render();
            drop(snap);
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = published.changed() => if r.is_err() { return },
                _ = sleep => {}
                _ = self.reconfigured.notified() => {}
            }
        }
    }

    /// `pynchy_status_notifications_total{target,outcome}` and
    /// `pynchy_status_notify_queue{target}`, in OpenMetrics text.
    /// What the HTTP layer serves of the targets, as last rendered.
    pub fn shown(&self) -> Arc<Shown> {
        self.shown.load_full()
    }

    fn render(&self) {
        let status = bytes::Bytes::from(self.status().to_string());
        self.shown.store(Arc::new(Shown {
            metrics: self.exposition(),
            status,
        }));
    }

    fn exposition(&self) -> String {
        let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if targets.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "# HELP pynchy_status_notifications Notifications by target and outcome (failed: attempts; dropped: given up).\n\
             # TYPE pynchy_status_notifications counter\n",
        );
        let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        for t in targets.iter() {
            let s = t
                .outbox
                .stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for (outcome, n) in [
                ("sent", s.sent),
                ("failed", s.failed),
                ("dropped", s.dropped),
            ] {
                let _ = writeln!(
                    out,
                    "pynchy_status_notifications_total{{target=\"{}\",outcome=\"{outcome}\"}} {n}",
                    label(&t.outbox.target.name)
                );
            }
        }
        out.push_str("# HELP pynchy_status_notify_queue Notifications waiting to be sent, by target.\n# TYPE pynchy_status_notify_queue gauge\n");
        for t in targets.iter() {
            let _ = writeln!(
                out,
                "pynchy_status_notify_queue{{target=\"{}\"}} {}",
                label(&t.outbox.target.name),
                t.outbox.depth()
            );
        }
        out
    }

    /// `GET /status/notify`: each target's kind, settings and record (never
    /// its URL or token).
    fn status(&self) -> serde_json::Value {
        let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let list: Vec<serde_json::Value> = targets
            .iter()
            .map(|t| {
                let c = &t.outbox.target;
                let s = t.outbox.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
                serde_json::json!({
                    "name": c.name,
                    "kind": c.kind.as_str(),
                    "min_level": match c.min_level { MinLevel::Degraded => "degraded", MinLevel::Down => "down" },
                    "sections": c.sections,
                    "rules": c.rules,
                    "queued": t.outbox.depth(),
                    "told_active": t.watch.active(),
                    "sent": s.sent,
                    "failed": s.failed,
                    "dropped": s.dropped,
                    "last_success_at": s.last_success_at.map(crate::stamp::rfc3339),
                    "last_error": s.last_error,
                    "last_error_at": s.last_error_at.map(crate::stamp::rfc3339),
                })
            })
            .collect();
        serde_json::json!({ "targets": list })
    }
}

/// `pynchy-status notify --test [TARGET]`: one test message to each target
/// (or the one named), sent once; each target's answer or error.
pub async fn test(
    targets: &[NotifyTarget],
    only: Option<&str>,
    limit: u64,
) -> Result<Vec<(String, Result<outbox::Answer, String>)>, String> {
    let client = crate::client::outbound().map_err(|e| e.to_string())?;
    let chosen: Vec<&NotifyTarget> = targets
        .iter()
        .filter(|t| only.is_none_or(|n| t.name == n))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        return Err(match only {
            Some(n) => format!(
                "no [[notify]] target named {n}; targets: {}",
                names.join(", ")
            ),
            None => "no [[notify]] target in the config".into(),
        });
    }
    let mut out = Vec::new();
    for t in chosen {
        let m = Message {
            why: Why::Test,
            appeared: Vec::new(),
            resolved: Vec::new(),
            // One test alert: Alertmanager shows it, and it ends by itself.
            active: vec![Item {
                subject: "test".into(),
                rule: "pynchy_status_test".into(),
                section: "notify".into(),
                level: Level::Ok,
                reason: "a test message from pynchy-status notify --test".into(),
                since: None,
                flapping: false,
            }],
            verdict: Level::Ok,
            previous: None,
            at: Utc::now(),
        };
        out.push((
            t.name.clone(),
            outbox::send_once(&client, t, &m, limit).await,
        ));
    }
    Ok(out)
}
