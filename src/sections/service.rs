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
use std::time::Duration;

use futures_util::FutureExt;

use prometheus_client::registry::Registry;

use super::{prom, Body, Builtin, Finding, Health, Rule, Schedule, Section, Work};
use crate::config::{Config, PynchyConfig, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::db::Db;
use crate::sources::pynchy::{self as observe, Observed};
use crate::sources::watch::Changes;

use super::service_read::{body, lock, push_decides, Ask, Memory};

pub use super::service_body::*;

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
        prom::gauge(
            reg,
            "pynchy_service_crash_restarts_last_10m",
            "Of those, the ones that did not follow a deploy (what the crash-loop rule counts)",
            self.restarts_last_10m.saturating_sub(self.deploys_last_10m) as f64,
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

    /// One collection's inputs; `io`: whether it may ask (pynchy's HTTP
    /// server, the bus, the database) or only use what it last read.
    fn ask(&self, io: bool) -> Ask {
        Ask {
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
            io,
        }
    }
}

impl Section for Service {
    type Body = ServiceBody;

    fn collect(&self) -> Work<ServiceBody> {
        self.follow();
        let ask = self.ask(true);
        Work::future(async move { Ok(body(ask).await) })
    }

    /// The push with the last observation: a collection that asks nothing
    /// (its probe, unit and deploy as last read).
    fn pushed(&self) -> Option<Work<ServiceBody>> {
        let ask = self.ask(false);
        if !push_decides(&ask) {
            return None;
        }
        let body = body(ask).now_or_never()?;
        Some(Work::done(Ok(super::Update::New(body))))
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
