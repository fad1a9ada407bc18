//! What every section may need: the config, this daemon's start time, and its
//! shutdown flag. One `Arc<Context>` is built at start-up and shared.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::sources::host_state::{HostState, MemoryHostState};

/// Shared, read-mostly state handed to every section.
pub struct Context {
    pub config: Arc<Config>,
    /// When this daemon started.
    pub started_at: DateTime<Utc>,
    shutting_down: AtomicBool,
    /// What the pushed sections read: by default `pushed`, or a host's own.
    pub host: Arc<dyn HostState>,
    /// Where `PUT /ingest/{section}` and the pull loop write.
    pub pushed: Arc<MemoryHostState>,
}

impl Context {
    /// A context whose host state is fed by pushes and pulls.
    pub fn new(config: Arc<Config>) -> Arc<Context> {
        let pushed = MemoryHostState::new();
        Context::with_host(config, pushed.clone(), pushed)
    }

    /// A context whose pushed sections read `host` (an embedding host's own state).
    pub fn with_host(
        config: Arc<Config>,
        host: Arc<dyn HostState>,
        pushed: Arc<MemoryHostState>,
    ) -> Arc<Context> {
        Arc::new(Context {
            config,
            started_at: Utc::now(),
            shutting_down: AtomicBool::new(false),
            host,
            pushed,
        })
    }

    /// True once SIGTERM or SIGINT arrived.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }
}
