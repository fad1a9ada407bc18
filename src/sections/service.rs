//! `service`: is pynchy up, since when, and if not, why — observed from what
//! an unpatched pynchy exposes (install notes §9), refined by a push.
//!
//! - **Its process**: the one listening on pynchy's port (`[pynchy] url`),
//!   found through `/proc`; its start time gives `started_at`. A pidfd shows
//!   its end at once, and the port is looked at every 500 ms while nobody
//!   holds it, so death and a new process show within a second. Restarts are
//!   counted over 10 minutes. Where `/proc` of pynchy's process is not
//!   readable (another user), the body says so and the port alone is used.
//! - **Its event loop**: `GET /api/groups` (in memory: pynchy's cheapest
//!   route) every interval (10 s) with a 2 s timeout. Holding the port
//!   without answering is `unresponsive` (degraded), then `down` after
//!   `[pynchy] unresponsive_grace`.
//! - **A deploy's restart**: pynchy writes `router_state.last_deploy_at`
//!   (and `data/deploy_continuation.json`) just before it stops itself; an
//!   exit right after that is `restarting` (degraded) for up to
//!   `[pynchy] restart_grace`, then `down`. A pynchy process working in the
//!   install root whose port is not open yet is `starting`, likewise.
//! - **Its systemd user unit**, over D-Bus when the bus is reachable: its
//!   words go into the reason ("pynchy.service failed (exit code 1), 6 restarts").
//! - **A push** (`PUT /push/service`) wins while fresh and pynchy holds its
//!   port (`shutting_down` comes only from it); when pushes stop, observation
//!   takes over again, logged once. A missing push is never a reason.
//!
//! Never asked: pynchy's `/status` (paid LiteLLM calls), `/api/events`
//! (users' messages), any `POST`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, Finding, Health, Rule, Schedule, Section, Work};
use crate::config::{Config, PynchyConfig, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::db::Db;
use crate::sources::push::PushedStatus;
use crate::sources::pynchy::{self as observe, Holder, Observed, Probe};
use crate::sources::systemd::{self, UnitState};
use crate::sources::watch::Changes;

/// What `service.status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// pynchy holds its port and answers.
    Ok,
    /// A pynchy process works in the install root; its port is not open yet.
    Starting,
    /// pynchy stopped itself for a deploy; the new process is not there yet.
    Restarting,
    /// pynchy holds its port but does not answer (its event loop is stuck).
    Unresponsive,
    /// Not running, or not answering past the grace.
    Down,
    /// pynchy (by its push) or this daemon is shutting down.
    ShuttingDown,
}

impl ServiceStatus {
    fn word(self) -> &'static str {
        match self {
            ServiceStatus::Ok => "ok",
            ServiceStatus::Starting => "starting",
            ServiceStatus::Restarting => "restarting",
            ServiceStatus::Unresponsive => "unresponsive",
            ServiceStatus::Down => "down",
            ServiceStatus::ShuttingDown => "shutting_down",
        }
    }
}

pub use super::Source;

/// What could be seen of the process holding pynchy's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessView {
    /// Its `/proc` entry is readable: pid and start time are known.
    Readable,
    /// The port is held by a process this user cannot read (another user's):
    /// only the port is known.
    NotReadable,
    /// Nothing listens on pynchy's port.
    None,
    /// `[pynchy] url` points at pynchy-status itself.
    Itself,
}

/// pynchy's systemd unit, as systemd tells it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct UnitBody {
    pub name: String,
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
    pub n_restarts: u32,
    /// How the main process last ended ("exit code 1", "signal 9"), null while running.
    pub exec_main: Option<String>,
    pub active_enter_at: Option<String>,
}

/// The `service` body.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ServiceBody {
    pub status: ServiceStatus,
    /// When pynchy's process started (from `/proc`, or as pushed).
    pub started_at: Option<String>,
    pub uptime_seconds: Option<i64>,
    pub source: Source,
    /// pynchy's HTTP port (its `[server] port`).
    pub port: u16,
    pub process: ProcessView,
    pub pid: Option<u32>,
    /// When `GET /api/groups` last answered.
    pub last_answer_at: Option<String>,
    /// Since when it has not answered, while it does not.
    pub unresponsive_since: Option<String>,
    /// Why the last probe failed, if it did.
    pub probe_error: Option<String>,
    /// New processes that took the port within the last 10 minutes.
    pub restarts_last_10m: u64,
    /// Of those, restarts that followed a deploy.
    pub deploys_last_10m: u64,
    /// When the last process holding the port ended.
    pub last_exit_at: Option<String>,
    /// `router_state.last_deploy_at`, when the last exit followed it (a deploy's restart).
    pub deploy_at: Option<String>,
    /// pynchy's systemd unit, when its bus is reachable.
    pub unit: Option<UnitBody>,
    /// Why the unit could not be read (no bus, no such unit), if it could not.
    pub unit_error: Option<String>,
}

