//! The `pynchy-status` binary: `serve`, `config`, `demo` and `check`.
//! Errors end here as `anyhow` reports; config errors exit with status 2.

use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use pynchy_status::app::Daemon;
use pynchy_status::config::{self, Config, ConfigError, DEFAULT_LISTEN};

#[derive(Parser)]
#[command(
    name = "pynchy-status",
    version,
    about = "Operational status of a pynchy server, served from memory over HTTP"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the status of a pynchy server: beside it with `--pynchy-root DIR`
    /// and nothing to write, or as a config file says.
    Serve {
        /// pynchy-status's own TOML config file (optional beside pynchy).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// pynchy's install folder (its working directory: config.toml, .env, data/).
        #[arg(long)]
        pynchy_root: Option<PathBuf>,
        /// Listen address; overrides the config's `listen`.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Print the effective configuration as TOML, each key with where it came from.
    Config {
        /// pynchy-status's own TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// pynchy's install folder.
        #[arg(long)]
        pynchy_root: Option<PathBuf>,
    },
    /// Build a throwaway demo world in a temp folder and serve it until Ctrl-C.
    Demo {
        /// Listen address.
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: String,
        /// Play a patched pynchy that pushes its state (exact queue and
        /// channel detail) instead of an unpatched one.
        #[arg(long)]
        push: bool,
        /// Where Docker answers, run two agent containers from this local
        /// image (any with `sleep`; nothing is pulled).
        #[arg(long, default_value = "busybox:latest")]
        agent_image: String,
    },
    /// A stand-in for pynchy's own HTTP server (the demo's and the tests').
    #[command(hide = true)]
    StandIn {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// pynchy's database, for `/api/groups`.
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        channels_connected: bool,
    },
    /// Send one test message to each `[[notify]]` target (or the one named)
    /// and print its answer. Exit code: 0 when every target took it.
    Notify {
        /// pynchy-status's own TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// pynchy's install folder.
        #[arg(long)]
        pynchy_root: Option<PathBuf>,
        /// Send the test message (required: nothing else is sent).
        #[arg(long)]
        test: bool,
        /// The target's name (default: every target).
        target: Option<String>,
    },
    /// Fetch /status and print one line per section and the reasons.
    /// Exit code: 0 ok, 1 degraded, 2 down, 3 unreachable or unparsable.
    Check {
        /// Base URL of the daemon.
        #[arg(long, default_value = "http://127.0.0.1:8484")]
        url: String,
        /// Print a JSON summary instead of the table.
        #[arg(long)]
        json: bool,
        /// Env var holding the `[server]` token, sent as a bearer token when set.
        #[arg(long, default_value = "PYNCHY_STATUS_SERVER_TOKEN")]
        token_env: String,
        /// How long to wait for an answer.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // One start-up line of our own; actix's worker chatter only when asked for.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Reads the config again, from where `serve` read it at start.
type Reload = std::sync::Arc<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// Handles signals until one asks to stop: SIGTERM, SIGINT, SIGQUIT, SIGUSR1
/// and SIGUSR2 stop the daemon in order (logged); SIGHUP reads the config
/// file again and, if it is valid, sends it on `reloads` — if not, the daemon
/// keeps running on the old one and the log says why.
#[cfg(unix)]
async fn signals(reload: Reload, reloads: tokio::sync::mpsc::UnboundedSender<Config>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut stops = stop_signals();
    let mut hup = signal(SignalKind::hangup()).ok();
    // The reload in flight, read on a blocking thread (a stalled pynchy root
    // must not freeze the runtime that serves and collects), and whether a
    // SIGHUP arrived while it ran. A stop never waits for it.
    let mut reading: Option<ReloadRead> = None;
    let mut again = false;
    loop {
        let stop = futures_util::future::select_all(
            stops
                .iter_mut()
                .map(|(s, name)| Box::pin(async move { s.recv().await.map(|_| *name) })),
        );
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        let read = async {
            match reading.as_mut() {
                Some(r) => tokio::time::timeout_at(r.deadline, &mut r.task).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            (name, _, _) = stop => {
                tracing::info!(signal = name.unwrap_or("?"), "signal received");
                return;
            }
            _ = hangup => match reading {
                Some(_) => again = true,
                None => reading = Some(ReloadRead::start(&reload)),
            },
            done = read => {
                reading = None;
                if let Some(cfg) = reload_read(done) {
                    let _ = reloads.send(cfg);
                }
                if std::mem::take(&mut again) {
                    reading = Some(ReloadRead::start(&reload));
                }
            }
        }
    }
}

/// The signals that stop the daemon, each with its name; one that cannot be
/// handled is logged and left out.
#[cfg(unix)]
fn stop_signals() -> Vec<(tokio::signal::unix::Signal, &'static str)> {
    use tokio::signal::unix::{signal, SignalKind};
    let stopping = [
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::quit(), "SIGQUIT"),
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ];
    let mut stops = Vec::new();
    for (kind, name) in stopping {
        match signal(kind) {
            Ok(s) => stops.push((s, name)),
            Err(e) => tracing::warn!(signal = name, error = %e, "cannot handle this signal"),
        }
    }
    stops
}

/// A finished (or abandoned) reload's config, if it is one to apply; the
/// log says why not otherwise.
#[cfg(unix)]
fn reload_read(
    done: Result<
        Result<anyhow::Result<Config>, tokio::task::JoinError>,
        tokio::time::error::Elapsed,
    >,
) -> Option<Config> {
    let Ok(joined) = done else {
        tracing::error!(
            bound = %humantime::format_duration(RELOAD_BOUND),
            "SIGHUP: reading the config did not finish within the bound (a FIFO, \
             or a file on a stalled mount?): abandoned; still running on the old one"
        );
        return None;
    };
    match joined.unwrap_or_else(|e| Err(anyhow::anyhow!("the reload failed: {e}"))) {
        Ok(cfg) => {
            tracing::info!("SIGHUP: reloading the config");
            Some(cfg)
        }
        Err(e) => {
            tracing::error!(
                error = %format!("{e:#}"),
                "SIGHUP: the config was not reloaded; still running on the old one"
            );
            None
        }
    }
}

/// How long a reload may read its files before it is abandoned.
#[cfg(unix)]
const RELOAD_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// A reload's read on a blocking thread, and when it is abandoned.
#[cfg(unix)]
struct ReloadRead {
    task: tokio::task::JoinHandle<anyhow::Result<Config>>,
    deadline: tokio::time::Instant,
}

#[cfg(unix)]
impl ReloadRead {
    fn start(reload: &Reload) -> ReloadRead {
        let reload = reload.clone();
        ReloadRead {
            task: tokio::task::spawn_blocking(move || reload()),
            deadline: tokio::time::Instant::now() + RELOAD_BOUND,
        }
    }
}

#[cfg(not(unix))]
async fn signals(_: Reload, _: tokio::sync::mpsc::UnboundedSender<Config>) {
    let _ = tokio::signal::ctrl_c().await;
}

fn bind(listen: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))
}

