//! The `service` section's reads: what one collection asks (pynchy's port
//! holder, a probe of `GET /api/groups`, its systemd unit, the deploy that
//! came before an exit) and the body it makes of them, with what it
//! remembers between collections. The section, its body and rules are in
//! `service.rs`; this file is how it looks (see that file's header).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::service_body::{rfc3339, ProcessView, ServiceBody, ServiceStatus, Source, UnitBody};
use crate::config::PynchyConfig;
use crate::sources::db::Db;
use crate::sources::push::PushedStatus;
use crate::sources::pynchy::{self as observe, Holder, Observed, Probe};
use crate::sources::systemd::{self, UnitState};

/// What the section remembers between collections.
#[derive(Default)]
pub(super) struct Memory {
    /// The first failed probe of the current holder.
    unresponsive_since: Option<Since>,
    last_answer_at: Option<DateTime<Utc>>,
    /// The holder the probes were about.
    probed: Option<Holder>,
    /// Exits already classified: (when it ended, the deploy it followed).
    exits: Vec<(Instant, Option<String>)>,
    /// The unit as last read, or why it could not be.
    unit: (Option<UnitBody>, Option<String>),
    /// The last probe's error.
    probe_error: Option<String>,
    /// A deploy in progress while the port's holder does not answer (its
    /// `last_deploy_at`), as last read.
    deploy_while_held: Option<String>,
}

/// An instant, monotonic and wall clock.
type Since = (Instant, DateTime<Utc>);

/// How long a probe of pynchy's HTTP server may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most read of a probe's answer.
const PROBE_BODY: u64 = 1 << 20;
/// An exit this close after `last_deploy_at` (or just before it) was the deploy's.
const DEPLOY_WINDOW: Duration = Duration::from_secs(120);

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `router_state.last_deploy_at` (`None`: no deploy recorded), or why it
/// could not be read.
fn last_deploy_at(db: &Db) -> Result<Option<String>, String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let rows: Vec<Row> = super::db_rows(
        db,
        "SELECT value FROM router_state WHERE key = 'last_deploy_at'",
    )
    .map_err(|e| e.to_string())?;
    Ok(rows.into_iter().next().map(|r| r.value))
}

/// `last_deploy_at`, read behind the database's gate.
async fn read_deploy(ask: &Ask) -> Result<Option<String>, String> {
    let db = ask.db.clone();
    super::gated(&ask.gate, ask.db_timeout, move || last_deploy_at(&db)).await?
}

/// Whether an exit at `exit` followed the deploy written at `deploy`.
fn follows_deploy(deploy: &str, exit: DateTime<Utc>) -> bool {
    let Some(at) = crate::stamp::parse_time(deploy) else {
        return false;
    };
    let window = chrono::Duration::from_std(DEPLOY_WINDOW).unwrap_or_default();
    at <= exit + chrono::Duration::seconds(5) && exit - at <= window
}

/// One collection's inputs.
pub(super) struct Ask {
    pub(super) cfg: PynchyConfig,
    pub(super) observed: Observed,
    pub(super) http: Option<reqwest::Client>,
    pub(super) memory: Arc<Mutex<Memory>>,
    pub(super) db: Arc<Db>,
    pub(super) gate: super::Gate,
    pub(super) bus: Arc<tokio::sync::Mutex<Option<zbus::Connection>>>,
    pub(super) pushed: Option<crate::sources::push::Stamped<crate::sources::push::ServiceState>>,
    pub(super) shutting_down: bool,
    pub(super) db_timeout: Duration,
    /// Where the verdict "pynchy runs" is shared with the scheduled sections.
    pub(super) up: Arc<crate::context::Liveness>,
    /// A push just arrived: build the body from it and the last
    /// observation, asking nothing (the push is in `/status` at once).
    pub(super) io: bool,
}

