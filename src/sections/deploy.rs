//! `deploy`: what is deployed — pynchy's checkout at `[pynchy] root` (HEAD,
//! subject, dirty, unpushed) and the last deploy pynchy recorded in its
//! database's `router_state` (null when the row, the table or the database is
//! missing; any other database error is named in `last_deploy_error`).
//!
//! The two are read apart, each on its own gate and within 80 % of the
//! timeout: a database that hangs leaves `head_sha` and the rest of git's
//! answer standing (its `last_deploy_error` says so), and a stuck read holds
//! one thread per source, never one per tick.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{gated, Body, Builtin, CollectError, Gate, Health, Schedule, Section, Work};
use crate::config::Config;
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::db::{self, Db, DbError};
use crate::sources::git;
use crate::sources::watch::{Changes, Sink};

/// The `deploy` body.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct DeployBody {
    pub head_sha: Option<String>,
    pub head_commit: Option<String>,
    pub dirty: Option<bool>,
    pub unpushed_commits: Option<u64>,
    pub last_deploy_at: Option<String>,
    pub last_deploy_sha: Option<String>,
    /// Why `router_state` could not be read, when it exists but failed.
    pub last_deploy_error: Option<String>,
}

impl Body for DeployBody {
    fn health(&self, h: &mut Health) {
        h.head_sha = self.head_sha.clone();
        h.head_commit = self.head_commit.clone();
        h.dirty = self.dirty;
    }

    fn summary(&self) -> String {
        let sha = self.head_sha.as_deref().unwrap_or("-");
        format!(
            "{} dirty={} unpushed={} \"{}\"",
            &sha[..sha.len().min(8)],
            super::show(&self.dirty),
            super::show(&self.unpushed_commits),
            self.head_commit.as_deref().unwrap_or("-"),
        )
    }
}

/// A commit subject cut the way pynchy's own `/health` and `/status` cut it:
/// at most 72 characters, a longer one as its first 71 and `…`.
pub fn cut_subject(subject: &str) -> String {
    if subject.chars().count() <= 72 {
        return subject.to_string();
    }
    let mut cut: String = subject.chars().take(71).collect();
    cut.push('…');
    cut
}

/// The last deploy pynchy recorded: (at, sha, why it could not be read).
type LastDeploy = (Option<String>, Option<String>, Option<String>);

fn last_deploy(db: &Db) -> LastDeploy {
    match db::router_state(db, &["last_deploy_at", "last_deploy_sha"]) {
        Ok(rows) => {
            let find = |key: &str| {
                rows.iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| v.clone())
            };
            (find("last_deploy_at"), find("last_deploy_sha"), None)
        }
        // A fresh install: no database, or no router_state table yet.
        Err(DbError::Missing(_) | DbError::Schema(_)) => (None, None, None),
        Err(e) => {
            tracing::debug!(error = %e, "router_state unreadable");
            (None, None, Some(e.to_string()))
        }
    }
}

pub struct Deploy {
    ctx: Arc<Context>,
    db: Arc<Db>,
    changes: Arc<Changes>,
    verify: Duration,
    /// pynchy's checkout, read one call at a time.
    git_gate: Gate,
    /// pynchy's database, shared with the other sections that read it.
    db_gate: Gate,
    /// How long each part may take.
    within: Duration,
}

/// Follows pynchy's checkout (what git would call a change: not
/// `.git/objects`, not ignored paths) and its database.
fn watch(ctx: &Context, changes: &Arc<Changes>) {
    super::watch_database(ctx, changes);
    let db_watched = changes.watching();
    let Some(w) = &ctx.watcher else { return };
    let root = &ctx.config.pynchy.root;
    let Ok(classifier) = git::Classifier::new(root, None) else {
        changes.set_watching(false);
        return;
    };
    let c = changes.clone();
    let sink: Sink = Arc::new(move |p: Option<&std::path::Path>| {
        if p.is_none_or(|p| classifier.classify(p).is_some()) {
            c.mark();
        }
    });
    let ok = w.add(root, true, sink).is_ok();
    changes.set_watching(ok && db_watched);
}

impl Section for Deploy {
    type Body = DeployBody;

    fn collect(&self) -> Work<DeployBody> {
        if !self.changes.must_read(self.verify) {
            return Work::same();
        }
        let root = self.ctx.config.pynchy.root.clone();
        let (db, changes) = (self.db.clone(), self.changes.clone());
        let (git_gate, db_gate, within) =
            (self.git_gate.clone(), self.db_gate.clone(), self.within);
        Work::future(async move {
            let git = gated(&git_gate, within, move || {
                let repo = git::open(&root).map_err(|e| {
                    changes.failed();
                    CollectError::new(format!("pynchy root {}: {e}", root.display()))
                })?;
                Ok::<_, CollectError>(git::read_checkout(&repo, None, None))
            });
            let deploy = gated(&db_gate, within, move || last_deploy(&db));
            let (git, deploy) = tokio::join!(git, deploy);
            let st = git.map_err(CollectError::new)??;
            let (at, sha, error) = deploy.unwrap_or_else(|why| (None, None, Some(why)));
            Ok(DeployBody {
                head_sha: st.head_sha,
                head_commit: st.head_commit.as_deref().map(cut_subject),
                dirty: st.dirty,
                unpushed_commits: st.unpushed_commits,
                last_deploy_at: at,
                last_deploy_sha: sha,
                last_deploy_error: error,
            })
        })
    }

    fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
        Some(self.changes.clone())
    }
}

impl Builtin for Deploy {
    const ID: SectionId = SectionId::Deploy;

    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(10), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let changes = Changes::new();
        watch(ctx, &changes);
        Deploy {
            ctx: ctx.clone(),
            db: Arc::new(super::db_for(ctx, schedule)),
            changes,
            verify: schedule.verify,
            git_gate: ctx.checkout_gate.clone(),
            db_gate: super::db_gate(ctx),
            within: schedule.timeout * 8 / 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cut_subject;

    #[test]
    fn subjects_are_cut_like_pynchy_cuts_them() {
        let exact: String = "a".repeat(72);
        assert_eq!(cut_subject(&exact), exact);
        let long: String = "é".repeat(73);
        let cut = cut_subject(&long);
        assert_eq!(cut.chars().count(), 72);
        assert!(cut.ends_with('…'));
        assert_eq!(cut, format!("{}…", "é".repeat(71)));
    }
}