pub static SHUTTING_DOWN: Rule = Rule {
    name: "service_shutting_down",
    default: Severity::Down,
    what: "pynchy says it is shutting down (push), or this daemon is stopping",
};
pub static DOWN: Rule = Rule {
    name: "service_down",
    default: Severity::Down,
    what: "nothing listens on pynchy's port (not inside a deploy's restart), or pynchy has not answered for [pynchy] unresponsive_grace",
};
pub static UNRESPONSIVE: Rule = Rule {
    name: "service_unresponsive",
    default: Severity::Degraded,
    what: "pynchy holds its port but GET /api/groups did not answer (within unresponsive_grace)",
};
pub static RESTARTING: Rule = Rule {
    name: "service_restarting",
    default: Severity::Degraded,
    what: "pynchy stopped itself for a deploy and is not back yet (within restart_grace)",
};
pub static STARTING: Rule = Rule {
    name: "service_starting",
    default: Severity::Degraded,
    what: "a pynchy process runs in the install root but its port is not open yet (within restart_grace)",
};
pub static CRASH_LOOP: Rule = Rule {
    name: "service_crash_loop",
    default: Severity::Degraded,
    what: "pynchy restarted more than [rollup] service_restarts_max times in 10 minutes (deploys not counted)",
};

impl ServiceBody {
    /// The unit's words for a reason: "; pynchy.service failed (exit code 1), 6 restarts".
    fn unit_words(&self) -> String {
        let Some(u) = &self.unit else {
            return String::new();
        };
        let mut s = format!("; {} {}", u.name, u.active_state);
        if u.sub_state != u.active_state {
            s.push_str(&format!(" ({})", u.sub_state));
        }
        if let Some(how) = &u.exec_main {
            s.push_str(&format!(", last exit: {how}"));
        }
        if u.n_restarts > 0 {
            s.push_str(&format!(", {} restarts", u.n_restarts));
        }
        s
    }
}