fn run_daemon(daemon: Daemon, listener: TcpListener, reload: Reload) -> anyhow::Result<()> {
    pynchy_status::app::run_to_end(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        daemon
            .serve_reloading(listener, signals(reload, tx), rx)
            .await
    })
    .context("cannot start a runtime")?
    .context("server failed")
}

/// A config for `serve` or a reload: resolved, `--listen` applied, every
/// `[rollup.severity]` key checked against the rules.
fn load(
    config: Option<&PathBuf>,
    root: Option<&PathBuf>,
    listen: Option<&String>,
) -> anyhow::Result<Config> {
    let mut cfg = resolve(config.cloned(), root.cloned())?;
    if let Some(l) = listen {
        cfg.listen = l.parse().map_err(|e| ConfigError::Invalid {
            key: "--listen".into(),
            message: format!("`{l}` is not an address like 127.0.0.1:8484 ({e})"),
        })?;
    }
    let rules: Vec<&str> = pynchy_status::app::all_rules()
        .iter()
        .map(|r| r.name)
        .collect();
    cfg.check_rule_names(&rules)?;
    Ok(cfg)
}

/// The effective config of `serve` and `config`.
fn resolve(config: Option<PathBuf>, root: Option<PathBuf>) -> anyhow::Result<Config> {
    if config.is_none() && root.is_none() {
        return Err(ConfigError::Invalid {
            key: "--pynchy-root".into(),
            message:
                "give pynchy's install folder (--pynchy-root DIR) or a config file (--config FILE)"
                    .into(),
        }
        .into());
    }
    Ok(Config::resolve(config.as_deref(), root.as_deref())?)
}

fn serve(
    config: Option<PathBuf>,
    root: Option<PathBuf>,
    listen: Option<String>,
) -> anyhow::Result<()> {
    let cfg = load(config.as_ref(), root.as_ref(), listen.as_ref())?;
    let listener = bind(&cfg.listen.to_string())?;
    let daemon = Daemon::new(cfg)?;
    let reload = move || load(config.as_ref(), root.as_ref(), listen.as_ref());
    run_daemon(daemon, listener, std::sync::Arc::new(reload))
}

