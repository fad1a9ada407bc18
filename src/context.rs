//! What every section may need: the config, this daemon's start time, and its
//! shutdown flag. One `Arc<Context>` is built at start-up and shared.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::section_id::SectionId;
use crate::sources::push::{PushSource, PushStore};
use crate::sources::watch::Changes;

/// What sections keep across a reload, by key: a section's key names what
/// its state was read from (the tasks' histories: the database's path), so a
/// reload onto another source starts afresh.
#[derive(Default)]
pub struct Kept(
    std::sync::Mutex<std::collections::HashMap<String, Arc<dyn std::any::Any + Send + Sync>>>,
);

impl Kept {
    /// The value kept under `key`, made (and kept) if there is none.
    pub fn get<T: std::any::Any + Send + Sync + Default>(&self, key: String) -> Arc<T> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = map.get(&key).and_then(|v| v.clone().downcast::<T>().ok()) {
            return v;
        }
        let v = Arc::new(T::default());
        map.insert(key, v.clone());
        v
    }
}

/// Sections with something asked of their next collection: by
/// `POST /refresh/{section}` (refresh what is otherwise checked rarely, as
/// the gateway's paid model check). A section
/// takes its request at its next collection. (Not the sections'
/// `Refresh`, which is how a section learns of change.)
#[derive(Default)]
pub struct Requests(std::sync::Mutex<Vec<SectionId>>);

impl Requests {
    pub fn request(&self, id: SectionId) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !v.contains(&id) {
            v.push(id);
        }
    }

    /// True once per request for `id`.
    pub fn take(&self, id: SectionId) -> bool {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let before = v.len();
        v.retain(|x| *x != id);
        v.len() != before
    }
}

/// Whether pynchy runs, as the service section last observed it, shared with
/// the sections whose verdict depends on it (the scheduled ones: nothing runs
/// while pynchy is down). Not known up until the service section has looked,
/// so a row is never called overdue on a guess; each change wakes the
/// followers, so they judge again at once rather than at their next tick.
#[derive(Default)]
pub struct Liveness {
    up: AtomicBool,
    followers: std::sync::Mutex<Vec<std::sync::Weak<Changes>>>,
}

impl Liveness {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The service section's latest verdict; on a change, every follower
    /// still alive is woken.
    pub fn set(&self, up: bool) {
        if self.up.swap(up, Ordering::AcqRel) == up {
            return;
        }
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        followers.retain(|f| match f.upgrade() {
            Some(c) => {
                c.mark();
                true
            }
            None => false,
        });
    }

    /// `changes` is marked each time pynchy's up-state changes (held weakly:
    /// a section dropped at a reload stops being told).
    pub fn follow(&self, changes: &Arc<Changes>) {
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        followers.retain(|f| f.strong_count() > 0);
        followers.push(Arc::downgrade(changes));
    }
}

/// Shared, read-mostly state handed to every section.
pub struct Context {
    pub config: Arc<Config>,
    /// When this daemon started.
    pub started_at: DateTime<Utc>,
    shutting_down: AtomicBool,
    /// The pushes sections read: by default `push_store`, or a host's own.
    pub push_source: Arc<dyn PushSource>,
    /// Where `PUT /push/{section}` and the pull loop write.
    pub push_store: Arc<PushStore>,
    /// Refreshes asked for over HTTP.
    pub refresh: Requests,
    /// File events, unless `[watch] enabled = false` or the platform has none.
    pub watcher: Option<Arc<crate::sources::watch::Watcher>>,
    /// pynchy's database, across the sections that read it: a read that
    /// never returns (a FIFO as the path, an NFS stall) stops new ones.
    pub db_gate: Arc<crate::sources::gate::SourceGate>,
    /// pynchy's checkout (the deploy section's git reads), likewise.
    pub checkout_gate: Arc<crate::sources::gate::SourceGate>,
    /// Whether pynchy runs, as the service section last observed it (not
    /// until it has looked): the scheduled sections' judge reads it.
    pub pynchy_up: Arc<Liveness>,
    /// What sections keep across reloads.
    pub kept: Arc<Kept>,
}

