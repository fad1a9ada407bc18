//! `[[repos]]`: the git repos (and their worktrees) the repos section reads.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRepo {
    pub(super) slug: String,
    pub(super) path: PathBuf,
    pub(super) worktrees: Option<PathBuf>,
    #[serde(skip)]
    pub(super) auto_clone: bool,
}

/// One `[[repos]]` entry.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    pub slug: String,
    pub path: PathBuf,
    /// Folder whose subfolders are this repo's linked worktrees.
    pub worktrees: Option<PathBuf>,
    /// True when `path` is pynchy's auto-clone location (no `path` in
    /// pynchy's config): not there yet means not cloned yet, not an error.
    pub auto_clone: bool,
}

pub(super) fn build(raw: Vec<RawRepo>, r: &Resolver) -> Result<Vec<RepoConfig>, ConfigError> {
    let mut repos: Vec<RepoConfig> = Vec::with_capacity(raw.len());
    for (i, repo) in raw.into_iter().enumerate() {
        if repo.slug.trim().is_empty() {
            return Err(invalid(format!("repos[{i}].slug"), "must not be empty"));
        }
        if repos.iter().any(|x| x.slug == repo.slug) {
            return Err(invalid(
                format!("repos[{i}].slug"),
                format!("`{}` is listed twice", repo.slug),
            ));
        }
        repos.push(RepoConfig {
            slug: repo.slug,
            path: r.path(&repo.path),
            worktrees: repo.worktrees.as_deref().map(|w| r.path(w)),
            auto_clone: repo.auto_clone,
        });
    }
    Ok(repos)
}