/// Probes `/api/groups` and updates the memory; returns the probe's error.
async fn probe(ask: &Ask, held: bool) -> Option<String> {
    let holder = ask.observed.holder.clone();
    {
        let mut m = lock(&ask.memory);
        if m.probed != holder {
            m.probed = holder;
            m.unresponsive_since = None;
        }
    }
    if !held {
        return None;
    }
    if !ask.io {
        return lock(&ask.memory).probe_error.clone();
    }
    let Some(http) = &ask.http else {
        return Some("no HTTP client".into());
    };
    let answer = observe::probe(http, &ask.cfg.url, "/api/groups", PROBE_TIMEOUT, PROBE_BODY).await;
    let mut m = lock(&ask.memory);
    let error = match answer {
        // Any answer proves the event loop turns.
        Probe::Answered(_) | Probe::Status(_) => {
            m.unresponsive_since = None;
            m.last_answer_at = Some(Utc::now());
            None
        }
        Probe::TimedOut => {
            m.unresponsive_since
                .get_or_insert_with(|| (Instant::now(), Utc::now()));
            Some(format!(
                "GET /api/groups: no answer within {}",
                humantime::format_duration(PROBE_TIMEOUT)
            ))
        }
        Probe::Unreachable(e) => {
            m.unresponsive_since
                .get_or_insert_with(|| (Instant::now(), Utc::now()));
            Some(format!("GET /api/groups: {e}"))
        }
    };
    m.probe_error.clone_from(&error);
    error
}

/// The unit's state, or why it could not be read (remembered for the
/// collections that ask nothing).
async fn unit(ask: &Ask) -> (Option<UnitBody>, Option<String>) {
    if !ask.io {
        return lock(&ask.memory).unit.clone();
    }
    let read = read_unit(ask).await;
    lock(&ask.memory).unit = read.clone();
    read
}

async fn read_unit(ask: &Ask) -> (Option<UnitBody>, Option<String>) {
    let Some(address) = &ask.cfg.systemd_bus else {
        return (None, Some("off ([pynchy] systemd_bus)".into()));
    };
    if let Some(path) = address.strip_prefix("unix:path=") {
        let path = path.split(',').next().unwrap_or(path);
        if !std::path::Path::new(path).exists() {
            return (None, Some(format!("no systemd bus at {path}")));
        }
    }
    let timeout = Duration::from_secs(1);
    let mut slot = ask.bus.lock().await;
    if slot.is_none() {
        match systemd::connect(address, timeout).await {
            Ok(c) => *slot = Some(c),
            Err(e) => return (None, Some(e.to_string())),
        }
    }
    let Some(conn) = slot.clone() else {
        return (None, None);
    };
    match systemd::unit_state(&conn, &ask.cfg.systemd_unit, timeout).await {
        Ok(u) => (Some(unit_body(&ask.cfg.systemd_unit, &u)), None),
        Err(e) => {
            if matches!(e, systemd::SystemdError::Bus(_)) {
                *slot = None;
            }
            (None, Some(e.to_string()))
        }
    }
}

fn unit_body(name: &str, u: &UnitState) -> UnitBody {
    UnitBody {
        name: name.to_string(),
        active_state: u.active_state.clone(),
        sub_state: u.sub_state.clone(),
        result: u.result.clone(),
        n_restarts: u.n_restarts,
        exec_main: u.ended(),
        active_enter_at: u.active_enter_at.map(rfc3339),
    }
}

/// The deploy the last exit followed, classified once per exit (one read
/// of `router_state`, behind the database's gate).
async fn deploy_of_exit(ask: &Ask) -> Option<String> {
    let exit = ask.observed.last_exit?;
    let known = lock(&ask.memory)
        .exits
        .iter()
        .find(|(t, _)| *t == exit.instant)
        .map(|(_, d)| d.clone());
    if let Some(d) = known {
        return d;
    }
    if !ask.io {
        return None;
    }
    let read = read_deploy(ask).await;
    let continuation = observe::deploy_continuation(&ask.cfg.root).is_some();
    let deploy = match &read {
        Ok(d) => d.clone().filter(|d| follows_deploy(d, exit.at)),
        Err(_) => None,
    };
    let deploy = deploy.or_else(|| continuation.then(|| rfc3339(exit.at)));
    if let (Err(e), None) = (&read, &deploy) {
        // Not known either way: asked again at the next collection, rather
        // than an exit remembered as "not a deploy" for good.
        tracing::debug!(error = %e, "service: the deploy before an exit not read");
        return None;
    }
    let mut m = lock(&ask.memory);
    m.exits
        .retain(|(t, _)| t.elapsed() < observe::RESTART_WINDOW);
    m.exits.push((exit.instant, deploy.clone()));
    deploy
}

