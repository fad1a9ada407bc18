//! Docker, through bollard: a container's `State.Status`, `not_found` when the
//! daemon answers 404, `unreachable` when the daemon cannot be reached (socket
//! missing, connection refused, no answer in time).
//!
//! bollard sends unversioned API paths, so daemons speaking API 1.41 (Debian's
//! `docker.io` 20.10) work.
//!
//! bollard reads a whole answer into memory, so it runs over a transport of
//! ours: one connection per request (`unix://` or `tcp://`), which reads at
//! most `[limits] docker_body` bytes and then fails the request as
//! [`ContainerState::TooLarge`]. An endless answer costs that much memory,
//! not all of it.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::{BollardRequest, Docker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one container looks like from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Docker's own `State.Status`: running, exited, created, paused, restarting, dead.
    Status(String),
    NotFound,
    Unreachable,
    /// The daemon's answer was over the limit (bytes, as the config says it).
    TooLarge(String),
}

impl ContainerState {
    pub fn as_str(&self) -> &str {
        match self {
            ContainerState::Status(s) => s,
            ContainerState::NotFound => "not_found",
            ContainerState::Unreachable | ContainerState::TooLarge(_) => "unreachable",
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

/// Where the daemon listens.
#[derive(Debug, Clone)]
enum Endpoint {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Endpoint {
    fn parse(host: &str) -> Result<Endpoint, ClientError> {
        let invalid = |message: &str| ClientError::Invalid {
            host: host.to_string(),
            message: message.to_string(),
        };
        if let Some(rest) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            let authority = rest.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') {
                return Err(invalid("expected tcp://host:port"));
            }
            return Ok(Endpoint::Tcp(authority.to_string()));
        }
        let path = host.strip_prefix("unix://").unwrap_or(host);
        if !path.starts_with('/') {
            return Err(invalid(
                "expected unix:///path/to/docker.sock or tcp://host:port",
            ));
        }
        if !std::path::Path::new(path).exists() {
            return Err(ClientError::SocketMissing(path.to_string()));
        }
        Ok(Endpoint::Unix(PathBuf::from(path)))
    }
}

/// The marker error of an answer over the limit.
#[derive(Debug, thiserror::Error)]
#[error("Docker answer too large (over {0})")]
struct TooLargeIo(String);

/// A stream that fails reads once `left` bytes have been read.
struct Capped<S> {
    inner: S,
    left: u64,
    limit: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 {
            let limit = crate::config::size_text(self.limit);
            return Poll::Ready(Err(io::Error::other(TooLargeIo(limit))));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.left = self.left.saturating_sub(read);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Sends one request on a new connection to `endpoint`, reading at most `limit`.
async fn send(
    endpoint: Endpoint,
    limit: u64,
    mut req: BollardRequest,
) -> Result<hyper::Response<hyper::body::Incoming>, BollardError> {
    let io: Box<dyn Io> = match &endpoint {
        Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        Endpoint::Tcp(authority) => Box::new(tokio::net::TcpStream::connect(authority).await?),
    };
    let capped = Capped {
        inner: io,
        left: limit,
        limit,
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(capped)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // On a connection of its own a request names its path, and Docker
    // (Go's net/http) wants a Host header.
    let path = req.uri().path_and_query().map(|p| p.as_str().to_string());
    if let Some(Ok(uri)) = path.map(|p| p.parse()) {
        *req.uri_mut() = uri;
    }
    req.headers_mut().insert(
        hyper::header::HOST,
        hyper::header::HeaderValue::from_static("docker"),
    );
    Ok(sender.send_request(req).await?)
}

/// Connects lazily to `host` (`unix:///path`, `tcp://host:port` or
/// `http://…`), reading at most `limit` bytes per answer. Nothing is sent
/// until the first call.
pub fn client(host: &str, timeout: Duration, limit: u64) -> Result<Docker, ClientError> {
    let endpoint = Endpoint::parse(host)?;
    let transport = move |req: BollardRequest| send(endpoint.clone(), limit, req);
    let secs = timeout.as_secs().max(1);
    Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        secs,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| ClientError::Invalid {
        host: host.to_string(),
        message: e.to_string(),
    })
}

/// The "answer too large" message, if that is what `e` is.
fn too_large(e: &BollardError) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<TooLargeIo>() {
            return Some(t.to_string());
        }
        let inner = err
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<TooLargeIo>());
        if let Some(t) = inner {
            return Some(t.to_string());
        }
        cur = err.source();
    }
    None
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
            if let Some(why) = too_large(&e) {
                return ContainerState::TooLarge(why);
            }
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
    limit: u64,
    names: Vec<String>,
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
    on_event: impl Fn() + Send + Sync + 'static,
) {
    follow_events_where(host, limit, names, |_| true, connected, on_event).await
}

/// [`follow_events`] for the containers whose name `accept` takes; with no
/// `names`, every container's events are read and `accept` alone chooses
/// (Docker filters by whole names only, not by prefix).
pub async fn follow_events_where(
    host: String,
    limit: u64,
    names: Vec<String>,
    accept: impl Fn(&str) -> bool + Send + Sync + 'static,
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
    on_event: impl Fn() + Send + Sync + 'static,
) {
    use futures_util::StreamExt;
    use std::sync::atomic::Ordering;
    let mut backoff = Duration::from_secs(1);
    loop {
        // A long client timeout: the stream stays open while nothing happens.
        // Each connection reads at most `limit`: past it the stream ends and
        // is opened again (events for two containers are small).
        if let Ok(d) = client(&host, Duration::from_secs(24 * 3600), limit) {
            let mut filters = std::collections::HashMap::from([(
                "type".to_string(),
                vec!["container".to_string()],
            )]);
            if !names.is_empty() {
                filters.insert("container".to_string(), names.clone());
            }
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
                    let Ok(ev) = ev else { break };
                    let name = ev
                        .actor
                        .as_ref()
                        .and_then(|a| a.attributes.as_ref())
                        .and_then(|a| a.get("name"))
                        .map(String::as_str)
                        .unwrap_or("");
                    if accept(name) {
                        on_event();
                    }
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

/// One container as `docker inspect` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// `State.Status`.
    pub state: String,
    /// `State.StartedAt` (RFC 3339), unless it never started.
    pub started_at: Option<String>,
    /// `RestartCount`: restarts by its restart policy.
    pub restart_count: u64,
    /// `State.Health.Status`, when it has a healthcheck.
    pub health: Option<String>,
    /// The folder of its `data/ipc/<folder>` mount at `/workspace/ipc` (a
    /// pynchy agent container's group).
    pub ipc_folder: Option<String>,
}

/// Where pynchy mounts a group's IPC folder in its agent containers.
pub const IPC_MOUNT: &str = "/workspace/ipc";

/// The group folder of an agent container: the last part of the source of
/// its mount at [`IPC_MOUNT`], when that source is `…/ipc/<folder>`.
fn ipc_folder(mounts: &[bollard::models::MountPoint]) -> Option<String> {
    let m = mounts
        .iter()
        .find(|m| m.destination.as_deref() == Some(IPC_MOUNT))?;
    let source = std::path::Path::new(m.source.as_deref()?);
    let parent = source.parent()?.file_name()?;
    (parent == "ipc").then(|| source.file_name().map(|f| f.to_string_lossy().into_owned()))?
}

/// Why containers could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("Docker daemon unreachable")]
    Unreachable,
    #[error("{0}")]
    TooLarge(String),
}

/// Every container (running or not, unless `running_only`) whose name
/// starts with `prefix`, inspected.
pub async fn containers_named(
    docker: &Docker,
    prefix: &str,
    running_only: bool,
    timeout: Duration,
) -> Result<Vec<ContainerInfo>, ListError> {
    let fail = |e: BollardError| match too_large(&e) {
        Some(why) => ListError::TooLarge(why),
        None => {
            tracing::debug!(error = %e, "docker list failed");
            ListError::Unreachable
        }
    };
    let filters = std::collections::HashMap::from([("name", vec![format!("^/{prefix}")])]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(!running_only)
        .filters(&filters)
        .build();
    // One deadline for the list and every inspect: the whole answer within
    // `timeout`, however many containers there are.
    let deadline = tokio::time::Instant::now() + timeout;
    let list = tokio::time::timeout_at(deadline, docker.list_containers(Some(options)))
        .await
        .map_err(|_| ListError::Unreachable)?
        .map_err(fail)?;
    let mut out = Vec::new();
    for c in list {
        let Some(id) = c.id else { continue };
        let inspect = tokio::time::timeout_at(deadline, docker.inspect_container(&id, None)).await;
        let info = match inspect {
            Err(_) => return Err(ListError::Unreachable),
            // Removed between the list and the inspect: gone, as it may be.
            Ok(Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            })) => continue,
            Ok(Err(e)) => return Err(fail(e)),
            Ok(Ok(info)) => info,
        };
        out.push(container_info(info));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What an inspect says of one container.
fn container_info(info: bollard::models::ContainerInspectResponse) -> ContainerInfo {
    let name = info.name.unwrap_or_default();
    let state = info.state.unwrap_or_default();
    ContainerInfo {
        name: name.trim_start_matches('/').to_string(),
        state: state
            .status
            .map_or_else(|| "unknown".to_string(), |s| s.to_string()),
        started_at: state.started_at.filter(|t| !t.starts_with("0001-01-01")),
        restart_count: info
            .restart_count
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        health: state
            .health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| s != "none" && !s.is_empty()),
        ipc_folder: info.mounts.as_deref().and_then(ipc_folder),
    }
}
