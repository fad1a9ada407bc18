//! `groups`: how many groups (workspaces) pynchy has registered, and how many
//! have a resumable agent session: pynchy's pushed count while it is fresh,
//! else the rows of `sessions` that pynchy itself counts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::{Body, Builtin, Schedule, Section, Work};
use crate::config::Config;
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::db::Db;
use crate::sources::watch::Changes;

/// The `groups` body (also the query's row).
#[derive(
    Debug, Clone, Serialize, Deserialize, QueryableByName, PartialEq, schemars::JsonSchema,
)]
pub struct GroupsBody {
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    #[diesel(sql_type = BigInt)]
    pub active_sessions: i64,
}

impl Body for GroupsBody {
    fn summary(&self) -> String {
        format!(
            "{} groups, {} active sessions",
            self.total, self.active_sessions
        )
    }
}

/// Counted as pynchy counts them: a session is active when its folder is a
/// registered group and its session id is not empty.
const QUERY: &str = "SELECT (SELECT COUNT(*) FROM registered_groups) AS total, \
    (SELECT COUNT(*) FROM sessions s JOIN registered_groups g ON g.folder = s.group_folder \
     WHERE s.session_id <> '') AS active_sessions";

pub struct Groups {
    /// One read of the database at a time, across sections.
    gate: super::Gate,
    ctx: Arc<Context>,
    db: Arc<Db>,
    changes: Arc<Changes>,
    verify: Duration,
    /// The last rows read, and the last body served.
    cache: Arc<Mutex<(Option<GroupsBody>, Option<GroupsBody>)>>,
}

impl Groups {
    /// pynchy's pushed count of live sessions, while fresh.
    fn live(&self) -> Option<u64> {
        let ttl = self.ctx.config.push.ttl;
        self.ctx
            .push_source
            .active_sessions()
            .filter(|s| s.stamp.instant.elapsed() < ttl)
            .map(|s| s.value)
    }
}

impl Section for Groups {
    type Body = GroupsBody;

    fn collect(&self) -> Work<GroupsBody> {
        let db = self.db.clone();
        // pynchy's live count, while its push is fresh, beats the sessions table.
        let live = self.live();
        let read = self.changes.must_read(self.verify);
        let (changes, cache) = (self.changes.clone(), self.cache.clone());
        Work::blocking_update(move || {
            let lock = || cache.lock().unwrap_or_else(|p| p.into_inner());
            // The rows are not held locked while the database is read: a push
            // builds its body from them meanwhile.
            let cached = lock().0.clone();
            let rows = match (read, cached) {
                (false, Some(rows)) => rows,
                _ => {
                    let rows = db.read(|c| diesel::sql_query(QUERY).get_result::<GroupsBody>(c));
                    let rows = rows.inspect_err(|_| changes.failed())?;
                    lock().0 = Some(rows.clone());
                    rows
                }
            };
            let mut body = rows;
            if let Some(n) = live {
                body.active_sessions = i64::try_from(n).unwrap_or(i64::MAX);
            }
            Ok(super::rejudged(&mut lock().1, body, read))
        })
        .gated(self.gate.clone())
    }

    fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
        Some(self.changes.clone())
    }

    /// The pushed live count over the rows last read, asking nothing (none
    /// before the first read: then it collects).
    fn pushed(&self) -> Option<Work<GroupsBody>> {
        let live = self.live()?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut body = cache.0.clone()?;
        body.active_sessions = i64::try_from(live).unwrap_or(i64::MAX);
        cache.1 = Some(body.clone());
        Some(Work::done(Ok(super::Update::New(body))))
    }
}

impl Builtin for Groups {
    const ID: SectionId = SectionId::Groups;
    const READS_DATABASE: bool = true;

    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(10), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let changes = Changes::new();
        super::watch_database(ctx, &changes);
        Groups {
            ctx: ctx.clone(),
            db: Arc::new(super::db_for(ctx, schedule)),
            gate: super::db_gate(ctx),
            changes,
            verify: schedule.verify,
            cache: Arc::default(),
        }
    }
}
