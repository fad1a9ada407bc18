//! `groups`: how many groups (workspaces) pynchy has registered, and how many
//! have a live agent session: pynchy's pushed count while it is fresh, else
//! the rows of `sessions`.

use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};
use serde::Serialize;

use super::{Schedule, Section, Work};
use crate::context::Context;
use crate::sources::db::Db;

/// The seed's `groups` body.
#[derive(Debug, Serialize, QueryableByName, PartialEq)]
pub struct GroupsBody {
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    #[diesel(sql_type = BigInt)]
    pub active_sessions: i64,
}

const QUERY: &str = "SELECT (SELECT COUNT(*) FROM registered_groups) AS total, \
    (SELECT COUNT(*) FROM sessions) AS active_sessions";

const SCHEDULE: Schedule = Schedule::every(Duration::from_secs(10), Duration::from_secs(5));

pub struct Groups {
    ctx: Arc<Context>,
    db: Arc<Db>,
}

impl Groups {
    pub fn new(ctx: Arc<Context>) -> Self {
        let db = Arc::new(super::db_for(&ctx, "groups", SCHEDULE));
        Groups { ctx, db }
    }
}

impl Section for Groups {
    fn name(&self) -> &'static str {
        "groups"
    }

    fn default_schedule(&self) -> Schedule {
        SCHEDULE
    }

    fn collect(&self) -> Work {
        let db = self.db.clone();
        // pynchy's live count, while its push is fresh, beats the sessions table.
        let ttl = self.ctx.config.ingest.ttl;
        let live = self
            .ctx
            .host
            .active_sessions()
            .filter(|s| s.stamp.instant.elapsed() < ttl)
            .map(|s| s.value);
        Work::blocking(move || {
            let mut body = db.read(|c| diesel::sql_query(QUERY).get_result::<GroupsBody>(c))?;
            if let Some(n) = live {
                body.active_sessions = i64::try_from(n).unwrap_or(i64::MAX);
            }
            super::to_body(body)
        })
    }
}
