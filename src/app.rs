//! Wiring: config → sections → pollers → store → HTTP, and an orderly shutdown.
//!
//! [`Daemon`] is what `serve` and `demo` run, and what tests start on port 0
//! (optionally with extra, test-only sections).

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::context::Context;
use crate::poller;
use crate::sections::{self, Schedule, Section};
use crate::store::Store;

/// Everything needed to start serving.
pub struct Daemon {
    ctx: Arc<Context>,
    sections: Vec<Arc<dyn Section>>,
}

/// HTTP worker threads: one per core of the machines this runs on; requests are
/// snapshot loads, so more would only contend.
const HTTP_WORKERS: usize = 2;

impl Daemon {
    /// The built-in sections for this config. Fails if `[sections.<name>]` names
    /// a section that does not exist.
    pub fn new(config: Config) -> Result<Daemon, ConfigError> {
        Daemon::with_context(Context::new(Arc::new(config)))
    }

    /// For a Rust host embedding pynchy-status: the pushed sections (service,
    /// channels, queue, live sessions) read `host` instead of HTTP pushes.
    pub fn with_host_state(
        config: Config,
        host: Arc<dyn crate::sources::host_state::HostState>,
    ) -> Result<Daemon, ConfigError> {
        let pushed = crate::sources::host_state::MemoryHostState::new();
        Daemon::with_context(Context::with_host(Arc::new(config), host, pushed))
    }

    fn with_context(ctx: Arc<Context>) -> Result<Daemon, ConfigError> {
        let sections = sections::registry(&ctx);
        let names: Vec<&str> = sections.iter().map(|s| s.name()).collect();
        ctx.config.check_section_names(&names)?;
        Ok(Daemon { ctx, sections })
    }

    /// Adds a section after the built-in ones (tests use this for faulty collectors).
    pub fn with_section(mut self, section: Arc<dyn Section>) -> Daemon {
        self.sections.push(section);
        self
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Every section with its effective schedule, in document order.
    pub fn schedules(&self) -> Vec<(&'static str, Schedule)> {
        self.sections
            .iter()
            .map(|s| {
                (
                    s.name(),
                    s.default_schedule()
                        .with_overrides(&self.ctx.config, s.name()),
                )
            })
            .collect()
    }

    /// Serves on `listener` until `shutdown` resolves, then shuts down in order:
    /// `service` turns `shutting_down`, the listener closes, in-flight requests
    /// finish. Must run inside an actix (tokio) system.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let schedules = self.schedules();
        let addr = listener.local_addr()?;
        let (store, handle) = Store::new(schedules.clone(), self.ctx.config.rollup.clone());
        let store_task = tokio::spawn(store.run());
        let pollers: Vec<_> = self
            .sections
            .iter()
            .zip(&schedules)
            .enumerate()
            .map(|(i, (s, (_, sched)))| poller::spawn(s.clone(), i, *sched, handle.clone()))
            .collect();
        let ingest = Arc::new(crate::http::ingest::Ingest {
            memory: self.ctx.pushed.clone(),
            token: crate::config::secret(&self.ctx.config.ingest.token_env),
            kicks: pollers.iter().map(|p| (p.name, p.kick.clone())).collect(),
        });
        let pull_task = self.ctx.config.ingest.pull_url.clone().map(|url| {
            let ingest = ingest.clone();
            let interval = schedules
                .iter()
                .find(|(n, _)| *n == "channels")
                .map(|(_, s)| s.interval)
                .unwrap_or(Duration::from_secs(1));
            tokio::spawn(crate::sources::host_state::pull_loop(
                url,
                self.ctx.pushed.clone(),
                interval,
                move |accepted| {
                    let ingest = ingest.clone();
                    async move { ingest.publish(&accepted).await }
                },
            ))
        });
        let access = crate::http::routes::Access {
            token: self
                .ctx
                .config
                .server
                .token_env
                .as_deref()
                .and_then(crate::config::secret),
        };
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        let streams = crate::http::stream::Streams {
            permits: Arc::new(tokio::sync::Semaphore::new(
                self.ctx.config.server.max_streams,
            )),
            closing,
        };
        let server = crate::http::server(
            listener,
            handle.clone(),
            ingest,
            access,
            streams,
            HTTP_WORKERS,
        )?;
        let server_handle = server.handle();
        let server_task = tokio::spawn(server);
        let list: Vec<String> = schedules
            .iter()
            .map(|(n, s)| format!("{n}={}", humantime::format_duration(s.interval)))
            .collect();
        tracing::info!(
            "pynchy-status {} listening on http://{addr} sections: {}",
            env!("CARGO_PKG_VERSION"),
            list.join(" ")
        );

        shutdown.await;
        tracing::info!("shutting down");
        self.ctx.begin_shutdown();
        if let Some(p) = pollers.iter().find(|p| p.name == "service") {
            // Give the snapshot a moment to say `shutting_down` before the listener closes.
            let _ = tokio::time::timeout(Duration::from_millis(500), p.kick.collect_and_publish())
                .await;
        }
        // Open event streams end now, so the graceful stop does not wait for them.
        let _ = closing_tx.send(true);
        server_handle.stop(true).await;
        let _ = server_task.await;
        for p in &pollers {
            p.task.abort();
        }
        if let Some(t) = pull_task {
            t.abort();
        }
        drop(handle);
        store_task.abort();
        Ok(())
    }

    /// Starts serving on a thread of its own (an actix system of its own).
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<Running> {
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pynchy-status".into())
            .spawn(move || {
                // Dropped normally: this waits for blocking collections in flight.
                actix_web::rt::System::new().block_on(self.serve(listener, async move {
                    let _ = rx.await;
                }))
            })?;
        Ok(Running {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

/// A daemon serving on its own thread; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// `http://addr` of the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| std::io::Error::other("server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Runs `fut` on a new actix system on this thread and returns its output
/// without waiting for blocking collections still in flight: a git call hung on
/// a dead NFS mount must not hold up the exit (dropping a tokio runtime waits for
/// its blocking threads forever, so the runtime is leaked instead). Only for the
/// process's main thread, right before it exits.
pub fn run_to_end<T>(fut: impl Future<Output = T>) -> T {
    let system = actix_web::rt::System::new();
    let out = system.block_on(fut);
    std::mem::forget(system);
    out
}
