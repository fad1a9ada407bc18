//! `tasks`: every scheduled agent task, newest first (pynchy's own order,
//! `created_at` descending), with whether it is overdue and whether its
//! schedule can be understood at all.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::{Nullable, Text};
use diesel::QueryableByName;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::scheduled::{self, Judged, SCHEDULE_INVALID};
use super::{Body, Builtin, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::overdue::{Due, Judge};

use crate::section_id::SectionId;
use crate::sources::db::Db;
use crate::sources::watch::Changes;

#[derive(Debug, Clone, QueryableByName)]
struct Row {
    #[diesel(sql_type = Nullable<Text>)]
    id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    group_folder: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    schedule_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    schedule_value: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    next_run: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_run: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_result: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    created_at: Option<String>,
}

const QUERY: &str = "SELECT id, group_folder, schedule_type, schedule_value, status, \
    next_run, last_run, last_result, created_at FROM scheduled_tasks ORDER BY created_at DESC, id";

/// One task, as served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TaskBody {
    pub id: Option<String>,
    pub group: Option<String>,
    pub schedule_type: Option<String>,
    pub schedule_value: Option<String>,
    pub status: Option<String>,
    pub next_run: Option<String>,
    pub last_run: Option<String>,
    pub last_result: Option<String>,
    pub overdue: bool,
    pub schedule_error: Option<String>,
}

/// The `tasks` body: every task, newest first (pynchy's own order: `created_at` descending).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct TasksBody(pub Vec<TaskBody>);

pub static TASK_OVERDUE: Rule = Rule {
    name: "task_overdue",
    default: Severity::Degraded,
    what: "a scheduled task is overdue",
};

impl TasksBody {
    fn overdue(&self) -> usize {
        self.0.iter().filter(|t| t.overdue).count()
    }
}

impl Body for TasksBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        let rows = self.0.iter().map(|t| Judged {
            label: t.id.as_deref(),
            overdue: t.overdue,
            schedule_error: t.schedule_error.as_deref(),
        });
        scheduled::findings(rows, &TASK_OVERDUE, "task", out);
    }

    fn metrics(&self, reg: &mut Registry) {
        super::prom::gauge(
            reg,
            "pynchy_tasks_overdue",
            "Scheduled tasks overdue",
            self.overdue() as f64,
        );
    }

    fn summary(&self) -> String {
        scheduled::summary(self.0.len(), self.overdue())
    }
}

fn task(judge: &Judge, waits: Duration, r: Row) -> TaskBody {
    let (overdue, schedule_error) = judge.assess(Due {
        schedule_type: r.schedule_type.as_deref(),
        schedule_value: r.schedule_value.as_deref(),
        status: r.status.as_deref(),
        enabled: true,
        next_run: r.next_run.as_deref(),
        last_run: r.last_run.as_deref(),
        created_at: r.created_at.as_deref(),
        waits,
    });
    TaskBody {
        id: r.id,
        group: r.group_folder,
        schedule_type: r.schedule_type,
        schedule_value: r.schedule_value,
        status: r.status,
        next_run: r.next_run,
        last_run: r.last_run,
        last_result: r.last_result,
        overdue,
        schedule_error,
    }
}

pub struct Tasks {
    /// One read of the database at a time, across sections.
    gate: super::Gate,
    ctx: Arc<Context>,
    db: Arc<Db>,
    changes: Arc<Changes>,
    verify: Duration,
    cache: Arc<Mutex<scheduled::RowCache<Row, TasksBody>>>,
}

impl Section for Tasks {
    type Body = TasksBody;

    fn collect(&self) -> Work<TasksBody> {
        let judge = scheduled::judge(&self.ctx);
        let wait = scheduled::group_wait(&self.ctx);
        let read = self.changes.must_read(self.verify);
        let (db, changes, cache) = (self.db.clone(), self.changes.clone(), self.cache.clone());
        Work::blocking_update(move || {
            scheduled::collect_rows(&db, QUERY, read, &changes, &cache, |rows| {
                let tasks = rows.into_iter().map(|r| {
                    let waits = wait(r.group_folder.as_deref());
                    task(&judge, waits, r)
                });
                TasksBody(tasks.collect())
            })
        })
        .gated(self.gate.clone())
    }

    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.changes.notify.clone())
    }

    fn refresh(&self) -> super::Refresh {
        super::refresh_of(&self.changes)
    }

    fn failed(&self) {
        self.changes.failed();
    }
}

impl Builtin for Tasks {
    const ID: SectionId = SectionId::Tasks;
    const RULES: &'static [&'static Rule] = &[&TASK_OVERDUE, &SCHEDULE_INVALID];
    const FOLLOWS: &'static [SectionId] = &[SectionId::Queue, SectionId::Service];

    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(10), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let changes = Changes::new();
        super::watch_database(ctx, &changes);
        Tasks {
            ctx: ctx.clone(),
            db: Arc::new(super::db_for(ctx, schedule)),
            gate: super::db_gate(ctx),
            changes,
            verify: schedule.verify,
            cache: Arc::default(),
        }
    }
}
