//! `gateway`: the LLM gateway. In `litellm` mode, every interval: the LiteLLM
//! and Postgres containers' states (Docker) and the proxy's free readiness
//! probe, asked concurrently. The proxy's model check (`/health`) makes one
//! *paid* LLM request per model, so it runs on its own, much longer interval
//! (`[gateway] models_interval`, 10 min), once at start-up and on
//! `POST /refresh/gateway`; between checks the last result is served with
//! `models_checked_at`. Never two paid checks within `models_min_gap` (1 min),
//! whatever asks; the last check outlives a reload. In `builtin` or `none`
//! mode: the mode alone.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::queue::DockerView;
use super::{prom, Body, Builtin, CollectError, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, GatewayConfig, GatewayMode, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::docker::{self, ContainerState};
use crate::sources::litellm::{self, HealthError, ModelHealth};
use crate::sources::watch::Changes;

/// The `gateway` body in `litellm` mode.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LitellmBody {
    /// Always `litellm` here.
    pub mode: GatewayMode,
    pub litellm_container: String,
    pub postgres_container: String,
    pub healthy_models: Option<u64>,
    pub unhealthy_models: Option<u64>,
    /// Model names of the unhealthy endpoints, sorted, at most 50 (null
    /// when unknown).
    pub unhealthy: Option<Vec<String>>,
    /// How many distinct names `unhealthy` would list without its cap.
    pub unhealthy_names: Option<u64>,
    /// `ok`, or `unreachable` when the Docker daemon did not answer.
    pub docker: DockerView,
    /// The proxy's readiness probe.
    pub proxy: ProxyState,
    /// Why the model counts are null (null when they are known, or when the
    /// model check is off).
    pub models_error: Option<String>,
    /// When the model check last answered (null: never, or off).
    pub models_checked_at: Option<String>,
}

/// What the proxy's readiness probe said.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyState {
    /// 200: up and ready to serve.
    Ready,
    /// It answered, not 200 (503 while starting or stopping).
    NotReady,
    /// No answer: refused, or nothing within the timeout.
    Unreachable,
}

impl ProxyState {
    fn of(r: litellm::Readiness) -> ProxyState {
        match r {
            litellm::Readiness::Ready => ProxyState::Ready,
            litellm::Readiness::NotReady(_) => ProxyState::NotReady,
            litellm::Readiness::Unreachable => ProxyState::Unreachable,
        }
    }

    fn words(self) -> &'static str {
        match self {
            ProxyState::Ready => "ready",
            ProxyState::NotReady => "not ready",
            ProxyState::Unreachable => "unreachable",
        }
    }
}

/// The `gateway` body in any other mode: the mode alone.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct OtherBody {
    pub mode: GatewayMode,
}

/// The `gateway` body.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum GatewayBody {
    Litellm(Box<LitellmBody>),
    Other(OtherBody),
}

pub static LITELLM_NOT_RUNNING: Rule = Rule {
    name: "litellm_not_running",
    default: Severity::Down,
    what: "the LiteLLM container is not running (mode litellm)",
};
pub static POSTGRES_NOT_RUNNING: Rule = Rule {
    name: "postgres_not_running",
    default: Severity::Degraded,
    what: "the LiteLLM Postgres container is not running",
};
pub static DOCKER_UNREACHABLE: Rule = Rule {
    name: "docker_unreachable",
    default: Severity::Degraded,
    what: "the Docker daemon cannot be reached: container states unknown",
};
pub static PROXY_NOT_READY: Rule = Rule {
    name: "gateway_not_ready",
    default: Severity::Degraded,
    what: "the LiteLLM container runs but its proxy is not ready (readiness probe)",
};
pub static MODEL_UNHEALTHY: Rule = Rule {
    name: "model_unhealthy",
    default: Severity::Degraded,
    what: "a model endpoint is unhealthy, or the counts are unknown",
};

