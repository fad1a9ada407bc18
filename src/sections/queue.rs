//! `queue`: pynchy's container queue (active containers, the concurrency
//! limit, groups waiting, and per group what is running and pending), as pynchy
//! last pushed it, fresh for `[ingest] ttl` after the push; and per group its
//! last activity from pynchy's database (latest inbound message, latest task
//! run), including registered groups the push does not name (idle).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::{Nullable, Text};
use diesel::QueryableByName;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, Finding, Rule, Schedule, Section, Update, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::db::Db;
use crate::sources::host_state::{GroupQueue, QueueState};
use crate::sources::watch::Changes;

/// One group of `queue.per_group`: what pynchy pushed for it (a registered
/// group the push does not name is idle: nothing active or pending) and its
/// last activity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct GroupBody {
    pub active: bool,
    pub is_task: bool,
    pub pending_messages: bool,
    pub pending_tasks: u64,
    /// Nothing running and nothing pending.
    pub idle: bool,
    /// The latest inbound message of the workspace (`messages.timestamp`,
    /// `is_from_me = 0`), or null (none, or not a registered group).
    pub last_message_at: Option<String>,
    /// The latest finished run of the group's tasks (`task_run_logs.run_at`), or null.
    pub last_run_at: Option<String>,
}

/// The `queue` body: the pushed counts, and each group.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct QueueBody {
    pub active_containers: u64,
    pub max_concurrent: u64,
    pub groups_waiting: u64,
    pub per_group: BTreeMap<String, GroupBody>,
}

/// One registered group's last activity, as read.
#[derive(Debug, Clone, QueryableByName)]
struct Activity {
    #[diesel(sql_type = Text)]
    folder: String,
    #[diesel(sql_type = Nullable<Text>)]
    last_message_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_run_at: Option<String>,
}

/// Every registered group's last activity, in one query. Each lookup walks
/// an index backwards and stops at its first row: the latest inbound message
/// by `(chat_jid, timestamp)`, the latest run of each of the group's tasks by
/// `(task_id, run_at)`.
const ACTIVITY: &str = "SELECT g.folder AS folder, \
    (SELECT m.timestamp FROM messages m WHERE m.chat_jid = g.jid AND m.is_from_me = 0 \
     ORDER BY m.timestamp DESC LIMIT 1) AS last_message_at, \
    (SELECT MAX((SELECT l.run_at FROM task_run_logs l WHERE l.task_id = t.id \
     ORDER BY l.run_at DESC LIMIT 1)) FROM scheduled_tasks t WHERE t.group_folder = g.folder) \
     AS last_run_at \
    FROM registered_groups g";

impl QueueBody {
    /// The pushed queue with each group's activity; registered groups the
    /// push does not name join it as idle.
    fn merge(q: QueueState, activity: &[Activity]) -> QueueBody {
        let group = |g: &GroupQueue| GroupBody {
            active: g.active,
            is_task: g.is_task,
            pending_messages: g.pending_messages,
            pending_tasks: g.pending_tasks,
            idle: !g.active && !g.pending_messages && g.pending_tasks == 0,
            last_message_at: None,
            last_run_at: None,
        };
        let mut per_group: BTreeMap<String, GroupBody> = q
            .per_group
            .into_iter()
            .map(|(k, g)| (k, group(&g)))
            .collect();
        for a in activity {
            let g = per_group
                .entry(a.folder.clone())
                .or_insert_with(|| group(&GroupQueue::default()));
            g.last_message_at.clone_from(&a.last_message_at);
            g.last_run_at.clone_from(&a.last_run_at);
        }
        QueueBody {
            active_containers: q.active_containers,
            max_concurrent: q.max_concurrent,
            groups_waiting: q.groups_waiting,
            per_group,
        }
    }
}

pub static SATURATED: Rule = Rule {
    name: "queue_saturated",
    default: Severity::Degraded,
    what: "the queue is at max_concurrent with groups waiting",
};

