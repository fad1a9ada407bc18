//! The run history of `tasks`: each task's last runs and its 24 h and 7 d
//! figures from pynchy's `task_run_logs`, read through the `(task_id, run_at)`
//! index, one task at a time, and kept between reads.
//!
//! What is read again, and when (pynchy appends one row per finished run and
//! deletes rows only with their task):
//! - a task seen for the first time: its history;
//! - a task with rows past the highest `id` read before: its history
//!   (`MAX(id)` costs one lookup, so a database that changed elsewhere costs
//!   next to nothing here);
//! - each task again `recount` (the section's `verify_interval`) after its
//!   last read, so that the 24 h and 7 d windows follow the clock; and every
//!   task when `MAX(id)` went back (a database restored from a backup).
//!
//! Reads start only within a budget (40 % of the section's timeout): a
//! database too big for one collection is read over several, and never holds
//! the database's gate past its deadline (which would make every database
//! section report it unreadable).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};
use serde::{Deserialize, Serialize};

/// Runs kept per task (newest first).
pub const RECENT: usize = 20;
/// An error is served as its first line, cut to this many characters.
pub const ERROR_CHARS: usize = 200;

/// One finished run, as served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Run {
    /// When it finished (pynchy's UTC isoformat); it started `duration_ms` before.
    pub run_at: String,
    pub duration_ms: Option<f64>,
    /// `success` or `error`.
    pub status: Option<String>,
    /// The error's first line, cut to 200 characters; null without one.
    pub error: Option<String>,
}

/// Runs finished within a window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Window {
    pub runs: u64,
    pub successes: u64,
    pub failures: u64,
    /// `successes / runs`, from 0 to 1; null without runs.
    pub success_rate: Option<f64>,
}

/// A task's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Stats {
    pub last_24h: Window,
    pub last_7d: Window,
    /// Median (nearest rank) and longest duration of the runs of the last 7 days.
    pub duration_ms_p50: Option<f64>,
    pub duration_ms_max: Option<f64>,
}

/// One task's history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The last [`RECENT`] runs, newest first.
    pub runs: Vec<Run>,
    pub stats: Stats,
}

impl History {
    /// The newest run's status.
    pub fn last_status(&self) -> Option<&str> {
        self.runs.first().and_then(|r| r.status.as_deref())
    }

    /// How many of the newest runs in a row failed (at most [`RECENT`]).
    pub fn consecutive_failures(&self) -> u64 {
        self.runs
            .iter()
            .take_while(|r| r.status.as_deref() == Some("error"))
            .count() as u64
    }
}

#[derive(QueryableByName)]
struct RecentRow {
    #[diesel(sql_type = Text)]
    run_at: String,
    #[diesel(sql_type = Nullable<Double>)]
    duration_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
}

/// One run of the last 7 days, judged in SQL (no text is loaded).
#[derive(QueryableByName)]
struct WindowRow {
    /// Finished within the last 24 hours.
    #[diesel(sql_type = Bool)]
    today: bool,
    #[diesel(sql_type = Nullable<Double>)]
    duration_ms: Option<f64>,
    #[diesel(sql_type = Bool)]
    ok: bool,
    #[diesel(sql_type = Bool)]
    failed: bool,
}

#[derive(QueryableByName)]
struct MaxId {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
}

#[derive(QueryableByName)]
struct TaskId {
    #[diesel(sql_type = Text)]
    task_id: String,
}

/// `duration_ms` is declared INTEGER but pynchy writes floats: read as REAL.
/// The error is cut in SQL, so a huge agent output is never loaded whole.
const RECENT_Q: &str = "SELECT run_at, CAST(duration_ms AS REAL) AS duration_ms, status, \
    substr(error, 1, 1000) AS error FROM task_run_logs WHERE task_id = ? \
    ORDER BY run_at DESC, id DESC LIMIT 20";
const WINDOW_Q: &str = "SELECT run_at >= ? AS today, CAST(duration_ms AS REAL) AS duration_ms, \
    IFNULL(status = 'success', 0) AS ok, IFNULL(status = 'error', 0) AS failed \
    FROM task_run_logs WHERE task_id = ? AND run_at >= ?";
const MAX_ID_Q: &str = "SELECT MAX(id) AS id FROM task_run_logs";
/// By rowid: with `DISTINCT`, SQLite would walk the whole `(task_id, run_at)` index.
const CHANGED_Q: &str = "SELECT task_id FROM task_run_logs WHERE id > ? ORDER BY id";

/// pynchy's timestamp form (Python's UTC `isoformat()`), so that bounds
/// compare as strings the way pynchy's own queries do.
fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// The first non-blank line, trimmed and cut to [`ERROR_CHARS`] characters.
pub fn first_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(ERROR_CHARS).collect())
}

fn window(rows: &[&WindowRow]) -> Window {
    let runs = rows.len() as u64;
    let successes = rows.iter().filter(|r| r.ok).count() as u64;
    let failures = rows.iter().filter(|r| r.failed).count() as u64;
    Window {
        runs,
        successes,
        failures,
        success_rate: (runs > 0).then(|| successes as f64 / runs as f64),
    }
}

