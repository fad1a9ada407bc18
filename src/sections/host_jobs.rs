//! `host_jobs`: every cron-like job pynchy runs on the host, newest first
//! (pynchy's own order, `created_at` descending), with whether it is overdue
//! (enabled and active ones only) and whether its schedule can be understood.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::{BigInt, Nullable, Text};
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
    #[diesel(sql_type = Nullable<BigInt>)]
    timeout_seconds: Option<i64>,
}

const QUERY: &str = "SELECT id, name, schedule_type, schedule_value, status, enabled, \
    next_run, last_run, created_at, timeout_seconds FROM host_jobs \
    ORDER BY created_at DESC, name";

/// One host job, as served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
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

/// The `host_jobs` body: every host job, newest first (pynchy's own order: `created_at` descending).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct HostJobsBody(pub Vec<HostJobBody>);

pub static HOST_JOB_OVERDUE: Rule = Rule {
    name: "host_job_overdue",
    default: Severity::Degraded,
    what: "an enabled host job is overdue",
};

impl HostJobsBody {
    fn overdue(&self) -> usize {
        self.0.iter().filter(|j| j.overdue).count()
    }
}

impl Body for HostJobsBody {
    fn findings(&self, _cfg: &RollupConfig, out: &mut Vec<Finding>) {
        let rows = self.0.iter().map(|j| Judged {
            label: j.name.as_deref(),
            overdue: j.overdue,
            schedule_error: j.schedule_error.as_deref(),
        });
        scheduled::findings(rows, &HOST_JOB_OVERDUE, "host job", out);
    }

    fn metrics(&self, reg: &mut Registry) {
        super::prom::gauge(
            reg,
            "pynchy_host_jobs_overdue",
            "Enabled host jobs overdue",
            self.overdue() as f64,
        );
    }

    fn summary(&self) -> String {
        scheduled::summary(self.0.len(), self.overdue())
    }
}

fn host_job(judge: &Judge, r: Row) -> HostJobBody {
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
        // pynchy runs host jobs inline: one may be running for its timeout.
        waits: Duration::from_secs(r.timeout_seconds.unwrap_or(600).max(0).unsigned_abs()),
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
}

pub struct HostJobs {
    /// One read of the database at a time, across sections.
    gate: super::Gate,
    ctx: Arc<Context>,
    db: Arc<Db>,
    changes: Arc<Changes>,
    verify: Duration,
    cache: Arc<Mutex<scheduled::RowCache<Row, HostJobsBody>>>,
}

impl Section for HostJobs {
    type Body = HostJobsBody;

    fn collect(&self) -> Work<HostJobsBody> {
        let judge = scheduled::judge(&self.ctx);
        let read = self.changes.must_read(self.verify);
        let (db, changes, cache) = (self.db.clone(), self.changes.clone(), self.cache.clone());
        Work::blocking_update(move || {
            scheduled::collect_rows(&db, QUERY, read, &changes, &cache, |rows| {
                HostJobsBody(rows.into_iter().map(|r| host_job(&judge, r)).collect())
            })
        })
        .gated(self.gate.clone())
    }

    fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
        Some(self.changes.clone())
    }
}

impl Builtin for HostJobs {
    const ID: SectionId = SectionId::HostJobs;
    const READS_DATABASE: bool = true;
    const RULES: &'static [&'static Rule] = &[&HOST_JOB_OVERDUE, &SCHEDULE_INVALID];
    const FOLLOWS: &'static [SectionId] = &[SectionId::Service];

    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(10), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let changes = Changes::new();
        super::watch_database(ctx, &changes);
        // Judged again at once when pynchy goes up or down (its rows read
        // again too: cheap, and only on that change).
        ctx.pynchy_up.follow(&changes);
        HostJobs {
            ctx: ctx.clone(),
            db: Arc::new(super::db_for(ctx, schedule)),
            gate: super::db_gate(ctx),
            changes,
            verify: schedule.verify,
            cache: Arc::default(),
        }
    }
}