impl Body for QueueBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        if self.max_concurrent > 0
            && self.active_containers >= self.max_concurrent
            && self.groups_waiting > 0
        {
            out.push(Finding::new(
                &SATURATED,
                format!(
                    "queue at max_concurrent ({}) with {} groups waiting",
                    self.max_concurrent, self.groups_waiting
                ),
            ));
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        for (name, v, help) in [
            (
                "pynchy_queue_active_containers",
                self.active_containers,
                "Agent containers running",
            ),
            (
                "pynchy_queue_max_concurrent",
                self.max_concurrent,
                "The queue's concurrency limit",
            ),
            (
                "pynchy_queue_groups_waiting",
                self.groups_waiting,
                "Groups waiting for a container",
            ),
        ] {
            prom::gauge(reg, name, help, v as f64);
        }
    }

    fn summary(&self) -> String {
        format!(
            "active {}/{} waiting {}",
            self.active_containers, self.max_concurrent, self.groups_waiting
        )
    }
}

pub struct Queue {
    ctx: Arc<Context>,
    /// One read of the database at a time, across sections.
    gate: super::Gate,
    db: Arc<Db>,
    changes: Arc<Changes>,
    verify: Duration,
    timeout: Duration,
    /// The activity last read, and when.
    activity: Arc<Mutex<ActivityCache>>,
}

#[derive(Default)]
struct ActivityCache {
    rows: Option<Vec<Activity>>,
    read_at: Option<std::time::Instant>,
}

/// Without database events, the activity is read at most this often (the
/// queue itself is collected every second then).
const POLL_ACTIVITY: Duration = Duration::from_secs(10);

impl Section for Queue {
    type Body = QueueBody;

    /// The last push, merged with the activity: read again when the
    /// database changed, else the last read. The pushed queue never waits
    /// on the database: a failed read, or a database stuck in another
    /// section's read (its gate), keeps the last activity (the database's
    /// own sections report the failure), and it is tried again at the next
    /// collection.
    fn collect(&self) -> Work<QueueBody> {
        let Some(pushed) = self.ctx.host.queue() else {
            return super::pushed(None, |q| QueueBody::merge(q, &[]), "queue");
        };
        let read = self.changes.must_read(self.verify);
        let watching = self.changes.watching();
        let (db, changes, cache, gate) = (
            self.db.clone(),
            self.changes.clone(),
            self.activity.clone(),
            self.gate.clone(),
        );
        let timeout = self.timeout;
        Work::blocking_update(move || {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            let recent = cache.read_at.is_some_and(|t| t.elapsed() < POLL_ACTIVITY);
            if cache.rows.is_none() || (read && (watching || !recent)) {
                let rows = gate.enter(timeout).and_then(|_inside| {
                    super::db_rows::<Activity>(&db, ACTIVITY).map_err(|e| e.to_string())
                });
                match rows {
                    Ok(rows) => {
                        cache.rows = Some(rows);
                        cache.read_at = Some(std::time::Instant::now());
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "queue: group activity not read");
                        changes.failed();
                    }
                }
            }
            let activity = cache.rows.as_deref().unwrap_or_default();
            Ok(Update::New(QueueBody::merge(pushed.value, activity)))
        })
        .as_of(Some(pushed.stamp))
    }

    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.changes.notify.clone())
    }

    /// A push collects it at once; the database by its events (or polled).
    fn refresh(&self) -> super::Refresh {
        super::refresh_of(&self.changes)
    }

    fn failed(&self) {
        self.changes.failed();
    }
}

impl Builtin for Queue {
    const ID: SectionId = SectionId::Queue;
    const RULES: &'static [&'static Rule] = &[&SATURATED];

    /// Stale a TTL after the push; 5 s for the database read, as the
    /// database's own sections.
    fn default_schedule(config: &Config) -> Schedule {
        Schedule {
            timeout: Duration::from_secs(5),
            ..super::pushed_schedule(config)
        }
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let changes = Changes::new();
        super::watch_database(ctx, &changes);
        Queue {
            ctx: ctx.clone(),
            gate: super::db_gate(ctx),
            db: Arc::new(super::db_for(ctx, schedule)),
            changes,
            verify: schedule.verify,
            timeout: schedule.timeout,
            activity: Arc::default(),
        }
    }
}
