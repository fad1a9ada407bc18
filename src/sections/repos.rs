//! `repos`: every `[[repos]]` entry, keyed by slug — HEAD, dirty, unpushed, and
//! each linked worktree under its `worktrees` folder (sha, dirty, ahead/behind
//! the main branch, conflict, branch). A repo or worktree that cannot be read
//! gets an `error` and nulls; the others still report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, Finding, Rule, Schedule, Section, Work};
use crate::config::RepoConfig;
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::git::{self, CheckoutStatus, Touched};
use crate::sources::watch::{Changes, OnLimit, Sink};

/// One worktree, as served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct WorktreeBody {
    pub sha: Option<String>,
    pub dirty: Option<bool>,
    pub ahead: Option<u64>,
    pub behind: Option<u64>,
    pub conflict: Option<bool>,
    pub branch: Option<String>,
    pub error: Option<String>,
}

impl From<CheckoutStatus> for WorktreeBody {
    fn from(s: CheckoutStatus) -> Self {
        WorktreeBody {
            sha: s.head_sha,
            dirty: s.dirty,
            ahead: s.ahead,
            behind: s.behind,
            conflict: s.conflict,
            branch: s.branch,
            error: s.error,
        }
    }
}

/// One repo, as served; worktrees by folder name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RepoBody {
    pub head_sha: Option<String>,
    pub dirty: Option<bool>,
    pub unpushed_commits: Option<u64>,
    pub worktrees: BTreeMap<String, WorktreeBody>,
    pub error: Option<String>,
    /// False for a repo pynchy will clone but has not yet (nothing else to say).
    pub cloned: bool,
}

impl RepoBody {
    /// A repo pynchy has not cloned yet: normal, no error, no reason.
    fn not_cloned() -> RepoBody {
        RepoBody {
            head_sha: None,
            dirty: None,
            unpushed_commits: None,
            worktrees: BTreeMap::new(),
            error: None,
            cloned: false,
        }
    }

    fn read(r: &RepoConfig) -> RepoBody {
        if r.auto_clone && !r.path.exists() {
            return RepoBody::not_cloned();
        }
        let report = git::repo_report(&r.path, r.worktrees.as_deref());
        RepoBody {
            head_sha: report.main.head_sha,
            dirty: report.main.dirty,
            unpushed_commits: report.main.unpushed_commits,
            worktrees: report
                .worktrees
                .into_iter()
                .map(|wt| (wt.name, WorktreeBody::from(wt.status)))
                .collect(),
            error: report.main.error,
            cloned: true,
        }
    }

    fn conflicts(&self) -> impl Iterator<Item = &String> {
        self.worktrees
            .iter()
            .filter(|(_, w)| w.conflict == Some(true))
            .map(|(name, _)| name)
    }
}

/// The `repos` body: repos by slug, in config order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct ReposBody(pub IndexMap<String, RepoBody>);