/// A deploy in progress while the port's holder does not answer: pynchy
/// wrote `last_deploy_at` within the restart grace and then stops itself
/// (its HTTP server may close before the process ends). Read only while a
/// probe fails; remembered for the collections that ask nothing.
async fn deploy_while_held(ask: &Ask, held: bool) -> Option<String> {
    if !held || lock(&ask.memory).unresponsive_since.is_none() {
        lock(&ask.memory).deploy_while_held = None;
        return None;
    }
    if !ask.io {
        return lock(&ask.memory).deploy_while_held.clone();
    }
    // The process that wrote it: one started after the deploy is the new
    // pynchy, whose silence is its own (a second's slack: a start time read
    // from /proc is as exact as the boot time's whole seconds; pynchy's unit
    // starts the new process 10 s after the old one ends, at the earliest).
    let started = ask.observed.process.as_ref().and_then(|p| p.started_at);
    let recent = |d: &String| {
        crate::stamp::parse_time(d).is_some_and(|at| {
            let age = Utc::now() - at;
            age >= -chrono::Duration::seconds(5)
                && age.to_std().unwrap_or_default() < ask.cfg.restart_grace
                && started.is_none_or(|s| s <= at + chrono::Duration::seconds(1))
        })
    };
    let deploy = read_deploy(ask).await.ok().flatten().filter(recent);
    lock(&ask.memory).deploy_while_held.clone_from(&deploy);
    deploy
}

/// The status observation gives, and the process it is about (pid, start).
struct Seen {
    status: ServiceStatus,
    pid: Option<u32>,
    started: Option<DateTime<Utc>>,
}

/// What pynchy's process, port and probes say, with no push.
fn observed_status(ask: &Ask, held: bool, deploy: bool, deploy_held: bool) -> Seen {
    let o = &ask.observed;
    let since = lock(&ask.memory).unresponsive_since;
    let grace = ask.cfg.restart_grace;
    let mut seen = Seen {
        status: ServiceStatus::Down,
        pid: o.process.as_ref().map(|p| p.pid),
        started: o.process.as_ref().and_then(|p| p.started_at),
    };
    if held && deploy_held {
        seen.status = ServiceStatus::Restarting;
        return seen;
    }
    if held {
        seen.status = match since {
            Some((t, _)) if t.elapsed() >= ask.cfg.unresponsive_grace => ServiceStatus::Down,
            Some(_) => ServiceStatus::Unresponsive,
            None => ServiceStatus::Ok,
        };
        return seen;
    }
    if deploy && o.last_exit.is_some_and(|e| e.instant.elapsed() < grace) {
        seen.status = ServiceStatus::Restarting;
        return seen;
    }
    // A pynchy process working in the root, not listening yet (looked for
    // only when the collection may do I/O).
    let starting = ask
        .io
        .then(|| observe::starting_in(&ask.cfg.root))
        .flatten();
    if let Some(pid) = starting {
        let started = observe::started_at(pid);
        let young = started.is_none_or(|t| (Utc::now() - t).to_std().unwrap_or_default() < grace);
        if young {
            seen = Seen {
                status: ServiceStatus::Starting,
                pid: Some(pid),
                started,
            };
        }
    }
    seen
}

