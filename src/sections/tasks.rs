//! `tasks`: every scheduled agent task, ordered by id, with whether it is
//! overdue and whether its schedule can be understood at all.

use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{Nullable, Text};
use diesel::QueryableByName;
use serde::Serialize;

use super::{Schedule, Section, Work};
use crate::context::Context;
use crate::overdue::{Due, Judge};
use crate::sources::db::Db;

#[derive(Debug, QueryableByName)]
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
    next_run, last_run, last_result, created_at FROM scheduled_tasks ORDER BY id";

/// One task, as served.
#[derive(Debug, Serialize, PartialEq)]
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

const SCHEDULE: Schedule = Schedule::every(Duration::from_secs(10), Duration::from_secs(5));

pub struct Tasks {
    ctx: Arc<Context>,
    db: Arc<Db>,
}

impl Tasks {
    pub fn new(ctx: Arc<Context>) -> Self {
        let db = Arc::new(super::db_for(&ctx, "tasks", SCHEDULE));
        Tasks { ctx, db }
    }
}

impl Section for Tasks {
    fn name(&self) -> &'static str {
        "tasks"
    }

    fn default_schedule(&self) -> Schedule {
        SCHEDULE
    }

    fn collect(&self) -> Work {
        let db = self.db.clone();
        let ctx = self.ctx.clone();
        Work::blocking(move || {
            let rows: Vec<Row> = super::db_rows(&db, QUERY)?;
            let judge = Judge::now(&ctx.config.pynchy);
            let tasks: Vec<TaskBody> = rows
                .into_iter()
                .map(|r| {
                    let (overdue, schedule_error) = judge.assess(Due {
                        schedule_type: r.schedule_type.as_deref(),
                        schedule_value: r.schedule_value.as_deref(),
                        status: r.status.as_deref(),
                        enabled: true,
                        next_run: r.next_run.as_deref(),
                        last_run: r.last_run.as_deref(),
                        created_at: r.created_at.as_deref(),
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
                })
                .collect();
            super::to_body(tasks)
        })
    }
}
