//! Every default, named once; and the defaults as the example config states
//! them (`stated_defaults`, `OPTIONAL_KEYS`), which a test holds the example
//! config and the README to.

use std::time::Duration;

use super::GatewayMode;

pub const LISTEN: &str = "127.0.0.1:8484";
pub const ROOT: &str = ".";
/// Under `[pynchy] root`.
pub const DATABASE: &str = "data/messages.db";
pub const TIMEZONE: &str = "UTC";
pub const OVERDUE_GRACE: Duration = Duration::from_secs(300);
/// pynchy's `[scheduler] poll_interval` default.
pub const POLL_INTERVAL: Duration = Duration::from_secs(60);
/// pynchy's `[container] timeout_ms` default (30 min).
pub const CONTAINER_TIMEOUT: Duration = Duration::from_secs(1800);
/// pynchy's HTTP server: `[server] port` 8484 on every interface.
pub const PYNCHY_URL: &str = "http://127.0.0.1:8484";
/// pynchy's `[container] max_concurrent` default.
pub const MAX_CONCURRENT: u64 = 10;
/// How long pynchy may hold its port without answering before it is down.
pub const UNRESPONSIVE_GRACE: Duration = Duration::from_secs(60);
/// How long a deploy's restart (or a start) may take before pynchy is down:
/// its unit runs `git pull` and `uv sync` first and waits `RestartSec=10`.
pub const RESTART_GRACE: Duration = Duration::from_secs(180);
/// How long a task's agent container may outlive pynchy's container
/// timeout before it counts as stuck.
pub const AGENT_SLACK: Duration = Duration::from_secs(300);
/// pynchy's systemd user unit.
pub const SYSTEMD_UNIT: &str = "pynchy.service";
/// Restarts of pynchy within 10 minutes (not deploys) before it is a crash loop.
pub const SERVICE_RESTARTS_MAX: u64 = 2;
pub const GATEWAY_MODE: GatewayMode = GatewayMode::Litellm;
/// pynchy's `[gateway] port` default, in both modes.
pub const GATEWAY_URL: &str = "http://127.0.0.1:4010";
pub const GATEWAY_KEY_ENV: &str = "GATEWAY__MASTER_KEY";
pub const LITELLM_CONTAINER: &str = "pynchy-litellm";
pub const POSTGRES_CONTAINER: &str = "pynchy-litellm-db";
/// The LiteLLM proxy's `/health` makes one paid request per model.
pub const MODELS_INTERVAL: Duration = Duration::from_secs(600);
/// The least time between two paid model checks, whatever asks for them
/// (start, reload, `POST /refresh/gateway`, the interval).
pub const MODELS_MIN_GAP: Duration = Duration::from_secs(60);
/// When `$DOCKER_HOST` is unset.
pub const DOCKER_HOST: &str = "unix:///var/run/docker.sock";
pub const PUSH_TOKEN_ENV: &str = "PYNCHY_STATUS_TOKEN";
pub const PUSH_TTL: Duration = Duration::from_secs(30);
pub const MAX_STREAMS: usize = 64;
/// Open HTTP connections, all workers together; more wait in the
/// kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 512;
/// One HTTP worker: it serves pre-rendered snapshots at tens of thousands
/// of requests a second. An idle worker costs no CPU (the vendored
/// actix-http makes its `Date` header on demand, not every 500 ms), but
/// each is a thread with its own buffers.
pub const WORKERS: usize = 1;
/// The LiteLLM proxy's `/health` answer: a few hundred KB with hundreds
/// of models.
pub const GATEWAY_BODY: u64 = 8 << 20;
/// One Docker API answer (a container's inspect is a few KB).
pub const DOCKER_BODY: u64 = 4 << 20;
/// The document of `[push] pull_url`.
pub const PULL_BODY: u64 = 1 << 20;
/// Follow changes by events.
pub const WATCH: bool = true;
pub const PENDING_DELIVERIES_MAX: u64 = 10;
/// Restarts of one MCP container within an hour before it is a reason.
pub const MCP_RESTARTS_MAX: u64 = 3;
/// Runs in a row that must all have failed before a task is a reason.
pub const TASK_FAILING_RUNS: u64 = 3;
pub const OK_HTTP_STATUS: u16 = 200;
pub const DEGRADED_HTTP_STATUS: u16 = 200;
pub const DOWN_HTTP_STATUS: u16 = 503;

/// Every key with a fixed default and that default as the example config
/// states it (durations in humantime's words): what `pynchy-status config`
/// prints for a config that sets nothing, less [`OPTIONAL_KEYS`] — one list
/// of keys, the printout's, not a second one here.
pub fn stated_defaults() -> Vec<(String, toml::Value)> {
    // `parse` reads no environment: these are the defaults wherever it runs.
    let cfg = super::Config::parse("", std::path::Path::new("/"))
        .expect("a config that sets nothing is valid");
    super::effective::entries(&cfg)
        .into_iter()
        .filter(|(key, _, _)| !OPTIONAL_KEYS.contains(&key.as_str()))
        .map(|(key, value, origin)| {
            assert_eq!(origin, super::Origin::Default, "{key}");
            let one: toml::Table = format!("v = {value}")
                .parse()
                .unwrap_or_else(|e| panic!("`{key} = {value}` is not TOML: {e}"));
            (key, one["v"].clone())
        })
        .collect()
}

/// Keys without a fixed default (optional, or derived from other keys or the
/// machine); the example config mentions each, commented out or not.
pub const OPTIONAL_KEYS: &[&str] = &[
    "pynchy.root",
    "pynchy.database",
    "pynchy.systemd_bus",
    "repos.slug",
    "repos.path",
    "repos.worktrees",
    "push.pull_url",
    "gateway.ca_file",
    "server.token_env",
    "server.workers",
    "rollup.severity",
    "sections.service.interval",
    "sections.service.timeout",
    "sections.service.stale_after",
    "sections.service.verify_interval",
];
