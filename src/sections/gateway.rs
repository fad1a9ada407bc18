//! `gateway`: the LLM gateway. In `litellm` mode: the LiteLLM and Postgres
//! containers' states (Docker) and the proxy's model health (HTTP), asked
//! concurrently so a slow daemon never holds up the counts, nor the reverse.
//! In `builtin` or `none` mode: the mode alone.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, CollectError, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, GatewayConfig, GatewayMode, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::docker::{self, ContainerState};
use crate::sources::litellm;

/// The `gateway` body in `litellm` mode.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct LitellmBody {
    pub mode: String,
    pub litellm_container: String,
    pub postgres_container: String,
    pub healthy_models: Option<u64>,
    pub unhealthy_models: Option<u64>,
    /// Model names of the unhealthy endpoints (null when unknown).
    pub unhealthy: Option<Vec<String>>,
    /// `ok`, or `unreachable` when the Docker daemon did not answer.
    pub docker: String,
    /// Why the model counts are null (null when they are known).
    pub models_error: Option<String>,
}

/// The `gateway` body in any other mode: the mode alone.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct OtherBody {
    pub mode: String,
}

/// The `gateway` body.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum GatewayBody {
    Litellm(LitellmBody),
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
pub static MODEL_UNHEALTHY: Rule = Rule {
    name: "model_unhealthy",
    default: Severity::Degraded,
    what: "a model endpoint is unhealthy, or the counts are unknown",
};

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
        if self.docker == "unreachable" {
            out.push(Finding::new(
                &DOCKER_UNREACHABLE,
                "Docker daemon unreachable: container states unknown",
            ));
        }
        for (_, state, rule, what) in self.containers() {
            if state != "running" && state != "unreachable" {
                let state = state.replace('_', " ");
                out.push(Finding::new(rule, format!("{what} container is {state}")));
            }
        }
        let listed = self.unhealthy.as_deref().unwrap_or_default();
        for m in listed {
            out.push(Finding::new(
                &MODEL_UNHEALTHY,
                format!("model {m} unhealthy"),
            ));
        }
        match self.unhealthy_models {
            Some(n) if n > 0 && listed.is_empty() => out.push(Finding::new(
                &MODEL_UNHEALTHY,
                format!("{n} model endpoints unhealthy"),
            )),
            _ => {}
        }
        if self.healthy_models.is_none() {
            let why = self.models_error.as_deref().unwrap_or("unknown");
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
            GatewayBody::Other(o) => format!("mode={}", o.mode),
        }
    }
}

pub struct Gateway {
    cfg: GatewayConfig,
    timeout: Duration,
    /// Made at the first collection that finds the Docker socket, and kept.
    docker: std::sync::Mutex<Option<bollard::Docker>>,
    http: Result<reqwest::Client, String>,
}

impl Gateway {
    /// The Docker client: `Ok(None)` while the socket is missing (the daemon
    /// is down: states unknown), an error when `docker_host` cannot be used.
    fn docker(&self) -> Result<Option<bollard::Docker>, CollectError> {
        let mut slot = self.docker.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            match docker::client(&self.cfg.docker_host, self.timeout) {
                Ok(d) => *slot = Some(d),
                Err(docker::ClientError::SocketMissing(_)) => return Ok(None),
                Err(e) => return Err(CollectError::new(e.to_string())),
            }
        }
        Ok(slot.clone())
    }
}

async fn litellm_body(
    cfg: GatewayConfig,
    timeout: Duration,
    docker: Option<bollard::Docker>,
    http: reqwest::Client,
) -> LitellmBody {
    let key = crate::config::secret(&cfg.key_env);
    let containers = async {
        let Some(docker) = &docker else {
            return (ContainerState::Unreachable, ContainerState::Unreachable);
        };
        tokio::join!(
            docker::container_state(docker, &cfg.litellm_container, timeout),
            docker::container_state(docker, &cfg.postgres_container, timeout),
        )
    };
    let models = litellm::health(&http, &cfg.url, key.as_deref(), timeout);
    let ((litellm_c, postgres_c), models) = tokio::join!(containers, models);
    let docker_ok =
        litellm_c != ContainerState::Unreachable || postgres_c != ContainerState::Unreachable;
    let (healthy, unhealthy, names, models_error) = match models {
        Ok(m) => (
            Some(m.healthy),
            Some(m.unhealthy),
            Some(m.unhealthy_models),
            None,
        ),
        Err(e) => (None, None, None, Some(e.to_string())),
    };
    LitellmBody {
        mode: "litellm".into(),
        litellm_container: litellm_c.as_str().to_string(),
        postgres_container: postgres_c.as_str().to_string(),
        healthy_models: healthy,
        unhealthy_models: unhealthy,
        unhealthy: names,
        docker: if docker_ok { "ok" } else { "unreachable" }.into(),
        models_error,
    }
}

impl Section for Gateway {
    type Body = GatewayBody;

    fn collect(&self) -> Work<GatewayBody> {
        let mode = self.cfg.mode;
        if mode != GatewayMode::Litellm {
            let body = GatewayBody::Other(OtherBody {
                mode: mode.as_str().into(),
            });
            return Work::future(async move { Ok(body) });
        }
        // A docker_host or client that cannot be built is a config problem:
        // say so rather than report the daemon as unreachable.
        let clients = self.http.clone().map_err(CollectError::new);
        let (docker, http) = match clients.and_then(|h| Ok((self.docker()?, h))) {
            Ok(c) => c,
            Err(e) => return Work::future(async move { Err(e) }),
        };
        let (cfg, timeout) = (self.cfg.clone(), self.timeout);
        Work::future(async move {
            Ok(GatewayBody::Litellm(
                litellm_body(cfg, timeout, docker, http).await,
            ))
        })
    }
}

impl Builtin for Gateway {
    const ID: SectionId = SectionId::Gateway;
    const RULES: &'static [&'static Rule] = &[
        &LITELLM_NOT_RUNNING,
        &POSTGRES_NOT_RUNNING,
        &DOCKER_UNREACHABLE,
        &MODEL_UNHEALTHY,
    ];

    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(10), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let cfg = ctx.config.gateway.clone();
        // Answer a little before the poller's timeout, with what is known by then.
        let timeout = schedule.timeout * 9 / 10;
        let http = crate::client::outbound().map_err(|e| e.to_string());
        Gateway {
            cfg,
            timeout,
            docker: std::sync::Mutex::new(None),
            http,
        }
    }
}