/// Up to this many unhealthy models, one reason each; more make one reason.
const PER_MODEL_REASONS: usize = 5;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabel {
    role: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabel {
    health: String,
}

impl LitellmBody {
    fn containers(&self) -> [(&'static str, &str, &'static Rule, &'static str); 2] {
        [
            (
                "litellm",
                &self.litellm_container,
                &LITELLM_NOT_RUNNING,
                "LiteLLM",
            ),
            (
                "postgres",
                &self.postgres_container,
                &POSTGRES_NOT_RUNNING,
                "Postgres",
            ),
        ]
    }

    fn findings(&self, out: &mut Vec<Finding>) {
        if self.docker == DockerView::Unreachable {
            out.push(Finding::new(
                &DOCKER_UNREACHABLE,
                "Docker daemon unreachable: container states unknown",
            ));
        }
        for (_, state, rule, what) in self.containers() {
            if state != "running" && state != "unreachable" {
                let state = state.replace('_', " ");
                out.push(Finding::about(
                    rule,
                    what,
                    format!("{what} container is {state}"),
                ));
            }
        }
        let container_up = matches!(self.litellm_container.as_str(), "running" | "unreachable");
        if container_up && self.proxy != ProxyState::Ready {
            let state = self.proxy.words();
            out.push(Finding::new(
                &PROXY_NOT_READY,
                format!("LiteLLM proxy is {state}"),
            ));
        }
        self.model_findings(out);
    }

    /// Unhealthy models: one reason each, or one for many.
    fn model_findings(&self, out: &mut Vec<Finding>) {
        let listed = self.unhealthy.as_deref().unwrap_or_default();
        let names = self.unhealthy_names.unwrap_or(listed.len() as u64);
        if names as usize > PER_MODEL_REASONS {
            // Many: one reason, with the first few names.
            let first = listed[..listed.len().min(3)].join(", ");
            let more = names.saturating_sub(3);
            out.push(Finding::new(
                &MODEL_UNHEALTHY,
                format!("{names} models unhealthy: {first} and {more} more"),
            ));
        } else {
            for m in listed {
                out.push(Finding::about(
                    &MODEL_UNHEALTHY,
                    m.as_str(),
                    format!("model {m} unhealthy"),
                ));
            }
        }
        match self.unhealthy_models {
            Some(n) if n > 0 && listed.is_empty() => out.push(Finding::new(
                &MODEL_UNHEALTHY,
                format!("{n} model endpoints unhealthy"),
            )),
            _ => {}
        }
        // A proxy that is not ready already says why the counts are unknown.
        if let Some(why) = self
            .models_error
            .as_ref()
            .filter(|_| self.proxy == ProxyState::Ready)
        {
            out.push(Finding::new(
                &MODEL_UNHEALTHY,
                format!("model health unknown: {why}"),
            ));
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        let containers = self
            .containers()
            .into_iter()
            .filter(|(_, state, _, _)| *state != "unreachable")
            .map(|(role, state, _, _)| {
                let label = ContainerLabel {
                    role: role.into(),
                    state: state.into(),
                };
                (label, prom::flag(state == "running"))
            })
            .collect();
        prom::family(
            reg,
            "pynchy_gateway_container_running",
            "1 if the gateway container is running (label state: Docker's State.Status)",
            containers,
        );
        let models = [
            ("healthy", self.healthy_models),
            ("unhealthy", self.unhealthy_models),
        ]
        .into_iter()
        .filter_map(|(h, n)| Some((HealthLabel { health: h.into() }, n? as f64)))
        .collect();
        prom::family(
            reg,
            "pynchy_gateway_models",
            "Model endpoints by health, as LiteLLM reports",
            models,
        );
    }

    fn summary(&self) -> String {
        let total = match (self.healthy_models, self.unhealthy_models) {
            (Some(h), Some(u)) => (h + u).to_string(),
            _ => "?".into(),
        };
        format!(
            "litellm={} postgres={} models {}/{total} healthy",
            self.litellm_container,
            self.postgres_container,
            super::show(&self.healthy_models),
        )
    }
}

impl Body for GatewayBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        if let GatewayBody::Litellm(b) = self {
            b.findings(out);
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        if let GatewayBody::Litellm(b) = self {
            b.metrics(reg);
        }
    }

    fn summary(&self) -> String {
        match self {
            GatewayBody::Litellm(b) => b.summary(),
            GatewayBody::Other(o) => format!("mode={}", o.mode.as_str()),
        }
    }
}

/// The last model check: its answer, when it finished (wall clock and monotonic).
type Checked = (Result<ModelHealth, HealthError>, DateTime<Utc>, Instant);

pub struct Gateway {
    ctx: Arc<Context>,
    cfg: GatewayConfig,
    timeout: Duration,
    /// Made at the first collection that finds the Docker socket, and kept.
    docker: Mutex<Option<bollard::Docker>>,
    http: Result<reqwest::Client, String>,
    models: Arc<Mutex<Option<Checked>>>,
    /// Woken by Docker's events for the two containers.
    changes: Arc<Changes>,
    /// The task following Docker's events: ends with the section (a reload).
    events: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The containers' last states: while Docker's events are followed they
    /// change only with an event, so they are inspected again only then (or
    /// every `verify_interval`), not every interval.
    states: Arc<Mutex<Option<(ContainerState, ContainerState)>>>,
    verify: Duration,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let events = self.events.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = events.take() {
            task.abort();
        }
    }
}

impl Gateway {
    /// Follows Docker's event stream for the LiteLLM pair (once, from the
    /// first collection, which runs inside the runtime).
    fn follow_events(&self) {
        if !self.ctx.config.watch.enabled {
            return;
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.is_some() {
            return;
        }
        {
            let names = vec![
                self.cfg.litellm_container.clone(),
                self.cfg.postgres_container.clone(),
            ];
            let c = self.changes.clone();
            let connected = self.changes.watching_flag();
            *events = Some(tokio::spawn(docker::follow_events(
                self.cfg.docker_host.clone(),
                self.ctx.config.limits.docker_body,
                names,
                connected,
                move || c.mark(),
            )));
        }
    }

    /// The Docker client: `Ok(None)` while the socket is missing (the daemon
    /// is down: states unknown), an error when `docker_host` cannot be used.
    fn docker(&self) -> Result<Option<bollard::Docker>, CollectError> {
        let mut slot = self.docker.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let limit = self.ctx.config.limits.docker_body;
            match docker::client(&self.cfg.docker_host, self.timeout, limit) {
                Ok(d) => *slot = Some(d),
                Err(docker::ClientError::SocketMissing(_)) => return Ok(None),
                Err(e) => return Err(CollectError::new(e.to_string())),
            }
        }
        Ok(slot.clone())
    }

    /// Whether this collection runs the paid model check: at start-up, once
    /// per `models_interval`, and when asked (`POST /refresh/gateway`); and
    /// again at the next collection after a check that never reached the
    /// proxy (no connection: at boot pynchy starts the proxy's container
    /// after this daemon) — it cost nothing and proved nothing.
    fn models_due(&self) -> bool {
        let asked = self.ctx.refresh.take(SectionId::Gateway);
        let last = self.models.lock().unwrap_or_else(|p| p.into_inner());
        // The last paid check, and whether the gap since it allows another.
        let paid = last
            .as_ref()
            .filter(|(r, _, _)| !matches!(r, Err(HealthError::NotReached)));
        let gap = paid.is_none_or(|(_, _, at)| at.elapsed() >= self.cfg.models_min_gap);
        match (self.cfg.models_interval, last.as_ref()) {
            (None, _) => asked && gap,
            (Some(_), None) => true,
            (Some(_), Some((Err(HealthError::NotReached), _, _))) => true,
            (Some(every), Some((_, _, at))) => (asked || at.elapsed() >= every) && gap,
        }
    }
}

/// One collection's inputs.
struct Ask {
    cfg: GatewayConfig,
    timeout: Duration,
    /// `[limits] gateway_body`.
    limit: u64,
    docker: Option<bollard::Docker>,
    http: reqwest::Client,
    check_models: bool,
    models: Arc<Mutex<Option<Checked>>>,
    /// Inspect the containers (else the states held are current).
    inspect: bool,
    states: Arc<Mutex<Option<(ContainerState, ContainerState)>>>,
}

async fn containers(ask: &Ask) -> (ContainerState, ContainerState) {
    let held = ask.states.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let (false, Some(held)) = (ask.inspect, held) {
        return held;
    }
    let Some(d) = &ask.docker else {
        return (ContainerState::Unreachable, ContainerState::Unreachable);
    };
    let states = tokio::join!(
        docker::container_state(d, &ask.cfg.litellm_container, ask.timeout),
        docker::container_state(d, &ask.cfg.postgres_container, ask.timeout),
    );
    // Only states read whole are held: an unreachable daemon is asked again.
    let whole = ![&states.0, &states.1]
        .iter()
        .any(|s| matches!(s, ContainerState::Unreachable | ContainerState::TooLarge(_)));
    *ask.states.lock().unwrap_or_else(|p| p.into_inner()) = whole.then(|| states.clone());
    states
}

/// The last model check's answer, running a new one first if it is due.
async fn models(ask: &Ask) -> Option<Checked> {
    if ask.check_models {
        let key = crate::config::secret(&ask.cfg.key_env).or_else(|| ask.cfg.master_key.0.clone());
        let (url, key) = (&ask.cfg.url, key.as_deref());
        let answer = litellm::health(&ask.http, url, key, ask.timeout, ask.limit).await;
        let mut last = ask.models.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some((answer, Utc::now(), Instant::now()));
    }
    ask.models.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The body, or the section's error when Docker's answer was over
/// `[limits] docker_body` (a state we could not read is not "unreachable").
async fn litellm_body(ask: Ask) -> Result<LitellmBody, CollectError> {
    let probe = litellm::readiness(&ask.http, &ask.cfg.url, ask.timeout);
    let ((litellm_c, postgres_c), proxy, checked) =
        tokio::join!(containers(&ask), probe, models(&ask));
    for c in [&litellm_c, &postgres_c] {
        if let ContainerState::TooLarge(why) = c {
            return Err(CollectError::new(why.clone()));
        }
    }
    let docker_ok =
        litellm_c != ContainerState::Unreachable || postgres_c != ContainerState::Unreachable;
    let (health, models_error, at) = match checked {
        Some((Ok(m), at, _)) => (Some(m), None, Some(at)),
        Some((Err(e), at, _)) => (None, Some(e.to_string()), Some(at)),
        None => (None, None, None),
    };
    let unhealthy_names = health.as_ref().map(|m| m.unhealthy_names);
    let (healthy, unhealthy, names) = match health {
        Some(m) => (Some(m.healthy), Some(m.unhealthy), Some(m.unhealthy_models)),
        None => (None, None, None),
    };
    Ok(LitellmBody {
        mode: GatewayMode::Litellm,
        litellm_container: litellm_c.as_str().to_string(),
        postgres_container: postgres_c.as_str().to_string(),
        healthy_models: healthy,
        unhealthy_models: unhealthy,
        unhealthy: names,
        unhealthy_names,
        docker: if docker_ok {
            DockerView::Ok
        } else {
            DockerView::Unreachable
        },
        proxy: ProxyState::of(proxy),
        models_error,
        models_checked_at: at.map(crate::stamp::rfc3339),
    })
}

impl Section for Gateway {
    type Body = GatewayBody;

    fn collect(&self) -> Work<GatewayBody> {
        let mode = self.cfg.mode;
        if mode == GatewayMode::Litellm {
            self.follow_events();
        }
        if mode != GatewayMode::Litellm {
            let body = GatewayBody::Other(OtherBody { mode });
            return Work::future(async move { Ok(body) });
        }
        // A docker_host or client that cannot be built is a config problem:
        // say so rather than report the daemon as unreachable.
        let clients = self.http.clone().map_err(CollectError::new);
        let (docker, http) = match clients.and_then(|h| Ok((self.docker()?, h))) {
            Ok(c) => c,
            Err(e) => return Work::future(async move { Err(e) }),
        };
        let ask = Ask {
            cfg: self.cfg.clone(),
            timeout: self.timeout,
            limit: self.ctx.config.limits.gateway_body,
            docker,
            http,
            check_models: self.models_due(),
            models: self.models.clone(),
            inspect: self.changes.must_read(self.verify),
            states: self.states.clone(),
        };
        Work::future(async move { Ok(GatewayBody::Litellm(Box::new(litellm_body(ask).await?))) })
    }

    fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
        Some(self.changes.clone())
    }
}

impl Builtin for Gateway {
    const ID: SectionId = SectionId::Gateway;
    const RULES: &'static [&'static Rule] = &[
        &LITELLM_NOT_RUNNING,
        &POSTGRES_NOT_RUNNING,
        &DOCKER_UNREACHABLE,
        &PROXY_NOT_READY,
        &MODEL_UNHEALTHY,
    ];

    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(10), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let cfg = ctx.config.gateway.clone();
        // Answer a little before the poller's timeout, with what is known by then.
        let timeout = schedule.timeout * 9 / 10;
        let http = crate::client::outbound_trusting(cfg.ca_file.as_deref());
        let key = crate::config::secret(&cfg.key_env).or_else(|| cfg.master_key.0.clone());
        if cfg.mode == GatewayMode::Litellm
            && key.is_some()
            && crate::client::clear_text_beyond_loopback(&cfg.url)
        {
            tracing::warn!(
                url = %cfg.url,
                "the gateway key is sent over plain HTTP to a host that is not loopback: \
                 use an https:// url"
            );
        }
        // The last model check outlives a reload onto the same proxy: a
        // SIGHUP is not a reason to pay for another.
        let models = ctx.kept.get(format!("gateway models {}", cfg.url));
        Gateway {
            ctx: ctx.clone(),
            cfg,
            timeout,
            docker: Mutex::new(None),
            http,
            models,
            changes: Changes::new(),
            events: Mutex::new(None),
            states: Arc::default(),
            verify: schedule.verify,
        }
    }
}
