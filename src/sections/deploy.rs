//! `deploy`: what is deployed — pynchy's checkout at `[pynchy] root` (HEAD,
//! subject, dirty, unpushed) and the last deploy pynchy recorded in its
//! database's `router_state` (null when the row or the database is missing).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{CollectError, Schedule, Section, Work};
use crate::context::Context;
use crate::sources::db::{self, Db};
use crate::sources::git;

/// The seed's `deploy` body.
#[derive(Debug, Serialize, PartialEq)]
pub struct DeployBody {
    pub head_sha: Option<String>,
    pub head_commit: Option<String>,
    pub dirty: Option<bool>,
    pub unpushed_commits: Option<u64>,
    pub last_deploy_at: Option<String>,
    pub last_deploy_sha: Option<String>,
}

pub struct Deploy {
    ctx: Arc<Context>,
    db: Arc<Db>,
}

impl Deploy {
    pub fn new(ctx: Arc<Context>) -> Self {
        let db = Arc::new(super::db_for(&ctx, "deploy", SCHEDULE));
        Deploy { ctx, db }
    }
}

const SCHEDULE: Schedule = Schedule::every(Duration::from_secs(10), Duration::from_secs(5));

impl Section for Deploy {
    fn name(&self) -> &'static str {
        "deploy"
    }

    fn default_schedule(&self) -> Schedule {
        SCHEDULE
    }

    fn collect(&self) -> Work {
        let root = self.ctx.config.pynchy.root.clone();
        let db = self.db.clone();
        Work::blocking(move || {
            let repo = git::open(&root)
                .map_err(|e| CollectError::new(format!("pynchy root {}: {e}", root.display())))?;
            let st = git::read_checkout(&repo, None);
            let (mut at, mut sha) = (None, None);
            if let Ok(rows) = db::router_state(&db, &["last_deploy_at", "last_deploy_sha"]) {
                for (k, v) in rows {
                    match k.as_str() {
                        "last_deploy_at" => at = v,
                        _ => sha = v,
                    }
                }
            }
            super::to_body(DeployBody {
                head_sha: st.head_sha,
                head_commit: st.head_commit,
                dirty: st.dirty,
                unpushed_commits: st.unpushed_commits,
                last_deploy_at: at,
                last_deploy_sha: sha,
            })
        })
    }
}