fn demo(listen: String, push: bool, agent_image: &str) -> anyhow::Result<()> {
    let listener = bind(&listen)?;
    let addr = listener.local_addr()?;
    let world =
        pynchy_status::demo::build(&addr.to_string()).context("cannot build the demo world")?;
    // The zero-config path: everything from pynchy's install, but the address.
    let mut cfg = Config::resolve(None, Some(&world.pynchy_root()))?;
    cfg.listen = addr;
    let daemon = Daemon::new(cfg)?;
    println!("pynchy-status demo world: {}", world.root().display());
    println!(
        "a pynchy install at {} (config.toml, .env, data/), read with no config of our own",
        world.pynchy_root().display()
    );
    println!("serving http://{addr}/status  (Ctrl-C stops and deletes the world)");
    let exe =
        std::env::current_exe().context("cannot find this program to run pynchy's stand-in")?;
    let pynchy = world
        .start_pynchy(&exe)
        .context("cannot start the stand-in pynchy")?;
    println!(
        "an unpatched pynchy (a stand-in of its HTTP server, pid {}) on http://{}",
        pynchy.pid(),
        pynchy.addr
    );
    let agents = match world.start_agents(agent_image) {
        Ok(a) => {
            println!(
                "agent containers, as pynchy runs them: {}",
                a.names.join(", ")
            );
            Some(a)
        }
        Err(why) => {
            println!("no agent containers: {why}");
            None
        }
    };
    if push {
        println!(
            "pushing sample pynchy state every 10 s (one channel disconnected, one pending task)"
        );
        pynchy_status::demo::keep_pushing(addr);
    }
    let root = world.pynchy_root();
    let reload = move || {
        let mut cfg = Config::resolve(None, Some(&root))?;
        cfg.listen = addr;
        Ok(cfg)
    };
    let result = run_daemon(daemon, listener, std::sync::Arc::new(reload));
    drop(agents);
    drop(pynchy);
    drop(world);
    result
}

fn check(url: String, json: bool, token_env: String, timeout: std::time::Duration) -> i32 {
    use pynchy_status::check;
    let token = pynchy_status::config::secret(&token_env);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pynchy-status: cannot start a runtime: {e}");
            return i32::from(check::UNREACHABLE);
        }
    };
    match rt.block_on(check::fetch(&url, token.as_deref(), timeout)) {
        Ok(doc) => {
            let now = chrono::Utc::now();
            if json {
                println!("{}", check::summary_json(&doc, now));
            } else {
                anstream::print!("{}", check::table(&doc, &url, now));
            }
            i32::from(check::exit_code(&doc))
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"status": "unreachable", "error": e.to_string()})
                );
            } else {
                eprintln!("pynchy-status: {e}");
            }
            i32::from(check::UNREACHABLE)
        }
    }
}

/// `notify --test [TARGET]`: one test message each, the answers printed.
fn notify_test(
    config: Option<PathBuf>,
    pynchy_root: Option<PathBuf>,
    test: bool,
    target: Option<String>,
) -> anyhow::Result<()> {
    if !test {
        anyhow::bail!("notify: give --test to send a test message (nothing else is sent)");
    }
    let cfg = resolve(config, pynchy_root)?;
    let limit = cfg.limits.pull_body;
    let answers = pynchy_status::app::run_to_end(pynchy_status::notify::test(
        &cfg.notify,
        target.as_deref(),
        limit,
    ))?
    .map_err(anyhow::Error::msg)?;
    let mut failed = 0;
    for (name, answer) in answers {
        match answer {
            Ok(a) => println!("{name}: HTTP {}: {}", a.status, a.body.trim()),
            Err(e) => {
                failed += 1;
                println!("{name}: failed: {e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} target(s) did not take the test message");
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Command::Check {
        url,
        json,
        token_env,
        timeout,
    } = cli.command
    {
        std::process::exit(check(url, json, token_env, timeout));
    }
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Serve {
            config,
            pynchy_root,
            listen,
        } => serve(config, pynchy_root, listen),
        Command::Config {
            config,
            pynchy_root,
        } => resolve(config, pynchy_root).map(|cfg| print!("{}", config::effective_toml(&cfg))),
        Command::Demo {
            listen,
            push,
            agent_image,
        } => demo(listen, push, &agent_image),
        Command::StandIn {
            listen,
            db,
            channels_connected,
        } => pynchy_status::stand_in::run(&listen, db.as_deref(), channels_connected)
            .context("the stand-in pynchy stopped"),
        Command::Notify {
            config,
            pynchy_root,
            test,
            target,
        } => notify_test(config, pynchy_root, test, target),
        Command::Check { .. } => Ok(()),
    };
    // Exit now: leaked runtimes (see `run_to_end`) must not run their thread-local
    // destructors, and a hung blocking collection must not delay the exit.
    std::process::exit(match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pynchy-status: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                2
            } else {
                1
            }
        }
    })
}
