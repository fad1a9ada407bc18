//! `repos`: every `[[repos]]` entry, keyed by slug — HEAD, dirty, unpushed, and
//! each linked worktree under its `worktrees` folder (sha, dirty, ahead/behind
//! the main branch, conflict, branch). A repo or worktree that cannot be read
//! gets an `error` and nulls; the others still report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::git::{self, CheckoutStatus};

/// One worktree, as served.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Serialize, Deserialize, PartialEq)]
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

    fn read(r: &crate::config::RepoConfig) -> RepoBody {
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
#[derive(Debug, Serialize, Deserialize, PartialEq)]
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
                out.push(Finding::new(
                    &WORKTREE_CONFLICT,
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

pub struct Repos {
    ctx: Arc<Context>,
}

impl Section for Repos {
    type Body = ReposBody;

    fn collect(&self) -> Work<ReposBody> {
        let repos = self.ctx.config.repos.clone();
        Work::blocking(move || {
            let out = repos.iter().map(|r| (r.slug.clone(), RepoBody::read(r)));
            Ok(ReposBody(out.collect()))
        })
    }
}

impl Builtin for Repos {
    const ID: SectionId = SectionId::Repos;
    const RULES: &'static [&'static Rule] = &[&WORKTREE_CONFLICT];

    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(15), Duration::from_secs(10))
    }

    fn new(ctx: &Arc<Context>, _: Schedule) -> Self {
        Repos { ctx: ctx.clone() }
    }
}