/// Nearest-rank median and maximum.
fn durations(mut d: Vec<f64>) -> (Option<f64>, Option<f64>) {
    if d.is_empty() {
        return (None, None);
    }
    d.sort_by(f64::total_cmp);
    let p50 = d[d.len().div_ceil(2) - 1];
    (Some(p50), d.last().copied())
}

/// Reads one task's history as of `now`.
fn read_one(
    c: &mut SqliteConnection,
    id: &str,
    now: DateTime<Utc>,
) -> diesel::QueryResult<History> {
    let recent: Vec<RecentRow> = diesel::sql_query(RECENT_Q).bind::<Text, _>(id).load(c)?;
    let week = iso(now - chrono::Duration::days(7));
    let day = iso(now - chrono::Duration::days(1));
    let rows: Vec<WindowRow> = diesel::sql_query(WINDOW_Q)
        .bind::<Text, _>(&day)
        .bind::<Text, _>(id)
        .bind::<Text, _>(&week)
        .load(c)?;
    let all: Vec<&WindowRow> = rows.iter().collect();
    let today: Vec<&WindowRow> = rows.iter().filter(|r| r.today).collect();
    let (p50, max) = durations(rows.iter().filter_map(|r| r.duration_ms).collect());
    Ok(History {
        runs: recent
            .into_iter()
            .map(|r| Run {
                run_at: r.run_at,
                duration_ms: r.duration_ms,
                status: r.status,
                error: r.error.as_deref().and_then(first_line),
            })
            .collect(),
        stats: Stats {
            last_24h: window(&today),
            last_7d: window(&all),
            duration_ms_p50: p50,
            duration_ms_max: max,
        },
    })
}

/// One task's history and when it was read (`None`: to be read again).
#[derive(Debug)]
struct Entry {
    history: Arc<History>,
    read_at: Option<Instant>,
}

/// The histories last read, and what is needed to tell which are out of date.
#[derive(Debug, Default)]
pub struct Histories {
    /// Every kept history holds its task's rows up to this `id`, or is
    /// marked to be read again.
    max_id: Option<i64>,
    per_task: HashMap<String, Entry>,
}

impl Histories {
    /// The history of task `id`, if read.
    pub fn get(&self, id: &str) -> Option<&Arc<History>> {
        self.per_task.get(id).map(|e| &e.history)
    }

    /// Brings the histories of the tasks `ids` up to date (see the module's
    /// header), forgetting tasks no longer there. Reads start only until
    /// `deadline`: on a database too big for one collection, the rest are
    /// read at the next ones (returns false then); meanwhile a task keeps
    /// the history it had, or shows no runs if never read. On error nothing
    /// changes.
    pub fn refresh(
        &mut self,
        c: &mut SqliteConnection,
        ids: &[&str],
        recount: Duration,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> diesel::QueryResult<bool> {
        let max_id = diesel::sql_query(MAX_ID_Q).get_result::<MaxId>(c)?.id;
        let restored = max_id < self.max_id;
        let fresh: std::collections::HashSet<String> = match self.max_id {
            Some(last) if max_id > Some(last) && !self.per_task.is_empty() => {
                diesel::sql_query(CHANGED_Q)
                    .bind::<BigInt, _>(last)
                    .load::<TaskId>(c)?
                    .into_iter()
                    .map(|t| t.task_id)
                    .collect()
            }
            _ => Default::default(),
        };
        let mut complete = true;
        let mut next = HashMap::with_capacity(ids.len());
        for &id in ids {
            let kept = self.per_task.get(id).filter(|_| !restored);
            let due = kept.is_none_or(|e| {
                e.read_at.is_none_or(|t| t.elapsed() >= recount) || fresh.contains(id)
            });
            let entry = if !due {
                kept.map(|e| Entry {
                    history: e.history.clone(),
                    read_at: e.read_at,
                })
            } else if Instant::now() < deadline {
                Some(Entry {
                    history: Arc::new(read_one(c, id, now)?),
                    read_at: Some(Instant::now()),
                })
            } else {
                complete = false;
                kept.map(|e| Entry {
                    history: e.history.clone(),
                    read_at: None,
                })
            };
            if let Some(e) = entry {
                next.insert(id.to_owned(), e);
            }
        }
        self.per_task = next;
        self.max_id = max_id;
        Ok(complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_skips_blank_lines_and_cuts() {
        assert_eq!(first_line("\n  \nboom: x\nmore"), Some("boom: x".into()));
        assert_eq!(first_line("  \n "), None);
        let long = "é".repeat(300);
        assert_eq!(first_line(&long).map(|l| l.chars().count()), Some(200));
    }

    #[test]
    fn median_is_nearest_rank() {
        assert_eq!(durations(vec![]), (None, None));
        assert_eq!(durations(vec![3.0, 1.0, 2.0]), (Some(2.0), Some(3.0)));
        assert_eq!(durations(vec![4.0, 1.0, 2.0, 3.0]), (Some(2.0), Some(4.0)));
    }
}
