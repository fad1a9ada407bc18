//! Docker, through bollard: a container's `State.Status`, `not_found` when the
//! daemon answers 404, `unreachable` when the daemon cannot be reached (socket
//! missing, connection refused, no answer in time).
//!
//! bollard sends unversioned API paths, so daemons speaking API 1.41 (Debian's
//! `docker.io` 20.10) work.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::Docker;

/// What one container looks like from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Docker's own `State.Status`: running, exited, created, paused, restarting, dead.
    Status(String),
    NotFound,
    Unreachable,
}

impl ContainerState {
    pub fn as_str(&self) -> &str {
        match self {
            ContainerState::Status(s) => s,
            ContainerState::NotFound => "not_found",
            ContainerState::Unreachable => "unreachable",
        }
    }
}

/// Why no client could be made for a `docker_host`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The socket is not there (yet): the daemon is down or not started. Try
    /// again later; the containers' states are unknown meanwhile.
    #[error("Docker socket {0} does not exist")]
    SocketMissing(String),
    /// The address itself cannot be used: a config error.
    #[error("invalid docker_host `{host}`: {message}")]
    Invalid { host: String, message: String },
}

/// Connects lazily to `host` (`unix:///path`, `tcp://host:port` or `http://…`).
/// Nothing is sent until the first call.
pub fn client(host: &str, timeout: Duration) -> Result<Docker, ClientError> {
    let secs = timeout.as_secs().max(1);
    let result = if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, secs, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_unix(host, secs, bollard::API_DEFAULT_VERSION)
    };
    result.map_err(|e| match e {
        BollardError::SocketNotFoundError(path) => ClientError::SocketMissing(path),
        e => ClientError::Invalid {
            host: host.to_string(),
            message: e.to_string(),
        },
    })
}

/// Inspects one container, giving up after `timeout`.
pub async fn container_state(docker: &Docker, name: &str, timeout: Duration) -> ContainerState {
    match tokio::time::timeout(timeout, docker.inspect_container(name, None)).await {
        Err(_) => ContainerState::Unreachable,
        Ok(Ok(info)) => ContainerState::Status(
            info.state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".to_string()),
        ),
        Ok(Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        })) => ContainerState::NotFound,
        Ok(Err(e)) => {
            tracing::debug!(container = name, error = %e, "docker inspect failed");
            ContainerState::Unreachable
        }
    }
}

/// Follows the daemon's event stream for the containers called `names`,
/// calling `on_event` for each event, and once on every (re)connection (events
/// may have been missed while disconnected). Reconnects with a backoff of 1 s
/// doubling to 30 s while the daemon is away; `connected` says whether the
/// stream is up. Runs until its task is dropped.
pub async fn follow_events(
    host: String,
    names: Vec<String>,
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
    on_event: impl Fn() + Send + Sync + 'static,
) {
    use futures_util::StreamExt;
    use std::sync::atomic::Ordering;
    let mut backoff = Duration::from_secs(1);
    loop {
        // A long client timeout: the stream stays open while nothing happens.
        if let Ok(d) = client(&host, Duration::from_secs(24 * 3600)) {
            let filters = std::collections::HashMap::from([
                ("container".to_string(), names.clone()),
                ("type".to_string(), vec!["container".to_string()]),
            ]);
            let options = bollard::query_parameters::EventsOptions {
                filters: Some(filters),
                ..Default::default()
            };
            let mut stream = d.events(Some(options));
            if d.ping().await.is_ok() {
                connected.store(true, Ordering::Release);
                backoff = Duration::from_secs(1);
                // What happened while nobody listened is read now.
                on_event();
                while let Some(ev) = stream.next().await {
                    if ev.is_err() {
                        break;
                    }
                    on_event();
                }
            }
            if connected.swap(false, Ordering::AcqRel) {
                tracing::info!("Docker event stream ended: reconnecting");
                on_event();
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
