//! `tasks`: every scheduled agent task, newest first (pynchy's own order,
//! `created_at` descending), with whether it is overdue, whether its
//! schedule can be understood at all, and how its last runs went; and each
//! task's own page (`GET /status/tasks/{id}`: its last runs and its 24 h and
//! 7 d figures, see [`super::task_history`]), rendered here, when collected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::{Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::scheduled::{self, Judged, SCHEDULE_INVALID};
use super::task_history::{Histories, History, Run, Stats, RECENT};
use super::{Body, Builtin, Collected, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::overdue::{Due, Judge};
use crate::rendered::{Pages, Rendered};

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

/// `last_result` is an agent's whole output: cut in SQL to one character
/// past [`RESULT_CHARS`], so a huge one is never loaded into the daemon.
const QUERY: &str = "SELECT id, group_folder, schedule_type, schedule_value, status, \
    next_run, last_run, substr(last_result, 1, 1001) AS last_result, created_at \
    FROM scheduled_tasks ORDER BY created_at DESC, id";

/// `last_result` is served cut to this many characters.
pub const RESULT_CHARS: usize = 1000;

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
    /// The last run's result, cut to its first 1,000 characters.
    pub last_result: Option<String>,
    /// Whether `last_result` was cut (pynchy holds more).
    pub last_result_cut: bool,
    pub overdue: bool,
    pub schedule_error: Option<String>,
    /// The newest run's status (`success` or `error`), null before the first run.
    pub last_run_status: Option<String>,
    /// Runs that failed within the last 24 hours.
    pub failures_24h: u64,
    /// How many of the newest runs failed in a row (counted over the last 20).
    pub consecutive_failures: u64,
    /// The last 20 runs' statuses, newest first (`success`, `error`, or
    /// null): the dashboard's strip.
    pub recent_statuses: Vec<Option<String>>,
}

/// The `tasks` body: every task, newest first (pynchy's own order:
/// `created_at` descending); and, not in `/status`, each task's page.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct TasksBody {
    pub tasks: Vec<TaskBody>,
    #[serde(skip)]
    #[schemars(skip)]
    pub pages: Arc<Pages>,
}

impl PartialEq for TasksBody {
    fn eq(&self, other: &TasksBody) -> bool {
        self.tasks == other.tasks
            && (Arc::ptr_eq(&self.pages, &other.pages) || self.pages == other.pages)
    }
}

/// `GET /status/tasks/{id}`: the task as in `/status`, its last runs and its figures.
#[derive(Serialize)]
struct TaskPage<'a> {
    task: &'a TaskBody,
    /// The last 20 runs, newest first.
    runs: &'a [Run],
    stats: &'a Stats,
}

pub static TASK_OVERDUE: Rule = Rule {
    name: "task_overdue",
    default: Severity::Degraded,
    what: "a scheduled task is overdue",
};

pub static TASK_FAILING: Rule = Rule {
    name: "task_failing",
    default: Severity::Degraded,
    what: "an active task's last [rollup] task_failing_runs runs (3) all failed",
};

impl TasksBody {
    /// These tasks, without pages.
    pub fn new(tasks: Vec<TaskBody>) -> TasksBody {
        TasksBody {
            tasks,
            pages: Arc::default(),
        }
    }

    fn overdue(&self) -> usize {
        self.tasks.iter().filter(|t| t.overdue).count()
    }

    /// Active tasks whose last `n` runs all failed (a paused or finished
    /// task no longer runs: its old failures are not a reason).
    fn failing(&self, n: u64) -> impl Iterator<Item = &TaskBody> {
        self.tasks
            .iter()
            .filter(move |t| t.status.as_deref() == Some("active") && t.consecutive_failures >= n)
    }
}

