//! `host_jobs`: every cron-like job pynchy runs on the host, ordered by name,
//! with whether it is overdue (enabled and active ones only) and whether its
//! schedule can be understood.

use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{BigInt, Nullable, Text};
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
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    schedule_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    schedule_value: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    enabled: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    next_run: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_run: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    created_at: Option<String>,
}

const QUERY: &str = "SELECT id, name, schedule_type, schedule_value, status, enabled, \
    next_run, last_run, created_at FROM host_jobs ORDER BY name";

/// One host job, as served.
#[derive(Debug, Serialize, PartialEq)]
pub struct HostJobBody {
    pub id: Option<String>,
    pub name: Option<String>,
    pub schedule_type: Option<String>,
    pub schedule_value: Option<String>,
    pub status: Option<String>,
    pub enabled: bool,
    pub next_run: Option<String>,
    pub last_run: Option<String>,
    pub overdue: bool,
    pub schedule_error: Option<String>,
}

const SCHEDULE: Schedule = Schedule::every(Duration::from_secs(10), Duration::from_secs(5));

pub struct HostJobs {
    ctx: Arc<Context>,
    db: Arc<Db>,
}

impl HostJobs {
    pub fn new(ctx: Arc<Context>) -> Self {
        let db = Arc::new(super::db_for(&ctx, "host_jobs", SCHEDULE));
        HostJobs { ctx, db }
    }
}

impl Section for HostJobs {
    fn name(&self) -> &'static str {
        "host_jobs"
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
            let jobs: Vec<HostJobBody> = rows
                .into_iter()
                .map(|r| {
                    // pynchy's column default is 1: a NULL counts as enabled.
                    let enabled = r.enabled.unwrap_or(1) != 0;
                    let (overdue, schedule_error) = judge.assess(Due {
                        schedule_type: r.schedule_type.as_deref(),
                        schedule_value: r.schedule_value.as_deref(),
                        status: r.status.as_deref(),
                        enabled,
                        next_run: r.next_run.as_deref(),
                        last_run: r.last_run.as_deref(),
                        created_at: r.created_at.as_deref(),
                    });
                    HostJobBody {
                        id: r.id,
                        name: r.name,
                        schedule_type: r.schedule_type,
                        schedule_value: r.schedule_value,
                        status: r.status,
                        enabled,
                        next_run: r.next_run,
                        last_run: r.last_run,
                        overdue,
                        schedule_error,
                    }
                })
                .collect();
            super::to_body(jobs)
        })
    }
}
