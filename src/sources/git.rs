//! Git, through git2 (libgit2): HEAD, dirtiness, unpushed commits, and each
//! linked worktree's ahead/behind/conflict. No `git` subprocess, and nothing is
//! ever written: no index refresh, no lock, no ref update.
//!
//! The answers match the git CLI's:
//! - dirty: `git status --porcelain` would print something (tracked changes,
//!   staged or not, or untracked files that are not ignored);
//! - unpushed: commits on HEAD that origin's default branch lacks (as pynchy
//!   counts them: `origin/HEAD`'s target, else `origin/main`), `None` when
//!   this clone does not know that branch;
//! - ahead/behind: the worktree's branch (pynchy's `worktree/<folder>`, also
//!   while a rebase has HEAD detached; else its HEAD) against the main branch
//!   (`main`, else `master`, else what `origin/HEAD` points to);
//! - conflict: a merge, rebase, cherry-pick or revert in progress in the
//!   worktree's own git dir, or unmerged entries in its index.

use std::path::{Path, PathBuf};

use git2::{ErrorCode, Oid, Repository, RepositoryOpenFlags, RepositoryState, StatusOptions};

/// git's folder under the main git dir holding each linked worktree's own
/// git dir (`$GIT_DIR/worktrees/<name>`): a git layout name, not a field.
const LINKED_WORKTREES_DIR: &str = "worktrees";

/// Why a repo could not be read at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GitError {
    #[error("path does not exist")]
    Missing,
    #[error("path is a symlink loop or a dangling symlink")]
    BadSymlink,
    #[error("not a git repository")]
    NotARepo,
    #[error("{0}")]
    Git(String),
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> Self {
        GitError::Git(e.message().to_string())
    }
}

/// What git says about one checkout (the main one or a linked worktree).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckoutStatus {
    pub head_sha: Option<String>,
    /// The subject line of HEAD's commit.
    pub head_commit: Option<String>,
    /// The short name of HEAD's branch; `None` when detached or unknown.
    pub branch: Option<String>,
    pub dirty: Option<bool>,
    /// Commits on HEAD that origin's default branch lacks; `None` when unknown.
    pub unpushed_commits: Option<u64>,
    /// Against the main branch (worktrees only).
    pub ahead: Option<u64>,
    pub behind: Option<u64>,
    pub conflict: Option<bool>,
    /// What went wrong or looks wrong (detached HEAD, unborn branch, index.lock…).
    pub error: Option<String>,
}

impl CheckoutStatus {
    fn note(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        self.error = Some(match self.error.take() {
            Some(prev) => format!("{prev}; {msg}"),
            None => msg,
        });
    }

    fn failed(msg: impl Into<String>) -> Self {
        CheckoutStatus {
            error: Some(msg.into()),
            ..Default::default()
        }
    }
}

/// Opens exactly the repo at `path` (no search upwards, so a missing checkout
/// never reports on a parent folder's repo).
pub fn open(path: &Path) -> Result<Repository, GitError> {
    if !path.exists() {
        // exists() follows links: a link that leads nowhere is not "missing".
        let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        return Err(if link {
            GitError::BadSymlink
        } else {
            GitError::Missing
        });
    }
    Repository::open_ext(
        path,
        RepositoryOpenFlags::NO_SEARCH,
        std::iter::empty::<&std::ffi::OsStr>(),
    )
    .map_err(|e| match e.code() {
        ErrorCode::NotFound => GitError::NotARepo,
        _ => GitError::from(e),
    })
}

/// True when `git status --porcelain` would print something.
pub fn is_dirty(repo: &Repository) -> Result<bool, GitError> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .include_ignored(false)
        .recurse_untracked_dirs(false)
        .exclude_submodules(false)
        .renames_head_to_index(false)
        .renames_index_to_workdir(false);
    let statuses = repo.statuses(Some(&mut opts))?;
    Ok(!statuses.is_empty())
}

/// The main branch's commit: `main`, else `master`, else `origin/HEAD`'s target.
pub fn main_branch(repo: &Repository) -> Option<(String, Oid)> {
    for name in ["main", "master"] {
        if let Ok(r) = repo.find_reference(&format!("refs/heads/{name}")) {
            if let Some(oid) = r.target() {
                return Some((name.to_string(), oid));
            }
        }
    }
    let origin_head = repo.find_reference("refs/remotes/origin/HEAD").ok()?;
    let resolved = origin_head.resolve().ok()?;
    let name = resolved.shorthand().ok()?.to_string();
    Some((name, resolved.target()?))
}