impl Body for ServiceBody {
    fn findings(&self, cfg: &RollupConfig, out: &mut Vec<Finding>) {
        let port = self.port;
        let unit = self.unit_words();
        match self.status {
            ServiceStatus::ShuttingDown => {
                out.push(Finding::new(&SHUTTING_DOWN, "pynchy is shutting down"))
            }
            ServiceStatus::Down => {
                let why = match (&self.unresponsive_since, self.process) {
                    (Some(since), _) => format!(
                        "pynchy holds port {port} but has not answered since {since} (its event loop is stuck)"
                    ),
                    (None, ProcessView::Itself) => format!(
                        "pynchy is not running: port {port} is pynchy-status's own ([pynchy] url)"
                    ),
                    (None, _) => format!("pynchy is not running: nothing listens on port {port}"),
                };
                out.push(Finding::new(&DOWN, format!("{why}{unit}")))
            }
            ServiceStatus::Unresponsive => out.push(Finding::new(
                &UNRESPONSIVE,
                format!(
                    "pynchy holds port {port} but does not answer (since {})",
                    self.unresponsive_since.as_deref().unwrap_or("now")
                ),
            )),
            ServiceStatus::Restarting => out.push(Finding::new(
                &RESTARTING,
                format!(
                    "pynchy is restarting after a deploy (deploy at {}){unit}",
                    self.deploy_at.as_deref().unwrap_or("-")
                ),
            )),
            ServiceStatus::Starting => out.push(Finding::new(
                &STARTING,
                format!(
                    "pynchy is starting (pid {}): port {port} is not open yet{unit}",
                    super::show(&self.pid)
                ),
            )),
            ServiceStatus::Ok => {}
        }
        let crashes = self.restarts_last_10m.saturating_sub(self.deploys_last_10m);
        if crashes > cfg.service_restarts_max {
            out.push(Finding::new(
                &CRASH_LOOP,
                format!("pynchy restarted {crashes} times in the last 10 min{unit}"),
            ));
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        prom::gauge(
            reg,
            "pynchy_service_up",
            "1 if pynchy holds its port and answers (status ok)",
            prom::flag(self.status == ServiceStatus::Ok),
        );
        prom::gauge(
            reg,
            "pynchy_service_restarts_last_10m",
            "New pynchy processes that took its port within the last 10 minutes",
            self.restarts_last_10m as f64,
        );
        if let Some(u) = self.uptime_seconds {
            prom::gauge(
                reg,
                "pynchy_service_uptime_seconds",
                "Seconds since pynchy's process started",
                u as f64,
            );
        }
    }

    fn health(&self, h: &mut Health) {
        h.uptime_seconds = self.uptime_seconds;
    }

    fn summary(&self) -> String {
        let up = match self.uptime_seconds {
            Some(s) => {
                let secs = u64::try_from(s).unwrap_or(0);
                // Whole minutes past the first one: "2h 0m", not "7210s".
                let rounded = if secs >= 60 { secs - secs % 60 } else { secs };
                humantime::format_duration(std::time::Duration::from_secs(rounded)).to_string()
            }
            None => "-".into(),
        };
        format!(
            "{} up {} ({})",
            self.status.word(),
            up,
            match self.source {
                Source::Observed => "observed",
                Source::Pushed => "pushed",
            }
        )
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What the section remembers between collections.
#[derive(Default)]
struct Memory {
    /// The first failed probe of the current holder: monotonic and wall clock.
    unresponsive_since: Option<(Instant, DateTime<Utc>)>,
    last_answer_at: Option<DateTime<Utc>>,
    /// The holder the probes were about.
    probed: Option<Holder>,
    /// Exits already classified: (when it ended, the deploy it followed).
    exits: Vec<(Instant, Option<String>)>,
    /// The unit as last read, or why it could not be.
    unit: (Option<UnitBody>, Option<String>),
    /// The last probe's error.
    probe_error: Option<String>,
}

pub struct Service {
    ctx: Arc<Context>,
    cfg: PynchyConfig,
    observed: Arc<Mutex<Observed>>,
    changes: Arc<Changes>,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
    http: Result<reqwest::Client, String>,
    memory: Arc<Mutex<Memory>>,
    db: Arc<Db>,
    gate: super::Gate,
    bus: Arc<tokio::sync::Mutex<Option<zbus::Connection>>>,
    push: super::PushFreshness,
}

impl Drop for Service {
    fn drop(&mut self) {
        let f = self.follower.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = f.take() {
            task.abort();
        }
    }
}

/// How long a probe of pynchy's HTTP server may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most read of a probe's answer.
const PROBE_BODY: u64 = 1 << 20;
/// An exit this close after `last_deploy_at` (or just before it) was the deploy's.
const DEPLOY_WINDOW: Duration = Duration::from_secs(120);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `router_state.last_deploy_at`, if it can be read.
fn last_deploy_at(db: &Db) -> Option<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let rows: Vec<Row> = super::db_rows(
        db,
        "SELECT value FROM router_state WHERE key = 'last_deploy_at'",
    )
    .ok()?;
    rows.into_iter().next().map(|r| r.value)
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
struct Ask {
    cfg: PynchyConfig,
    observed: Observed,
    http: Option<reqwest::Client>,
    memory: Arc<Mutex<Memory>>,
    db: Arc<Db>,
    gate: super::Gate,
    bus: Arc<tokio::sync::Mutex<Option<zbus::Connection>>>,
    pushed: Option<crate::sources::push::Stamped<crate::sources::push::ServiceState>>,
    shutting_down: bool,
    db_timeout: Duration,
    /// Where the verdict "pynchy runs" is shared with the scheduled sections.
    up: Arc<crate::context::Liveness>,
    /// A push just arrived: build the body from it and the last
    /// observation, asking nothing (the push is in `/status` at once).
    io: bool,
}

impl Service {
    /// Follows pynchy's port (once, from the first collection, inside the runtime).
    fn follow(&self) {
        let mut f = lock(&self.follower);
        if f.is_none() {
            observe::look(self.cfg.port, &self.observed);
            *f = Some(tokio::spawn(observe::follow_port(
                self.cfg.port,
                self.observed.clone(),
                self.changes.clone(),
            )));
        }
    }
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
    let db = ask.db.clone();
    let read = super::gated(&ask.gate, ask.db_timeout, move || last_deploy_at(&db)).await;
    let deploy = read.ok().flatten().filter(|d| follows_deploy(d, exit.at));
    let continuation = observe::deploy_continuation(&ask.cfg.root).is_some();
    let deploy = deploy.or_else(|| continuation.then(|| rfc3339(exit.at)));
    let mut m = lock(&ask.memory);
    m.exits
        .retain(|(t, _)| t.elapsed() < observe::RESTART_WINDOW);
    m.exits.push((exit.instant, deploy.clone()));
    deploy
}

/// The status observation gives, and the process it is about (pid, start).
struct Seen {
    status: ServiceStatus,
    pid: Option<u32>,
    started: Option<DateTime<Utc>>,
}

/// What pynchy's process, port and probes say, with no push.
fn observed_status(ask: &Ask, held: bool, deploy: bool) -> Seen {
    let o = &ask.observed;
    let since = lock(&ask.memory).unresponsive_since;
    let grace = ask.cfg.restart_grace;
    let mut seen = Seen {
        status: ServiceStatus::Down,
        pid: o.process.as_ref().map(|p| p.pid),
        started: o.process.as_ref().and_then(|p| p.started_at),
    };
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

async fn body(ask: Ask) -> ServiceBody {
    let o = &ask.observed;
    let held = matches!(
        o.holder,
        Some(Holder::Process { .. } | Holder::Hidden { .. })
    );
    let (probe_error, (unit, unit_error), deploy) =
        tokio::join!(probe(&ask, held), unit(&ask), deploy_of_exit(&ask));
    let Seen {
        mut status,
        pid,
        mut started,
    } = observed_status(&ask, held, deploy.is_some());
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
    let (since, last_answer, deploys) = {
        let m = lock(&ask.memory);
        let deploys = m
            .exits
            .iter()
            .filter(|(t, d)| d.is_some() && t.elapsed() < observe::RESTART_WINDOW)
            .count() as u64;
        (m.unresponsive_since, m.last_answer_at, deploys)
    };
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

impl Section for Service {
    type Body = ServiceBody;

    fn collect(&self) -> Work<ServiceBody> {
        self.follow();
        let ask = Ask {
            cfg: self.cfg.clone(),
            observed: lock(&self.observed).clone(),
            http: self.http.clone().ok(),
            memory: self.memory.clone(),
            db: self.db.clone(),
            gate: self.gate.clone(),
            bus: self.bus.clone(),
            pushed: self
                .push
                .fresh(self.ctx.push_source.service(), self.ctx.config.push.ttl),
            shutting_down: self.ctx.is_shutting_down(),
            db_timeout: Duration::from_secs(1),
            up: self.ctx.pynchy_up.clone(),
            io: !self.ctx.push_arrived.take(SectionId::Service),
        };
        Work::future(async move { Ok(body(ask).await) })
    }

    /// Its process's start and end, and pushes, collect it at once.
    fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
        Some(self.changes.clone())
    }

    fn refresh(&self) -> super::Refresh {
        super::Refresh::Event
    }

    /// When the last push's TTL runs out: observation from that instant.
    fn wake_at(&self) -> Option<std::time::Instant> {
        super::PushFreshness::expires(self.ctx.push_source.service(), self.ctx.config.push.ttl)
    }
}

impl Builtin for Service {
    const ID: SectionId = SectionId::Service;
    const RULES: &'static [&'static Rule] = &[
        &SHUTTING_DOWN,
        &DOWN,
        &UNRESPONSIVE,
        &RESTARTING,
        &STARTING,
        &CRASH_LOOP,
    ];

    /// Every 10 s (one `GET /api/groups`), and at once when pynchy's process
    /// starts or ends, or pushes.
    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(10), Duration::from_secs(4))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        Service {
            ctx: ctx.clone(),
            cfg: ctx.config.pynchy.clone(),
            observed: Arc::default(),
            changes: Changes::new(),
            follower: Mutex::new(None),
            http: crate::client::outbound().map_err(|e| e.to_string()),
            memory: Arc::default(),
            db: Arc::new(super::db_for(ctx, schedule)),
            gate: super::db_gate(ctx),
            bus: Arc::default(),
            push: super::PushFreshness::new("service"),
        }
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