impl Context {
    /// A context whose pushes arrive over HTTP (pushes and pulls).
    pub fn new(config: Arc<Config>) -> Arc<Context> {
        let store = PushStore::new();
        Context::with_push_source(config, store.clone(), store)
    }

    /// A context whose sections read pushes from `source` (an embedding
    /// host's own state).
    pub fn with_push_source(
        config: Arc<Config>,
        source: Arc<dyn PushSource>,
        store: Arc<PushStore>,
    ) -> Arc<Context> {
        let watcher = if config.watch.enabled {
            match crate::sources::watch::Watcher::new() {
                Ok(w) => Some(Arc::new(w)),
                Err(e) => {
                    tracing::warn!(error = %e, "no file events here: every section polls");
                    None
                }
            }
        } else {
            None
        };
        Arc::new(Context {
            watcher,
            db_gate: crate::sources::gate::SourceGate::new("pynchy's database"),
            checkout_gate: crate::sources::gate::SourceGate::new("pynchy's checkout"),
            pynchy_up: Arc::default(),
            config,
            started_at: Utc::now(),
            shutting_down: AtomicBool::new(false),
            push_source: source,
            push_store: store,
            refresh: Requests::default(),
            kept: Arc::default(),
        })
    }

    /// A context for a reloaded `config` that keeps what must outlive a
    /// reload: the pushes, the sources' gates (a read stuck
    /// before the reload still counts), and when the daemon started.
    pub fn reloaded(config: Arc<Config>, old: &Context) -> Arc<Context> {
        let fresh =
            Context::with_push_source(config, old.push_source.clone(), old.push_store.clone());
        match Arc::try_unwrap(fresh) {
            Ok(mut ctx) => {
                ctx.db_gate = old.db_gate.clone();
                ctx.checkout_gate = old.checkout_gate.clone();
                // The same pynchy: what was seen of it stands. Another one
                // (root or URL changed): not known up until it is looked at.
                let same = ctx.config.pynchy.root == old.config.pynchy.root
                    && ctx.config.pynchy.url == old.config.pynchy.url;
                if same {
                    ctx.pynchy_up = old.pynchy_up.clone();
                }
                ctx.started_at = old.started_at;
                ctx.kept = old.kept.clone();
                Arc::new(ctx)
            }
            Err(shared) => shared,
        }
    }

    /// True once SIGTERM or SIGINT arrived.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn context(url: &str) -> Arc<Context> {
        let text = format!("[pynchy]\nurl = \"{url}\"\n[watch]\nenabled = false\n");
        let cfg = Config::parse(&text, std::path::Path::new("/")).expect("valid");
        Context::new(Arc::new(cfg))
    }

    #[test]
    fn liveness_starts_not_up_and_wakes_followers_on_a_change_only() {
        let live = Liveness::default();
        assert!(!live.is_up(), "not known up until looked at");
        let changes = Changes::new();
        changes.set_watching(true);
        live.follow(&changes);
        let hour = Duration::from_secs(3600);
        assert!(changes.must_read(hour), "a new Changes reads once");
        assert!(!changes.must_read(hour));
        live.set(false);
        assert!(!changes.must_read(hour), "no change, no wake");
        live.set(true);
        assert!(live.is_up());
        assert!(changes.must_read(hour), "up: judged again");
        live.set(true);
        assert!(!changes.must_read(hour));
        live.set(false);
        assert!(changes.must_read(hour), "down: judged again");
        // A follower dropped (a reload) is forgotten, not woken.
        drop(changes);
        live.set(true);
        assert_eq!(lock_len(&live), 0);
    }

    fn lock_len(live: &Liveness) -> usize {
        live.followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    #[test]
    fn a_reload_keeps_what_was_seen_of_the_same_pynchy_only() {
        let old = context("http://127.0.0.1:8080");
        old.pynchy_up.set(true);
        let same = Context::reloaded(old.config.clone(), &old);
        assert!(Arc::ptr_eq(&same.pynchy_up, &old.pynchy_up));
        let other = context("http://127.0.0.1:9090");
        let moved = Context::reloaded(other.config.clone(), &old);
        assert!(!Arc::ptr_eq(&moved.pynchy_up, &old.pynchy_up));
        assert!(!moved.pynchy_up.is_up(), "another pynchy: not known up");
    }
}
