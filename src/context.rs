//! What every section may need: the config, this daemon's start time, and its
//! shutdown flag. One `Arc<Context>` is built at start-up and shared.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Config;

/// Shared, read-mostly state handed to every section.
#[derive(Debug)]
pub struct Context {
    pub config: Arc<Config>,
    pub started_at: DateTime<Utc>,
    shutting_down: AtomicBool,
}

impl Context {
    pub fn new(config: Arc<Config>) -> Arc<Context> {
        Arc::new(Context {
            config,
            started_at: Utc::now(),
            shutting_down: AtomicBool::new(false),
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