fn in_progress(state: RepositoryState) -> Option<&'static str> {
    use RepositoryState::*;
    match state {
        Merge => Some("merge"),
        Revert | RevertSequence => Some("revert"),
        CherryPick | CherryPickSequence => Some("cherry-pick"),
        Rebase | RebaseInteractive | RebaseMerge => Some("rebase"),
        _ => None,
    }
}

/// The commit of origin's default branch as this clone knows it:
/// `origin/HEAD`'s target, else `origin/main`.
fn origin_default(repo: &Repository) -> Option<Oid> {
    let name = repo
        .find_reference("refs/remotes/origin/HEAD")
        .ok()
        .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_string))
        .unwrap_or_else(|| "refs/remotes/origin/main".to_string());
    repo.find_reference(&name).ok()?.target()
}

/// Commits on HEAD that origin's default branch lacks, as pynchy counts them;
/// `Ok(None)` when that branch is unknown here.
fn unpushed(repo: &Repository, oid: Oid) -> Result<Option<u64>, String> {
    let Some(origin) = origin_default(repo) else {
        return Ok(None);
    };
    repo.graph_ahead_behind(oid, origin)
        .map(|(ahead, _)| Some(ahead as u64))
        .map_err(|e| format!("cannot count unpushed commits: {}", e.message()))
}

/// HEAD's branch, commit and unpushed count into `st`; returns HEAD's commit.
/// A detached HEAD is noted, except while a rebase or another operation that
/// detaches it is in progress (then `conflict` says so).
fn read_head(repo: &Repository, st: &mut CheckoutStatus) -> Option<Oid> {
    let head = match repo.head() {
        Ok(h) => h,
        Err(e) if e.code() == ErrorCode::UnbornBranch => {
            st.note("unborn branch: no commits yet");
            return None;
        }
        Err(e) => {
            st.note(format!("cannot read HEAD: {}", e.message()));
            return None;
        }
    };
    if head.is_branch() {
        st.branch = head.shorthand().ok().map(str::to_string);
    } else if in_progress(repo.state()).is_none() {
        st.note("detached HEAD");
    }
    let oid = match head.peel_to_commit() {
        Ok(c) => {
            st.head_sha = Some(c.id().to_string());
            st.head_commit = c.summary().ok().flatten().map(str::to_string);
            c.id()
        }
        Err(e) => {
            st.note(format!("cannot read HEAD commit: {}", e.message()));
            return None;
        }
    };
    match unpushed(repo, oid) {
        Ok(n) => st.unpushed_commits = n,
        Err(e) => st.note(e),
    }
    Some(oid)
}

/// A merge, rebase, cherry-pick or revert in progress, or unmerged paths.
fn read_conflict(repo: &Repository, st: &mut CheckoutStatus) {
    let op = in_progress(repo.state());
    let unmerged = repo.index().map(|i| i.has_conflicts());
    st.conflict = match (op, unmerged) {
        (Some(_), _) | (_, Ok(true)) => Some(true),
        (None, Ok(false)) => Some(false),
        (None, Err(e)) => {
            st.note(format!("cannot read index: {}", e.message()));
            None
        }
    };
}

/// The commit of local branch `name`, if it exists.
fn branch_oid(repo: &Repository, name: &str) -> Option<Oid> {
    repo.find_reference(&format!("refs/heads/{name}"))
        .ok()?
        .target()
}

/// Reads one open checkout. `main` is the main branch's commit, for
/// ahead/behind (worktrees); `None` skips them. `branch` is the branch the
/// checkout belongs to (pynchy's `worktree/<folder>`): when it exists,
/// ahead/behind count from it, also while a rebase has HEAD detached. Never
/// fails: problems go into `error`.
pub fn read_checkout(repo: &Repository, main: Option<Oid>, branch: Option<&str>) -> CheckoutStatus {
    let mut st = CheckoutStatus::default();
    if repo.path().join("index.lock").exists() {
        st.note("index.lock present: a git command is running or crashed");
    }
    let head = read_head(repo, &mut st);
    let owned = branch.and_then(|b| Some((b, branch_oid(repo, b)?)));
    if let (None, Some((name, _))) = (&st.branch, owned) {
        st.branch = Some(name.to_string());
    }
    let head_oid = owned.map(|(_, oid)| oid).or(head);
    match is_dirty(repo) {
        Ok(d) => st.dirty = Some(d),
        Err(e) => st.note(format!("cannot read status: {e}")),
    }
    if let (Some(h), Some(m)) = (head_oid, main) {
        match repo.graph_ahead_behind(h, m) {
            Ok((a, b)) => {
                st.ahead = Some(a as u64);
                st.behind = Some(b as u64);
            }
            Err(e) => st.note(format!("cannot count ahead/behind: {}", e.message())),
        }
    }
    read_conflict(repo, &mut st);
    st
}