pub(super) async fn body(ask: Ask) -> ServiceBody {
    let o = &ask.observed;
    let held = holds_port(o);
    let (probe_error, (unit, unit_error), deploy) =
        tokio::join!(probe(&ask, held), unit(&ask), deploy_of_exit(&ask));
    // After the probe: it says whether the holder answers.
    let held_deploy = deploy_while_held(&ask, held).await;
    let Seen {
        mut status,
        pid,
        mut started,
    } = observed_status(&ask, held, deploy.is_some(), held_deploy.is_some());
    let deploy = deploy.or(held_deploy);
    let (mut source, mut started_text) = (Source::Observed, None);
    if let Some((pushed, at, text)) = push_wins(&ask, held) {
        (source, status, started, started_text) = (Source::Pushed, pushed, Some(at), Some(text));
    }
    if ask.shutting_down {
        status = ServiceStatus::ShuttingDown;
    }
    let live = matches!(
        status,
        ServiceStatus::Ok | ServiceStatus::Unresponsive | ServiceStatus::Starting
    ) || (status == ServiceStatus::ShuttingDown && held);
    ask.up.set(matches!(
        status,
        ServiceStatus::Ok | ServiceStatus::Unresponsive
    ));
    let (since, last_answer, deploys) = remembered(&ask);
    let restarts = o.restarts_recent() as u64;
    ServiceBody {
        status,
        started_at: started_text.or_else(|| started.map(rfc3339)),
        uptime_seconds: started
            .filter(|_| live)
            .map(|t| (Utc::now() - t).num_seconds().max(0)),
        source,
        port: ask.cfg.port,
        process: process_view(o.holder.as_ref()),
        pid,
        last_answer_at: last_answer.map(rfc3339),
        unresponsive_since: since.map(|(_, t)| rfc3339(t)),
        probe_error,
        restarts_last_10m: restarts,
        deploys_last_10m: deploys.min(restarts),
        last_exit_at: o.last_exit.map(|e| rfc3339(e.at)),
        deploy_at: deploy,
        unit,
        unit_error,
    }
}

/// From memory: since when the holder has not answered, its last answer,
/// and how many exits in the restart window followed a deploy.
fn remembered(ask: &Ask) -> (Option<Since>, Option<DateTime<Utc>>, u64) {
    let m = lock(&ask.memory);
    let deploys = m
        .exits
        .iter()
        .filter(|(t, d)| d.is_some() && t.elapsed() < observe::RESTART_WINDOW)
        .count() as u64;
    (m.unresponsive_since, m.last_answer_at, deploys)
}

/// Whether a pynchy process holds its port (readable in `/proc` or not).
fn holds_port(o: &Observed) -> bool {
    matches!(
        o.holder,
        Some(Holder::Process { .. } | Holder::Hidden { .. })
    )
}

/// Whether a fresh push makes the body (see [`push_wins`]): only then may
/// a body be built without asking (a process that ended after the push is
/// judged by a collection that reads the deploy before its exit).
pub(super) fn push_decides(ask: &Ask) -> bool {
    push_wins(ask, holds_port(&ask.observed)).is_some()
}

/// The fresh push's status, start and start as pushed, when it wins: while
/// fresh, unless the process holding the port ended after it (a dead
/// pynchy's last push is not its state).
fn push_wins(ask: &Ask, held: bool) -> Option<(ServiceStatus, DateTime<Utc>, String)> {
    let p = ask.pushed.as_ref()?;
    let last_exit = ask.observed.last_exit;
    if !held && last_exit.is_some_and(|e| e.instant > p.stamp.instant) {
        return None;
    }
    let status = match p.value.status {
        PushedStatus::Ok => ServiceStatus::Ok,
        PushedStatus::ShuttingDown => ServiceStatus::ShuttingDown,
    };
    // `started_at` served exactly as pynchy pushed it.
    Some((
        status,
        p.value.started_at.at,
        p.value.started_at.raw.clone(),
    ))
}

fn process_view(holder: Option<&Holder>) -> ProcessView {
    match holder {
        Some(Holder::Process { .. }) => ProcessView::Readable,
        Some(Holder::Hidden { .. }) => ProcessView::NotReadable,
        Some(Holder::Itself) => ProcessView::Itself,
        Some(Holder::Nobody) | None => ProcessView::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_after_a_deploy() {
        let exit = Utc::now();
        let just_before = rfc3339(exit - chrono::Duration::seconds(3));
        assert!(follows_deploy(&just_before, exit));
        let long_ago = rfc3339(exit - chrono::Duration::hours(2));
        assert!(!follows_deploy(&long_ago, exit));
        assert!(!follows_deploy("not a time", exit));
    }
}