impl Body for TasksBody {
    fn findings(&self, cfg: &RollupConfig, out: &mut Vec<Finding>) {
        let rows = self.tasks.iter().map(|t| Judged {
            label: t.id.as_deref(),
            overdue: t.overdue,
            schedule_error: t.schedule_error.as_deref(),
        });
        scheduled::findings(rows, &TASK_OVERDUE, "task", out);
        for t in self.failing(cfg.task_failing_runs) {
            let id = t.id.as_deref().unwrap_or("?");
            let n = t.consecutive_failures;
            let runs = if n >= RECENT as u64 {
                format!("{n} (or more)")
            } else {
                n.to_string()
            };
            out.push(Finding::about(
                &TASK_FAILING,
                id,
                format!("task {id}: its last {runs} runs failed"),
            ));
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        super::prom::gauge(
            reg,
            "pynchy_tasks_overdue",
            "Scheduled tasks overdue",
            self.overdue() as f64,
        );
        let failures: u64 = self.tasks.iter().map(|t| t.failures_24h).sum();
        super::prom::gauge(
            reg,
            "pynchy_task_failures_24h",
            "Task runs that failed within the last 24 hours, all tasks",
            failures as f64,
        );
    }

    fn summary(&self) -> String {
        let failing = self
            .tasks
            .iter()
            .filter(|t| t.last_run_status.as_deref() == Some("error"))
            .count();
        format!(
            "{}, {failing} last run failed",
            scheduled::summary(self.tasks.len(), self.overdue())
        )
    }

    fn pages(&self) -> Option<Arc<Pages>> {
        Some(self.pages.clone())
    }
}

fn task(judge: &Judge, waits: Duration, r: Row, h: &History) -> TaskBody {
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
        last_result_cut: r
            .last_result
            .as_deref()
            .is_some_and(|t| t.chars().nth(RESULT_CHARS).is_some()),
        last_result: r
            .last_result
            .map(|t| t.chars().take(RESULT_CHARS).collect()),
        overdue,
        schedule_error,
        last_run_status: h.last_status().map(str::to_owned),
        failures_24h: h.stats.last_24h.failures,
        consecutive_failures: h.consecutive_failures(),
        recent_statuses: h.runs.iter().map(|r| r.status.clone()).collect(),
    }
}

/// What a collection keeps: the rows and histories last read, each task's
/// page with what it was made from, and the last body served.
#[derive(Default)]
struct Cache {
    rows: Option<Vec<Row>>,
    histories: Histories,
    pages: HashMap<String, (TaskBody, Arc<History>, Rendered)>,
    served: Arc<Pages>,
    last: Option<TasksBody>,
    /// The history of a task not read yet (one, so its page is kept).
    no_history: Arc<History>,
}

impl Cache {
    /// Reads the tasks and brings their histories up to date. Each query is
    /// its own statement, not one long transaction: pynchy's database uses
    /// the rollback journal, where a reader holding its lock keeps pynchy's
    /// writes waiting. A run written between two queries is read again at
    /// the next collection (its id is past the last one read).
    /// Returns false when some histories are left for the next collection.
    fn read(
        &mut self,
        db: &Db,
        budget: Duration,
        verify: Duration,
    ) -> Result<bool, super::CollectError> {
        let now = chrono::Utc::now();
        let deadline = std::time::Instant::now() + budget;
        let histories = &mut self.histories;
        let (rows, complete) = db.read_file(|c, file| {
            let rows: Vec<Row> = diesel::sql_query(QUERY).load(c)?;
            let ids: Vec<&str> = rows.iter().filter_map(|r| r.id.as_deref()).collect();
            let complete = histories.refresh(c, file, &ids, now, deadline, verify)?;
            Ok((rows, complete))
        })?;
        self.rows = Some(rows);
        Ok(complete)
    }

    /// Task `id`'s history, or none yet.
    fn history(&self, id: &str) -> &Arc<History> {
        self.histories.get(id).unwrap_or(&self.no_history)
    }

