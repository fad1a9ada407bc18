//! `gateway`: the LLM gateway. In `litellm` mode: the LiteLLM and Postgres
//! containers' states (Docker) and the proxy's model health (HTTP), asked
//! concurrently so a slow daemon never holds up the counts, nor the reverse.
//! In `builtin` or `none` mode: the mode alone.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{Schedule, Section, Work};
use crate::config::{GatewayConfig, GatewayMode};
use crate::context::Context;
use crate::sources::docker::{self, ContainerState};
use crate::sources::litellm;

/// The `gateway` body in `litellm` mode.
#[derive(Debug, Serialize, PartialEq)]
pub struct LitellmBody {
    pub mode: &'static str,
    pub litellm_container: String,
    pub postgres_container: String,
    pub healthy_models: Option<u64>,
    pub unhealthy_models: Option<u64>,
    /// Model names of the unhealthy endpoints (null when unknown).
    pub unhealthy: Option<Vec<String>>,
    /// `ok`, or `unreachable` when the Docker daemon did not answer.
    pub docker: &'static str,
    /// Why the model counts are null (null when they are known).
    pub models_error: Option<String>,
}

const SCHEDULE: Schedule = Schedule::every(Duration::from_secs(10), Duration::from_secs(5));

pub struct Gateway {
    cfg: GatewayConfig,
    timeout: Duration,
    docker: Result<bollard::Docker, String>,
    http: reqwest::Client,
}

impl Gateway {
    pub fn new(ctx: Arc<Context>) -> Self {
        let cfg = ctx.config.gateway.clone();
        // Answer a little before the poller's timeout, with what is known by then.
        let timeout = SCHEDULE.with_overrides(&ctx.config, "gateway").timeout * 9 / 10;
        let docker = docker::client(&cfg.docker_host, timeout);
        Gateway {
            cfg,
            timeout,
            docker,
            http: litellm::client(),
        }
    }
}

impl Section for Gateway {
    fn name(&self) -> &'static str {
        "gateway"
    }

    fn default_schedule(&self) -> Schedule {
        SCHEDULE
    }

    fn collect(&self) -> Work {
        let mode = self.cfg.mode;
        if mode != GatewayMode::Litellm {
            return Work::future(async move { Ok(serde_json::json!({ "mode": mode.as_str() })) });
        }
        let cfg = self.cfg.clone();
        let timeout = self.timeout;
        let docker = self.docker.clone();
        let http = self.http.clone();
        Work::future(async move {
            let key = crate::config::secret(&cfg.key_env);
            let containers = async {
                match &docker {
                    Ok(d) => {
                        tokio::join!(
                            docker::container_state(d, &cfg.litellm_container, timeout),
                            docker::container_state(d, &cfg.postgres_container, timeout),
                        )
                    }
                    Err(_) => (ContainerState::Unreachable, ContainerState::Unreachable),
                }
            };
            let models = litellm::health(&http, &cfg.url, key.as_deref(), timeout);
            let ((litellm_c, postgres_c), models) = tokio::join!(containers, models);
            let docker_ok = litellm_c != ContainerState::Unreachable
                || postgres_c != ContainerState::Unreachable;
            let (healthy, unhealthy, names, models_error) = match models {
                Ok(m) => (
                    Some(m.healthy),
                    Some(m.unhealthy),
                    Some(m.unhealthy_models),
                    None,
                ),
                Err(e) => (None, None, None, Some(e.to_string())),
            };
            super::to_body(LitellmBody {
                mode: "litellm",
                litellm_container: litellm_c.as_str().to_string(),
                postgres_container: postgres_c.as_str().to_string(),
                healthy_models: healthy,
                unhealthy_models: unhealthy,
                unhealthy: names,
                docker: if docker_ok { "ok" } else { "unreachable" },
                models_error,
            })
        })
    }
}