/// One linked worktree found under a repo's `worktrees` folder.
#[derive(Debug, Clone, PartialEq)]
pub struct WorktreeEntry {
    /// The folder's name: the key in `/status`.
    pub name: String,
    pub status: CheckoutStatus,
}

/// Everything about one watched repo.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoReport {
    pub main: CheckoutStatus,
    pub worktrees: Vec<WorktreeEntry>,
}

fn worktree_status(name: &str, path: &Path, common: &Path, main: Option<Oid>) -> CheckoutStatus {
    match open(path) {
        Ok(wt) if wt.is_worktree() && same_dir(wt.commondir(), common) => {
            read_checkout(&wt, main, Some(&format!("worktree/{name}")))
        }
        Ok(_) => CheckoutStatus::failed("not a linked worktree of this repo"),
        Err(e) => CheckoutStatus::failed(e.to_string()),
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The subfolders of a repo's worktrees folder, sorted, or why they cannot be listed.
fn worktree_folders(dir: Option<&Path>) -> (Vec<(String, PathBuf)>, Option<String>) {
    let mut folders = Vec::new();
    let Some(dir) = dir else {
        return (folders, None);
    };
    let error = match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    folders.push((e.file_name().to_string_lossy().into_owned(), p));
                }
            }
            None
        }
        // pynchy makes the folder with the first worktree: none yet is normal.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!("cannot list worktrees folder: {e}")),
    };
    folders.sort();
    (folders, error)
}

/// Reads every folder as a linked worktree of the repo at `common`, on up to
/// one thread per core, while `main` reads the main checkout on this thread.
fn read_worktrees(
    folders: &[(String, PathBuf)],
    common: &Path,
    main_oid: Option<Oid>,
    main: impl FnOnce() -> CheckoutStatus,
) -> (CheckoutStatus, Vec<WorktreeEntry>) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(folders.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    folders
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|(name, p)| WorktreeEntry {
                            name: name.clone(),
                            status: worktree_status(name, p, common, main_oid),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let main = main();
        let mut wts = Vec::with_capacity(folders.len());
        for h in handles {
            // A panic inside libgit2 bindings is not expected; the worktrees of
            // that thread are then reported as failed by the caller.
            if let Ok(list) = h.join() {
                wts.extend(list);
            }
        }
        (main, wts)
    })
}

/// Reads a repo and every linked worktree of it under `worktrees` (sorted by
/// name), walking worktrees on parallel threads. Never fails as a whole.
pub fn repo_report(path: &Path, worktrees: Option<&Path>) -> RepoReport {
    let repo = match open(path) {
        Ok(r) => r,
        Err(e) => {
            return RepoReport {
                main: CheckoutStatus::failed(e.to_string()),
                worktrees: Vec::new(),
            }
        }
    };
    let common = repo.commondir().to_path_buf();
    let main_oid = main_branch(&repo).map(|(_, oid)| oid);
    let (folders, list_error) = worktree_folders(worktrees);
    let (mut main, mut wts) = read_worktrees(&folders, &common, main_oid, || {
        read_checkout(&repo, None, None)
    });
    for (name, _) in &folders {
        if !wts.iter().any(|w| &w.name == name) {
            wts.push(WorktreeEntry {
                name: name.clone(),
                status: CheckoutStatus::failed("reading this worktree failed"),
            });
        }
    }
    if let Some(e) = list_error {
        main.note(e);
    }
    wts.sort_by(|a, b| a.name.cmp(&b.name));
    RepoReport {
        main,
        worktrees: wts,
    }
}

/// The main checkout of the repo at `path` alone (no worktrees).
pub fn main_status(path: &Path) -> CheckoutStatus {
    match open(path) {
        Ok(repo) => read_checkout(&repo, None, None),
        Err(e) => CheckoutStatus::failed(e.to_string()),
    }
}

/// The linked worktree `name` under `worktrees` of the repo at `path`;
/// `None` when its folder is gone.
pub fn worktree_in(path: &Path, worktrees: &Path, name: &str) -> Option<CheckoutStatus> {
    let folder = worktrees.join(name);
    if !folder.is_dir() {
        return None;
    }
    Some(match open(path) {
        Ok(repo) => {
            let main = main_branch(&repo).map(|(_, oid)| oid);
            worktree_status(name, &folder, repo.commondir(), main)
        }
        Err(e) => CheckoutStatus::failed(e.to_string()),
    })
}