pub static WORKTREE_CONFLICT: Rule = Rule {
    name: "worktree_conflict",
    default: Severity::Degraded,
    what: "a worktree is in conflict",
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepoLabel {
    repo: String,
}

impl Body for ReposBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        for (slug, repo) in &self.0 {
            for wt in repo.conflicts() {
                out.push(Finding::about(
                    &WORKTREE_CONFLICT,
                    format!("{slug} {wt}"),
                    format!("worktree {wt} of {slug} in conflict"),
                ));
            }
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        let label = |slug: &String| RepoLabel { repo: slug.clone() };
        prom::family(
            reg,
            "pynchy_repo_dirty",
            "1 if the repo's main checkout has uncommitted changes",
            self.0
                .iter()
                .filter_map(|(slug, r)| Some((label(slug), prom::flag(r.dirty?))))
                .collect(),
        );
        prom::family(
            reg,
            "pynchy_worktrees_in_conflict",
            "Worktrees of the repo with a merge, rebase, cherry-pick or revert in conflict",
            self.0
                .iter()
                .map(|(slug, r)| (label(slug), r.conflicts().count() as f64))
                .collect(),
        );
    }

    fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(slug, r)| {
                if !r.cloned {
                    return format!("{slug}: not cloned yet");
                }
                format!(
                    "{slug}: dirty={} {} worktrees {} in conflict",
                    super::show(&r.dirty),
                    r.worktrees.len(),
                    r.conflicts().count()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What changed since the last read: (repo index, what it touched).
type Dirt = Arc<Mutex<BTreeSet<(usize, Touched)>>>;

pub struct Repos {
    ctx: Arc<Context>,
    changes: Arc<Changes>,
    dirt: Dirt,
    verify: Duration,
    /// The last body, which a partial read updates.
    last: Arc<Mutex<Option<ReposBody>>>,
    /// Each repo's folders' identities (checkout, worktrees folder) when
    /// their watches were last set, and whether they all were.
    watched: Mutex<Vec<(Folders, bool)>>,
    /// Per repo: part of it is unwatched (the kernel's watch limit, or a
    /// watched folder removed): polled, and watched again at each collection.
    limited: Arc<Vec<AtomicBool>>,
}

/// A repo's checkout and (outside it) worktrees folder, by identity.
type Folders = (Option<(u64, u64)>, Option<(u64, u64)>);

/// The identities of repo `r`'s folders.
fn folders(r: &RepoConfig) -> Folders {
    let outside = r.worktrees.as_deref().filter(|d| !d.starts_with(&r.path));
    (identity(&r.path), outside.and_then(identity))
}

impl RepoBody {
    /// Reads again only what `touched` says changed.
    fn update(&mut self, r: &RepoConfig, touched: &Touched) {
        match touched {
            Touched::Repo => *self = RepoBody::read(r),
            Touched::Main => {
                let m = git::main_status(&r.path);
                self.head_sha = m.head_sha;
                self.dirty = m.dirty;
                self.unpushed_commits = m.unpushed_commits;
                self.error = m.error;
                self.cloned = true;
            }
            Touched::Worktree(name) => {
                let Some(dir) = &r.worktrees else { return };
                match git::worktree_in(&r.path, dir, name) {
                    Some(st) => self.worktrees.insert(name.clone(), st.into()),
                    None => self.worktrees.remove(name),
                };
            }
        }
    }
}

/// Reads every repo, or only what `dirt` names when a last body exists.
fn read(
    repos: &[RepoConfig],
    last: Option<ReposBody>,
    dirt: BTreeSet<(usize, Touched)>,
) -> ReposBody {
    let Some(mut body) = last.filter(|_| !dirt.is_empty()) else {
        let out = repos.iter().map(|r| (r.slug.clone(), RepoBody::read(r)));
        return ReposBody(out.collect());
    };
    for (i, touched) in &dirt {
        let (Some(r), Some(b)) = (repos.get(*i), body.0.get_index_mut(*i)) else {
            continue;
        };
        b.1.update(r, touched);
    }
    body
}

/// A folder's identity (device, inode): a repo replaced by a fresh clone is
/// another folder, whose watches must be set again.
fn identity(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.dev(), m.ino()))
}

/// What repo `i`'s event handlers share.
#[derive(Clone)]
struct RepoEvents {
    i: usize,
    changes: Arc<Changes>,
    dirt: Dirt,
    limited: Arc<Vec<AtomicBool>>,
}

impl RepoEvents {
    fn mark(&self, t: Touched) {
        let mut dirt = self.dirt.lock().unwrap_or_else(|p| p.into_inner());
        dirt.insert((self.i, t));
        drop(dirt);
        self.changes.mark();
    }

    /// Part of the repo is unwatched: polled (and read whole now) until it is
    /// watched again. True the first time.
    fn unwatched(&self) -> bool {
        let first = self
            .limited
            .get(self.i)
            .is_some_and(|f| !f.swap(true, Ordering::AcqRel));
        self.changes.set_watching(false);
        self.mark(Touched::Repo);
        first
    }

    /// A change at `p`, sorted into what it touched.
    fn changed(&self, classifier: &git::Classifier, p: &Path) {
        let Some(t) = classifier.locate(p) else {
            return;
        };
        // A checkout already due to be read needs no more checks: a `git
        // checkout` of 20,000 files is one ignore check, not 80,000.
        let pending = {
            let d = self.dirt.lock().unwrap_or_else(|p| p.into_inner());
            d.contains(&(self.i, Touched::Repo)) || d.contains(&(self.i, t.clone()))
        };
        if !pending && classifier.matters(p, &t) {
            self.mark(t);
        }
    }
}

/// Watches repo `i`'s checkout (and its worktrees folder, if outside it),
/// sorting events into what they touched. False when a watch cannot be set.
/// A watched folder itself removed (its watch goes with it, and a folder
/// made again in its place, often with the same inode number, is unwatched)
/// or a folder created later that the watch limit leaves unwatched (logged
/// once) sets the repo's `limited` flag: polled until watched again.
fn watch_repo(
    ctx: &Context,
    i: usize,
    changes: &Arc<Changes>,
    dirt: &Dirt,
    limited: &Arc<Vec<AtomicBool>>,
) -> bool {
    let (Some(w), Some(r)) = (&ctx.watcher, ctx.config.repos.get(i)) else {
        return false;
    };
    let Ok(classifier) = git::Classifier::new(&r.path, r.worktrees.as_deref()) else {
        return false;
    };
    let outside = r.worktrees.as_deref().filter(|d| !d.starts_with(&r.path));
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let roots: Vec<std::path::PathBuf> = std::iter::once(canon(&r.path))
        .chain(outside.map(canon))
        .collect();
    let events = RepoEvents {
        i,
        changes: changes.clone(),
        dirt: dirt.clone(),
        limited: limited.clone(),
    };
    let ev = events.clone();
    let sink: Sink = Arc::new(move |p: Option<&Path>| match p {
        None => ev.mark(Touched::Repo),
        Some(p) if roots.iter().any(|root| root == p) && !p.is_dir() => {
            ev.unwatched();
        }
        Some(p) => ev.changed(&classifier, p),
    });
    let slug = r.slug.clone();
    let on_limit: OnLimit = Arc::new(move || {
        if events.unwatched() {
            tracing::warn!(
                repo = %slug,
                "the inotify watch limit is reached: polling this repo until watches are available again"
            );
        }
    });
    let owner = format!("repos {i}");
    let mut ok = w
        .add_owned(&owner, &r.path, true, sink.clone(), on_limit.clone())
        .is_ok();
    if let Some(dir) = outside {
        ok &= dir.is_dir() && w.add_owned(&owner, dir, true, sink, on_limit).is_ok();
    }
    ok
}

/// Watches every repo; returns the identities of the folders watched. Repos
/// whose watches cannot be set leave the section polling.
fn watch(
    ctx: &Context,
    changes: &Arc<Changes>,
    dirt: &Dirt,
    limited: &Arc<Vec<AtomicBool>>,
) -> Vec<(Folders, bool)> {
    let mut all = ctx.watcher.is_some() && !ctx.config.repos.is_empty();
    let mut ids = Vec::new();
    for (i, r) in ctx.config.repos.iter().enumerate() {
        let id = folders(r);
        // Not cloned yet: watched once pynchy clones it (follow_replaced).
        let ok = (r.auto_clone && id.0.is_none()) || watch_repo(ctx, i, changes, dirt, limited);
        if !ok {
            tracing::warn!(repo = %r.slug, "cannot watch this repo: polling it");
        }
        all &= ok;
        ids.push((id, ok));
    }
    changes.set_watching(all);
    ids
}

impl Repos {
    /// A repo folder or its worktrees folder replaced (a fresh clone,
    /// pynchy's first clone of an auto-cloned repo, a worktrees folder
    /// removed and made again), or a repo left partly unwatched by the watch
    /// limit: watch it again and read it again. The section polls while any
    /// repo cannot be watched, and goes back to events once all can.
    fn follow_replaced(&self) {
        if self.ctx.watcher.is_none() || self.ctx.config.repos.is_empty() {
            return;
        }
        let is_limited = |i: usize| {
            self.limited
                .get(i)
                .is_some_and(|f| f.load(Ordering::Acquire))
        };
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        for (i, r) in self.ctx.config.repos.iter().enumerate() {
            let now = folders(r);
            let Some((then, ok)) = watched.get_mut(i) else {
                continue;
            };
            // Partly unwatched (the limit, a folder removed) or not watched
            // at all (the limit at start): tried again at each collection.
            let limited = is_limited(i) || !*ok;
            if *then == now && !limited {
                continue;
            }
            // Cleared first: a limit hit while watching again sets it again.
            if let Some(f) = self.limited.get(i) {
                f.store(false, Ordering::Release);
            }
            let replaced = *then != now;
            *ok = (r.auto_clone && now.0.is_none())
                || (now.0.is_some()
                    && watch_repo(&self.ctx, i, &self.changes, &self.dirt, &self.limited));
            // A folder just made again is often still being filled (pynchy
            // adding a worktree into it): a subfolder made while its watch
            // was being set can be missed, so it is walked once more at the
            // next collection, when it has settled.
            if replaced && *ok && now.0.is_some() {
                *ok = false;
            }
            // Not `ok`: tried again at the next collection.
            if limited && *ok && !is_limited(i) {
                tracing::info!(repo = %r.slug, "watching this repo in full again: events");
            }
            *then = now;
            self.dirt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((i, Touched::Repo));
            self.changes.failed();
        }
        let all = watched
            .iter()
            .enumerate()
            .all(|(i, (_, ok))| *ok && !is_limited(i));
        if all != self.changes.watching() {
            self.changes.set_watching(all);
        }
    }
}

impl Section for Repos {
    type Body = ReposBody;

    fn collect(&self) -> Work<ReposBody> {
        self.follow_replaced();
        if !self.changes.must_read(self.verify) {
            return Work::same();
        }
        let dirt = std::mem::take(&mut *self.dirt.lock().unwrap_or_else(|p| p.into_inner()));
        // A full read when events are off, a re-read is due, or events were lost.
        let full = !self.changes.watching() || dirt.is_empty();
        let repos = self.ctx.config.repos.clone();
        let last = self.last.clone();
        Work::blocking(move || {
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            let prev = if full { None } else { last.clone() };
            let body = read(&repos, prev, dirt);
            *last = Some(body.clone());
            Ok(body)
        })
    }

    fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
        Some(self.changes.clone())
    }
}

impl Builtin for Repos {
    const ID: SectionId = SectionId::Repos;
    const RULES: &'static [&'static Rule] = &[&WORKTREE_CONFLICT];

    /// Every 15 s when polling; with events every 30 s (a multiple of the
    /// others' 10 s, so unchanged ticks share one render).
    fn default_schedule(config: &Config) -> Schedule {
        let every = if config.watch.enabled { 30 } else { 15 };
        Schedule::every(Duration::from_secs(every), Duration::from_secs(10))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let changes = Changes::new();
        let dirt = Dirt::default();
        let limited: Arc<Vec<AtomicBool>> = Arc::new(
            ctx.config
                .repos
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
        );
        let watched = Mutex::new(watch(ctx, &changes, &dirt, &limited));
        Repos {
            ctx: ctx.clone(),
            changes,
            dirt,
            verify: schedule.verify,
            last: Arc::default(),
            watched,
            limited,
        }
    }
}
