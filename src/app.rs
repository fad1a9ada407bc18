//! Wiring: config → sections → pollers → store → HTTP, and an orderly shutdown.
//!
//! [`Daemon`] is what `serve` and `demo` run, and what tests start on port 0
//! (optionally with extra sections of a host's or a test's own).

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::context::Context;
use crate::engine::poller::{self, PollerHandle};
use crate::engine::publish::Publisher;
use crate::engine::rollup::GENERIC_RULES;
use crate::engine::store::{Snapshots, Store, StoreWriter};
use crate::http::auth::Access;
use crate::http::stream::{Streams, KEEP_ALIVE};
use crate::section_id::SectionId;
use crate::sections::{self, DynSection, Rule, Schedule, Section};

/// One section as the daemon runs it: its id, effective schedule and collector.
struct Slot {
    id: SectionId,
    schedule: Schedule,
    section: Arc<dyn DynSection>,
}

/// What runs for one config: stopped and started again on a reload.
struct Engine {
    pollers: Vec<PollerHandle>,
    publisher: Arc<Publisher>,
    pull_task: Option<tokio::task::JoinHandle<()>>,
}

impl Engine {
    /// Gives the snapshot a moment to say `shutting_down` before the
    /// listener closes.
    async fn say_shutting_down(&self) {
        if let Some(p) = self.pollers.iter().find(|p| p.id == SectionId::Service) {
            let _ = tokio::time::timeout(Duration::from_millis(500), p.kick.collect_and_publish())
                .await;
        }
    }

    fn stop(&self) {
        for p in &self.pollers {
            p.task.abort();
        }
        if let Some(t) = &self.pull_task {
            t.abort();
        }
    }
}

/// `[server] token_env`'s token, if set.
fn server_token(config: &Config) -> Option<String> {
    config
        .server
        .token_env
        .as_deref()
        .and_then(crate::config::secret)
}

/// The built-in sections on `ctx`'s config.
fn built_in_slots(ctx: &Arc<Context>) -> Vec<Slot> {
    sections::registry()
        .into_iter()
        .map(|e| {
            let schedule = e.schedule(&ctx.config);
            Slot {
                id: e.id,
                schedule,
                section: (e.build)(ctx, schedule),
            }
        })
        .collect()
}

/// Everything needed to start serving.
pub struct Daemon {
    ctx: Arc<Context>,
    slots: Vec<Slot>,
    keep_alive: Duration,
}

/// Every rule: the generic ones, then each built-in section's, each once.
pub fn all_rules() -> Vec<&'static Rule> {
    let mut rules: Vec<&'static Rule> = GENERIC_RULES.to_vec();
    for e in sections::registry() {
        for r in e.rules {
            if !rules.iter().any(|x| x.name == r.name) {
                rules.push(r);
            }
        }
    }
    rules
}

impl Daemon {
    /// The built-in sections for this config. Fails if `[rollup.severity]`
    /// names a rule that does not exist.
    pub fn new(config: Config) -> Result<Daemon, ConfigError> {
        Daemon::with_context(Context::new(Arc::new(config)))
    }

    /// For a Rust host embedding pynchy-status: the pushed sections (service,
    /// channels, queue, live sessions) read `host` instead of HTTP pushes.
    pub fn with_push_source(
        config: Config,
        host: Arc<dyn crate::sources::push::PushSource>,
    ) -> Result<Daemon, ConfigError> {
        let pushed = crate::sources::push::PushStore::new();
        Daemon::with_context(Context::with_push_source(Arc::new(config), host, pushed))
    }

    fn with_context(ctx: Arc<Context>) -> Result<Daemon, ConfigError> {
        let names: Vec<&str> = all_rules().iter().map(|r| r.name).collect();
        ctx.config.check_rule_names(&names)?;
        let slots = built_in_slots(&ctx);
        Ok(Daemon {
            ctx,
            slots,
            keep_alive: KEEP_ALIVE,
        })
    }

    /// Adds a section after the built-in ones, under `name` (an embedding
    /// host's own section, or a test's faulty collector).
    pub fn with_section(
        mut self,
        name: &'static str,
        schedule: Schedule,
        section: impl Section,
    ) -> Daemon {
        self.slots.push(Slot {
            id: SectionId::Extra(name),
            schedule,
            section: Arc::new(section),
        });
        self
    }