    /// The body of these tasks: each judged, each with its page (made again
    /// only when its task or history changed).
    fn body(&mut self, tasks: Vec<TaskBody>) -> TasksBody {
        let mut old = std::mem::take(&mut self.pages);
        let mut changed = false;
        for t in &tasks {
            let Some(id) = &t.id else { continue };
            let h = self.history(id).clone();
            let kept = old
                .remove_entry(id)
                .filter(|(_, (task, history, _))| task == t && Arc::ptr_eq(history, &h));
            let entry = match kept {
                Some(entry) => entry,
                None => {
                    changed = true;
                    let json = serde_json::to_vec(&TaskPage {
                        task: t,
                        runs: &h.runs,
                        stats: &h.stats,
                    });
                    let page = Rendered::new(json.unwrap_or_default());
                    (id.clone(), (t.clone(), h, page))
                }
            };
            self.pages.insert(entry.0, entry.1);
        }
        // A page left over is a task gone.
        changed |= !old.is_empty();
        if changed {
            let pages = self.pages.iter();
            let pages = pages.map(|(id, (_, _, page))| (id.clone(), page.clone()));
            self.served = Arc::new(Pages::new("task", pages.collect()));
        }
        TasksBody {
            tasks,
            pages: self.served.clone(),
        }
    }
}

pub struct Tasks {
    /// One read of the database at a time, across sections.
    gate: super::Gate,
    ctx: Arc<Context>,
    db: Arc<Db>,
    changes: Arc<Changes>,
    verify: Duration,
    /// How long a collection may start history reads: 40 % of its timeout.
    budget: Duration,
    cache: Arc<Mutex<Cache>>,
}

impl Section for Tasks {
    type Body = TasksBody;

    fn collect(&self) -> Work<TasksBody> {
        let judge = scheduled::judge(&self.ctx);
        let wait = scheduled::group_wait(&self.ctx);
        let read = self.changes.must_read(self.verify);
        let (db, changes, cache) = (self.db.clone(), self.changes.clone(), self.cache.clone());
        let (budget, verify) = (self.budget, self.verify);
        Work::blocking_update(move || -> Collected<TasksBody> {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            let read = read || cache.rows.is_none();
            if read {
                let complete = cache
                    .read(&db, budget, verify)
                    .inspect_err(|_| changes.failed())?;
                if !complete {
                    // The rest at the next collection.
                    changes.failed();
                }
            } else {
                // Runs leave the 24 h and 7 d windows with the clock.
                cache.histories.settle(chrono::Utc::now());
            }
            let rows = cache.rows.clone().unwrap_or_default();
            let tasks = rows
                .into_iter()
                .map(|r| {
                    let waits = wait(r.group_folder.as_deref());
                    let h = cache.history(r.id.as_deref().unwrap_or_default()).clone();
                    task(&judge, waits, r, &h)
                })
                .collect();
            let body = cache.body(tasks);
            Ok(super::rejudged(&mut cache.last, body, read))
        })
        .gated(self.gate.clone())
    }

    fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
        Some(self.changes.clone())
    }
}

impl Builtin for Tasks {
    const ID: SectionId = SectionId::Tasks;
    const READS_DATABASE: bool = true;
    const RULES: &'static [&'static Rule] = &[&TASK_OVERDUE, &TASK_FAILING, &SCHEDULE_INVALID];
    const FOLLOWS: &'static [SectionId] = &[SectionId::Queue, SectionId::Service];

    fn default_schedule(_: &Config) -> Schedule {
        Schedule::every(Duration::from_secs(10), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let changes = Changes::new();
        super::watch_database(ctx, &changes);
        // Judged again at once when pynchy goes up or down (its rows read
        // again too: cheap, and only on that change).
        ctx.pynchy_up.follow(&changes);
        Tasks {
            ctx: ctx.clone(),
            db: Arc::new(super::db_for(ctx, schedule)),
            gate: super::db_gate(ctx),
            changes,
            verify: schedule.verify,
            budget: schedule.timeout.mul_f64(0.4),
            // Kept across a reload on the same database: 500 tasks of 6,000
            // runs each take several collections to read whole again.
            cache: ctx
                .kept
                .get(format!("tasks {}", ctx.config.pynchy.database.display())),
        }
    }
}