/// What a changed path under a watched repo means for its status.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Touched {
    /// Shared state (refs): the main checkout and every worktree.
    Repo,
    /// The main checkout.
    Main,
    /// One linked worktree, by folder name.
    Worktree(String),
}

/// Sorts file events of one repo into what they touched, leaving out what
/// cannot change a status: `.git/objects` and `.git/logs`, and paths the
/// checkout's `.gitignore` ignores. Paths are canonical.
pub struct Classifier {
    workdir: PathBuf,
    git_dir: PathBuf,
    worktrees: Option<PathBuf>,
    repos: std::sync::Mutex<std::collections::HashMap<PathBuf, Repository>>,
    /// Top-level folders of a checkout known to be ignored (or not): an event
    /// storm under an ignored folder (pynchy's `data/`) costs one check.
    tops: std::sync::Mutex<std::collections::HashMap<PathBuf, bool>>,
}

impl Classifier {
    pub fn new(workdir: &Path, worktrees: Option<&Path>) -> Result<Classifier, GitError> {
        let repo = open(workdir)?;
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        Ok(Classifier {
            workdir: canon(workdir),
            git_dir: canon(repo.path()),
            worktrees: worktrees.map(canon),
            repos: Default::default(),
            tops: Default::default(),
        })
    }

    fn ignored(&self, checkout: &Path, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(checkout) else {
            return false;
        };
        let mut parts = rel.components();
        if let (Some(top), Some(_)) = (parts.next(), parts.next()) {
            // Under an ignored folder everything is ignored: one check per folder.
            let top = checkout.join(top);
            let known = self
                .tops
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&top)
                .copied();
            let top_ignored = match known {
                Some(v) => v,
                None => {
                    let v = self.ignored_path(checkout, &top);
                    self.tops
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(top, v);
                    v
                }
            };
            if top_ignored {
                return true;
            }
        }
        self.ignored_path(checkout, path)
    }

    fn ignored_path(&self, checkout: &Path, path: &Path) -> bool {
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        if !repos.contains_key(checkout) {
            match open(checkout) {
                Ok(r) => {
                    repos.insert(checkout.to_path_buf(), r);
                }
                Err(_) => return false,
            }
        }
        let (Some(repo), Ok(rel)) = (repos.get(checkout), path.strip_prefix(checkout)) else {
            return false;
        };
        !rel.as_os_str().is_empty() && repo.is_path_ignored(rel).unwrap_or(false)
    }

    /// What `path` would touch, from its place alone (no ignore check):
    /// cheap, for skipping events of a checkout already due to be read.
    pub fn locate(&self, path: &Path) -> Option<Touched> {
        if let Ok(rel) = path.strip_prefix(&self.git_dir) {
            let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
            return match parts.next().as_deref() {
                Some("objects") | Some("logs") => None,
                Some(LINKED_WORKTREES_DIR) => {
                    parts.next().map(|n| Touched::Worktree(n.into_owned()))
                }
                Some("refs") | Some("packed-refs") => Some(Touched::Repo),
                _ => Some(Touched::Main),
            };
        }
        if let Some(wt) = &self.worktrees {
            if let Ok(rel) = path.strip_prefix(wt) {
                let name = rel.components().next()?.as_os_str().to_string_lossy();
                return Some(Touched::Worktree(name.into_owned()));
            }
        }
        path.starts_with(&self.workdir).then_some(Touched::Main)
    }

    /// Whether a change at `path`, located as `touched`, matters: not a path
    /// the checkout's `.gitignore` ignores.
    pub fn matters(&self, path: &Path, touched: &Touched) -> bool {
        if path.starts_with(&self.git_dir) {
            return true;
        }
        if path.file_name().is_some_and(|f| f == ".gitignore") {
            // The rules changed: what was ignored may not be any more.
            self.tops.lock().unwrap_or_else(|p| p.into_inner()).clear();
            return true;
        }
        let checkout = match (touched, &self.worktrees) {
            (Touched::Worktree(name), Some(wt)) => wt.join(name),
            _ => self.workdir.clone(),
        };
        !self.ignored(&checkout, path)
    }

    /// What `path` touched, or `None` when it cannot matter.
    pub fn classify(&self, path: &Path) -> Option<Touched> {
        let t = self.locate(path)?;
        self.matters(path, &t).then_some(t)
    }
}
