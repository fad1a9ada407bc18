//! One target's delivery: a bounded queue and the task that empties it, in
//! order, never on the serving path. A failed send is retried with backoff
//! (1 s doubling to 1 min) for `retry_for`, then dropped; a full queue drops
//! its oldest message. Both are counted and logged. Redirects are not
//! followed; an answer is read up to `[limits] pull_body`. The URL (a
//! secret for Slack) and tokens are read from the environment at each send
//! and never logged: errors name the target, not the URL.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::message::{request, Message};
use crate::config::{NotifyTarget, UrlSource};

/// What a target has done, for `/metrics` and `/status/notify`.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub sent: u64,
    /// Failed attempts (each retry counts).
    pub failed: u64,
    /// Messages given up on: retried for `retry_for`, or pushed out of a
    /// full queue.
    pub dropped: u64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// A target's queue and counters, shared by the notifier and its sender.
pub struct Outbox {
    pub target: NotifyTarget,
    queue: Mutex<VecDeque<Message>>,
    wake: Arc<tokio::sync::Notify>,
    pub stats: Mutex<Stats>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Told of each change of the queue or the counters (the notifier
    /// renders what it serves then).
    changed: Arc<tokio::sync::Notify>,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(t) = self
            .task
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

/// The answer to one send: its status and the start of its body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Why a send failed, free of the URL.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        format!("request failed: {}", e.without_url_text())
    }
}

trait WithoutUrl {
    fn without_url_text(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_text(&self) -> String {
        let mut text = String::new();
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(s) = src {
            text = s.to_string();
            src = s.source();
        }
        if text.is_empty() {
            "unknown".into()
        } else {
            text
        }
    }
}

/// Sends `m` to `t` once.
pub async fn send_once(
    client: &reqwest::Client,
    t: &NotifyTarget,
    m: &Message,
    limit: u64,
) -> Result<Answer, String> {
    let base = match &t.url {
        UrlSource::Given(u) => u.clone(),
        UrlSource::Env(var) => crate::config::secret(var)
            .ok_or_else(|| format!("the env var {var} (its URL) is not set"))?,
    };
    let r = request(m, t);
    let url = format!("{}{}", base.trim_end_matches('/'), r.path);
    let url = if r.path.is_empty() { base } else { url };
    let mut req = client
        .post(url)
        .timeout(t.timeout)
        .header(reqwest::header::CONTENT_TYPE, r.content_type)
        .body(r.body);
    for (k, v) in r.headers {
        req = req.header(k, v);
    }
    if let Some(token) = t.token_env.as_deref().and_then(crate::config::secret) {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| describe(&e))?;
    let status = resp.status().as_u16();
    let body = crate::client::read_capped(resp, limit)
        .await
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(2000)]).into_owned())
        .unwrap_or_default();
    if (200..300).contains(&status) {
        Ok(Answer { status, body })
    } else {
        let first = body
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        Err(format!("answered HTTP {status}: {first}"))
    }
}

impl Outbox {
    pub fn new(target: NotifyTarget, changed: Arc<tokio::sync::Notify>) -> Arc<Outbox> {
        Arc::new(Outbox {
            target,
            queue: Mutex::new(VecDeque::new()),
            wake: Arc::new(tokio::sync::Notify::new()),
            stats: Mutex::new(Stats::default()),
            task: Mutex::new(None),
            changed,
        })
    }

    /// Starts the sender (once).
    pub fn start(self: &Arc<Self>, client: reqwest::Client, limit: u64) {
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_none() {
            let me = Arc::downgrade(self);
            *task = Some(tokio::spawn(run(me, client, limit)));
        }
    }

    /// Queues `m`; a full queue drops its oldest message. A resend replaces
    /// a resend still waiting (the newer says all it said).
    pub fn push(&self, m: Message) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if m.why == super::message::Why::Resend {
            q.retain(|old| old.why != super::message::Why::Resend);
        }
        if q.len() >= self.target.queue {
            q.pop_front();
            let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            s.dropped += 1;
            tracing::warn!(
                target_name = %self.target.name,
                dropped = s.dropped,
                "notification queue full: the oldest message was dropped"
            );
        }
        q.push_back(m);
        drop(q);
        self.wake.notify_one();
    }

    pub fn depth(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub(super) fn pop(&self) -> Option<Message> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn record(&self, outcome: Result<(), String>) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(()) => {
                s.sent += 1;
                s.last_success_at = Some(Utc::now());
            }
            Err(e) => {
                s.failed += 1;
                s.last_error = Some(e);
                s.last_error_at = Some(Utc::now());
            }
        }
        drop(s);
        self.changed.notify_one();
    }
}

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Sends one message until it goes through or `retry_for` has passed.
async fn deliver(o: &Outbox, client: &reqwest::Client, limit: u64, m: Message) {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        match send_once(client, &o.target, &m, limit).await {
            Ok(_) => {
                o.record(Ok(()));
                return;
            }
            Err(e) => {
                tracing::warn!(target_name = %o.target.name, error = %e, "notification not delivered: retrying");
                o.record(Err(e));
            }
        }
        if started.elapsed() + backoff > o.target.retry_for {
            let mut s = o.stats.lock().unwrap_or_else(|p| p.into_inner());
            s.dropped += 1;
            tracing::warn!(
                target_name = %o.target.name,
                dropped = s.dropped,
                "notification dropped after retrying for {}",
                humantime::format_duration(o.target.retry_for)
            );
            drop(s);
            o.changed.notify_one();
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn run(me: std::sync::Weak<Outbox>, client: reqwest::Client, limit: u64) {
    loop {
        let Some(o) = me.upgrade() else {
            return;
        };
        match o.pop() {
            Some(m) => deliver(&o, &client, limit, m).await,
            None => {
                let wake = o.wake.clone();
                drop(o);
                wake.notified().await;
            }
        }
    }
}
