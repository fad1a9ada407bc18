//! `repos`: every `[[repos]]` entry, keyed by slug — HEAD, dirty, unpushed, and
//! each linked worktree under its `worktrees` folder (sha, dirty, ahead/behind
//! the main branch, conflict, branch). A repo or worktree that cannot be read
//! gets an `error` and nulls; the others still report.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{CollectError, Schedule, Section, Work};
use crate::context::Context;
use crate::sources::git::{self, CheckoutStatus};

/// One worktree, as served.
#[derive(Debug, Serialize)]
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

/// One repo, as served.
#[derive(Debug, Serialize)]
pub struct RepoBody {
    pub head_sha: Option<String>,
    pub dirty: Option<bool>,
    pub unpushed_commits: Option<u64>,
    pub worktrees: Map<String, Value>,
    pub error: Option<String>,
}

pub struct Repos {
    ctx: Arc<Context>,
}

impl Repos {
    pub fn new(ctx: Arc<Context>) -> Self {
        Repos { ctx }
    }
}

impl Section for Repos {
    fn name(&self) -> &'static str {
        "repos"
    }

    fn default_schedule(&self) -> Schedule {
        Schedule::every(Duration::from_secs(15), Duration::from_secs(10))
    }

    fn collect(&self) -> Work {
        let repos = self.ctx.config.repos.clone();
        Work::blocking(move || {
            let mut out = Map::new();
            for r in &repos {
                let report = git::repo_report(&r.path, r.worktrees.as_deref());
                let mut worktrees = Map::new();
                for wt in report.worktrees {
                    let body = serde_json::to_value(WorktreeBody::from(wt.status))
                        .map_err(|e| CollectError::new(e.to_string()))?;
                    worktrees.insert(wt.name, body);
                }
                let body = RepoBody {
                    head_sha: report.main.head_sha,
                    dirty: report.main.dirty,
                    unpushed_commits: report.main.unpushed_commits,
                    worktrees,
                    error: report.main.error,
                };
                out.insert(
                    r.slug.clone(),
                    serde_json::to_value(body).map_err(|e| CollectError::new(e.to_string()))?,
                );
            }
            Ok(Value::Object(out))
        })
    }
}
