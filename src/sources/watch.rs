//! File events, through the `notify` crate (inotify on Linux): who wants to
//! hear about changes under which folder. One watcher serves every section;
//! each registration has a folder, recursive or not, and a sink that is told
//! the path that changed — or `None` after the kernel's queue overflowed,
//! meaning "anything may have changed: read everything again".
//!
//! A watch that cannot be set (the inotify watch limit, a filesystem without
//! events) is reported to the caller, which falls back to reading on its
//! interval for that part. So is a folder created later under a recursive
//! watch that the kernel's limit leaves unwatched (`on_limit`): its owner
//! polls until it can watch again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

/// Told of each changed path; `None`: events were lost, re-read everything.
pub type Sink = Arc<dyn Fn(Option<&Path>) + Send + Sync>;

/// Told that a folder under a route's root could not be watched: the
/// kernel's inotify watch limit is reached.
pub type OnLimit = Arc<dyn Fn() + Send + Sync>;

struct Route {
    root: PathBuf,
    recursive: bool,
    sink: Sink,
    /// Who set it: a later route of the same owner on the same root replaces it.
    owner: Option<String>,
    on_limit: Option<OnLimit>,
}

impl Route {
    fn covers(&self, path: &Path) -> bool {
        if self.recursive {
            path.starts_with(&self.root)
        } else {
            path.parent() == Some(self.root.as_path()) || path == self.root
        }
    }
}

/// The shared file watcher.
pub struct Watcher {
    routes: Arc<Mutex<Vec<Route>>>,
    inner: Mutex<RecommendedWatcher>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Watcher {
    /// Starts the watcher thread. Fails where the platform has no file events.
    pub fn new() -> Result<Watcher, String> {
        let routes: Arc<Mutex<Vec<Route>>> = Arc::default();
        let r = routes.clone();
        let inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let routes = lock(&r);
            match res {
                Ok(ev) if ev.need_rescan() => routes.iter().for_each(|route| (route.sink)(None)),
                // Reads (access events) change nothing.
                Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
                Ok(ev) => {
                    for p in &ev.paths {
                        for route in routes.iter().filter(|route| route.covers(p)) {
                            (route.sink)(Some(p));
                        }
                    }
                }
                // A new folder left unwatched: its owners poll (and say so).
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                    let hit = |route: &&Route| {
                        e.paths.is_empty() || e.paths.iter().any(|p| route.covers(p))
                    };
                    for route in routes.iter().filter(hit) {
                        match &route.on_limit {
                            Some(f) => f(),
                            None => (route.sink)(None),
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "file events lost: reading everything again");
                    routes.iter().for_each(|route| (route.sink)(None));
                }
            }
        })
        .map_err(|e| e.to_string())?;
        Ok(Watcher {
            routes,
            inner: Mutex::new(inner),
        })
    }

    /// Watches `root` (and everything under it when `recursive`), telling
    /// `sink` of changes. An error says why it cannot be watched.
    pub fn add(&self, root: &Path, recursive: bool, sink: Sink) -> Result<(), String> {
        self.add_route(root, recursive, sink, None, None)
    }

    /// [`Watcher::add`] for `owner`, replacing its earlier route on `root`
    /// (a folder watched again), with `on_limit` told when a folder created
    /// under it later cannot be watched.
    pub fn add_owned(
        &self,
        owner: &str,
        root: &Path,
        recursive: bool,
        sink: Sink,
        on_limit: OnLimit,
    ) -> Result<(), String> {
        self.add_route(
            root,
            recursive,
            sink,
            Some(owner.to_string()),
            Some(on_limit),
        )
    }

    fn add_route(
        &self,
        root: &Path,
        recursive: bool,
        sink: Sink,
        owner: Option<String>,
        on_limit: Option<OnLimit>,
    ) -> Result<(), String> {
        let root = root.canonicalize().map_err(|e| e.to_string())?;
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        let mut inner = lock(&self.inner);
        if let Err(e) = inner.watch(&root, mode) {
            // Part of a recursive watch may be set: take it all back.
            let _ = inner.unwatch(&root);
            return Err(e.to_string());
        }
        drop(inner);
        let mut routes = lock(&self.routes);
        if owner.is_some() {
            routes.retain(|r| r.owner != owner || r.root != root);
        }
        routes.push(Route {
            root,
            recursive,
            sink,
            owner,
            on_limit,
        });
        Ok(())
    }
}

/// One section's view of its events: whether its source changed since it last
/// read, a `Notify` that wakes its poller, and whether its watches are set at
/// all (if not, it reads every interval as before).
pub struct Changes {
    dirty: std::sync::atomic::AtomicBool,
    watching: Arc<std::sync::atomic::AtomicBool>,
    pub notify: Arc<tokio::sync::Notify>,
    last_read: Mutex<Option<std::time::Instant>>,
}

impl Changes {
    pub fn new() -> Arc<Changes> {
        Arc::new(Changes {
            dirty: std::sync::atomic::AtomicBool::new(true),
            watching: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            notify: Arc::new(tokio::sync::Notify::new()),
            last_read: Mutex::new(None),
        })
    }

    /// A second source of changes that wakes the same poller as `other`
    /// (its own dirty flag and watching state).
    pub fn sharing(other: &Changes) -> Arc<Changes> {
        Arc::new(Changes {
            dirty: std::sync::atomic::AtomicBool::new(true),
            watching: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            notify: other.notify.clone(),
            last_read: Mutex::new(None),
        })
    }

    /// The source changed: read at the next collection, which starts soon.
    pub fn mark(&self) {
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_one();
    }

    pub fn set_watching(&self, on: bool) {
        self.watching
            .store(on, std::sync::atomic::Ordering::Release);
    }

    /// The flag itself, for a follower that sets it as it connects and drops.
    pub fn watching_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.watching.clone()
    }

    pub fn watching(&self) -> bool {
        self.watching.load(std::sync::atomic::Ordering::Acquire)
    }

    /// True when this collection must read its source: it changed, a full
    /// re-read (`verify`) is due, or nothing watches it. Taking it clears the
    /// change; [`Changes::failed`] puts it back.
    pub fn must_read(&self, verify: std::time::Duration) -> bool {
        let changed = self.dirty.swap(false, std::sync::atomic::Ordering::AcqRel);
        let mut last = lock(&self.last_read);
        let due = last.is_none_or(|t| t.elapsed() >= verify);
        if changed || due || !self.watching() {
            *last = Some(std::time::Instant::now());
            return true;
        }
        false
    }

    /// The read failed: read again at the next collection.
    pub fn failed(&self) {
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
    }
}