    /// How often idle event streams send a keep-alive comment (default 2 s).
    pub fn with_keep_alive(mut self, every: Duration) -> Daemon {
        self.keep_alive = every;
        self
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Every section with its effective schedule, in document order.
    pub fn schedules(&self) -> Vec<(SectionId, Schedule)> {
        self.slots.iter().map(|s| (s.id, s.schedule)).collect()
    }

    /// Serves on `listener` until `shutdown` resolves, then shuts down in order:
    /// `service` turns `shutting_down`, the listener closes, in-flight requests
    /// finish. Must run inside an actix (tokio) system.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let (_keep, never) = tokio::sync::mpsc::unbounded_channel();
        self.serve_reloading(listener, shutdown, never).await
    }

    /// [`Daemon::serve`], applying each config that arrives on `reloads`
    /// (`serve`'s SIGHUP): new sections, schedules, rules and tokens, on the
    /// same listener, store and open streams. Pushed state is kept.
    pub async fn serve_reloading(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        mut reloads: tokio::sync::mpsc::UnboundedReceiver<Config>,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        let (store, handle) = Store::new(self.schedules(), self.ctx.config.rollup.clone());
        let store_task = tokio::spawn(store.run());
        let (notifier, notify_task) = self.start_notifier(&handle)?;
        let mut engine = self.start_engine(&handle);
        let config = &self.ctx.config;
        let push_route = Arc::new(crate::http::push::PushRoute::new(
            engine.publisher.clone(),
            crate::config::secret(&config.push.token_env),
        ));
        let access = Arc::new(Access::new(server_token(config)));
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        let (reauth_tx, reauth) = tokio::sync::watch::channel(0u64);
        let server = self.http_server(
            listener,
            handle.snapshots(),
            push_route.clone(),
            access.clone(),
            (closing, reauth),
            notifier.clone(),
        )?;
        let server_handle = server.handle();
        let server_task = tokio::spawn(server);
        self.log_start(addr);

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(config) = reloads.recv() => {
                    engine.stop();
                    self.reconfigure(config);
                    notifier.configure(&self.ctx.config.notify);
                    engine = self.restart(&handle, &push_route, &access, &reauth_tx);
                    self.log_start(addr);
                }
            }
        }
        tracing::info!("shutting down");
        self.ctx.begin_shutdown();
        engine.say_shutting_down().await;
        // Open event streams end now, so the graceful stop does not wait for them.
        let _ = closing_tx.send(true);
        server_handle.stop(true).await;
        let _ = server_task.await;
        engine.stop();
        notify_task.abort();
        drop(handle);
        store_task.abort();
        Ok(())
    }

    /// The notifier of `[[notify]]`, following `handle`'s snapshots.
    fn start_notifier(
        &self,
        handle: &StoreWriter,
    ) -> std::io::Result<(Arc<crate::notify::Notifier>, tokio::task::JoinHandle<()>)> {
        let notifier = crate::notify::Notifier::new(self.ctx.config.limits.pull_body)
            .map_err(std::io::Error::other)?;
        notifier.configure(&self.ctx.config.notify);
        let task = tokio::spawn(notifier.clone().run(handle.snapshots()));
        Ok((notifier, task))
    }

    /// After [`Daemon::reconfigure`]: the store's schedules and rules, new
    /// pollers, and the HTTP layer's publisher and tokens; streams let in
    /// under a server token that changed are told to end (`reauth`).
    fn restart(
        &self,
        handle: &StoreWriter,
        push_route: &crate::http::push::PushRoute,
        access: &Access,
        reauth: &tokio::sync::watch::Sender<u64>,
    ) -> Engine {
        let token_before = access.token.load_full();
        let config = &self.ctx.config;
        handle.reconfigure(self.schedules(), config.rollup.clone());
        let engine = self.start_engine(handle);
        push_route.publisher.store(engine.publisher.clone());
        let push_token = crate::config::secret(&config.push.token_env);
        push_route.token.store(push_token.map(Arc::new));
        access.token.store(server_token(config).map(Arc::new));
        if access.token.load_full() != token_before {
            reauth.send_modify(|n| *n += 1);
        }
        engine
    }

    /// The pollers, the publisher of pushes and the pull loop of this config.
    fn start_engine(&self, handle: &StoreWriter) -> Engine {
        let pollers: Vec<PollerHandle> = self
            .slots
            .iter()
            .map(|s| poller::spawn(s.section.clone(), s.id, s.schedule, handle.clone()))
            .collect();
        let mut followers: HashMap<SectionId, Vec<SectionId>> = HashMap::new();
        for e in sections::registry() {
            for pushed in e.follows {
                followers.entry(*pushed).or_default().push(e.id);
            }
        }
        let publisher = Arc::new(Publisher {
            ctx: self.ctx.clone(),
            kicks: pollers.iter().map(|p| (p.id, p.kick.clone())).collect(),
            followers,
        });
        let pull_task = self.spawn_pull(&publisher);
        Engine {
            pollers,
            publisher,
            pull_task,
        }
    }

    /// Replaces the config: the built-in sections are built again on it
    /// (extra sections stay as they are); pushed state carries over. Keys
    /// read only at start (the listener and the server's limits) keep their
    /// running values, and the log says so.
    fn reconfigure(&mut self, config: Config) {
        let old = &self.ctx.config;
        let restart_only = [
            ("listen", old.listen != config.listen),
            (
                "server.workers",
                old.server.workers != config.server.workers,
            ),
            (
                "server.max_connections",
                old.server.max_connections != config.server.max_connections,
            ),
            (
                "server.max_streams",
                old.server.max_streams != config.server.max_streams,
            ),
        ];
        for (key, changed) in restart_only {
            if changed {
                tracing::warn!(
                    key,
                    "changed in the config file: takes effect at the next restart"
                );
            }
        }
        let ctx = Context::reloaded(Arc::new(config), &self.ctx);
        let extras: Vec<Slot> = self
            .slots
            .drain(..)
            .filter(|s| matches!(s.id, SectionId::Extra(_)))
            .collect();
        self.slots = built_in_slots(&ctx);
        self.slots.extend(extras);
        self.ctx = ctx;
        tracing::info!(
            source = ?self.ctx.config.source,
            "config reloaded"
        );
    }

    /// The pull loop of `[push] pull_url`, if set: once a second (what a
    /// push would tell at once).
    fn spawn_pull(&self, publisher: &Arc<Publisher>) -> Option<tokio::task::JoinHandle<()>> {
        let url = self.ctx.config.push.pull_url.clone()?;
        let interval = Duration::from_secs(1);
        let publisher = publisher.clone();
        Some(tokio::spawn(crate::sources::push::pull_loop(
            url,
            self.ctx.push_store.clone(),
            interval,
            self.ctx.config.limits.pull_body,
            move |accepted| {
                let publisher = publisher.clone();
                async move { publisher.after_push(&accepted).await }
            },
        )))
    }

    fn http_server(
        &self,
        listener: TcpListener,
        snapshots: Snapshots,
        push_route: Arc<crate::http::push::PushRoute>,
        access: Arc<Access>,
        (closing, reauth): (
            tokio::sync::watch::Receiver<bool>,
            tokio::sync::watch::Receiver<u64>,
        ),
        notifier: Arc<crate::notify::Notifier>,
    ) -> std::io::Result<actix_web::dev::Server> {
        let config = &self.ctx.config;
        let streams = Streams {
            permits: Arc::new(tokio::sync::Semaphore::new(config.server.max_streams)),
            keep_alive: self.keep_alive,
            closing,
            reauth,
        };
        crate::http::server(
            listener,
            crate::http::Shared {
                snapshots,
                push_route,
                access,
                streams,
                notifier,
            },
            config.server.workers,
            config.server.max_connections,
        )
    }

    fn log_start(&self, addr: SocketAddr) {
        let list: Vec<String> = self
            .slots
            .iter()
            .map(|s| {
                format!(
                    "{}={}",
                    s.id,
                    humantime::format_duration(s.schedule.interval)
                )
            })
            .collect();
        tracing::info!(
            "pynchy-status {} listening on http://{addr} sections: {}",
            env!("CARGO_PKG_VERSION"),
            list.join(" ")
        );
    }

    /// Starts serving on a thread of its own (an actix system of its own).
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<Running> {
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pynchy-status".into())
            .spawn(move || {
                // Dropped normally: this waits for blocking collections in flight.
                system()?.block_on(self.serve(listener, async move {
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
pub fn run_to_end<T>(fut: impl Future<Output = T>) -> std::io::Result<T> {
    let system = system()?;
    let out = system.block_on(fut);
    std::mem::forget(system);
    Ok(out)
}

/// How long an idle blocking thread (git, SQLite, /proc reads) is kept. Tokio's
/// default, 10 s, equals the usual collection interval, so each collection
/// started new threads just after the last ones had exited: about 1 ms of CPU
/// every 10 s at idle for nothing. Parked threads cost nothing.
const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(600);

/// An actix system on this thread whose tokio runtime keeps idle blocking
/// threads for [`BLOCKING_KEEP_ALIVE`].
fn system() -> std::io::Result<actix_web::rt::SystemRunner> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build()?;
    Ok(actix_web::rt::System::with_tokio_rt(move || rt))
}
