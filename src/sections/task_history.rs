//! The run history of `tasks`: each task's last runs and its 24 h and 7 d
//! figures from pynchy's `task_run_logs`, each row read once and kept.
//!
//! pynchy appends one row per finished run (ids only grow) and deletes rows
//! only with their task. So:
//! - a task seen for the first time is read whole: its last 20 runs and the
//!   runs of its last 7 days, through the `(task_id, run_at)` index;
//! - afterwards only rows past the highest `id` seen are read, by rowid, and
//!   added to their task (`MAX(id)` costs one lookup: a database that changed
//!   elsewhere costs next to nothing here);
//! - the 24 h and 7 d windows slide in memory: a task's figures are worked
//!   out again when a run arrives or leaves a window, never by reading again;
//! - every task is read whole again when the highest id ever given went
//!   back (a database put back from an older copy) or the file was replaced
//!   (another inode: its ids say nothing about the old file's);
//! - rows deleted by hand (pynchy never does) are noticed every
//!   `verify_interval`: one pass over the `(task_id, run_at)` index counts
//!   each task's rows and its highest id, and a task whose tally differs
//!   from what is held is read whole again;
//! - reading rows past the last id seen stops at the collection's deadline
//!   and goes on at the next one (a restored database can bring millions).
//!
//! Whole reads start only within a budget (40 % of the section's timeout): a
//! database too big for one collection is read over several, and never holds
//! the database's gate past its deadline (which would make every database
//! section report it unreadable).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

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
struct RunRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    task_id: String,
    #[diesel(sql_type = Text)]
    run_at: String,
    #[diesel(sql_type = Nullable<Double>)]
    duration_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
}

/// One run of the last 7 days, as read (no text is loaded).
#[derive(QueryableByName)]
struct WindowRow {
    #[diesel(sql_type = Text)]
    run_at: String,
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

/// `duration_ms` is declared INTEGER but pynchy writes floats: read as REAL.
/// The error is cut in SQL, so a huge agent output is never loaded whole:
/// leading blank lines are dropped first (within its first 64 KiB), then
/// 1,000 characters kept, so the first non-blank line is always in them.
/// A whole read takes the rows up to the last id seen (`id <= ?`): a run
/// written between its two queries is left to the reads by rowid.
macro_rules! run_columns {
    () => {
        "SELECT id, task_id, run_at, CAST(duration_ms AS REAL) AS duration_ms, status, \
         substr(ltrim(substr(error, 1, 65536), ' ' || char(9, 10, 13)), 1, 1000) AS error \
         FROM task_run_logs "
    };
}
const RECENT_Q: &str = concat!(
    run_columns!(),
    "WHERE task_id = ? AND id <= ? ORDER BY run_at DESC, id DESC LIMIT 20"
);
const WINDOW_Q: &str = "SELECT run_at, CAST(duration_ms AS REAL) AS duration_ms, \
    IFNULL(status = 'success', 0) AS ok, IFNULL(status = 'error', 0) AS failed \
    FROM task_run_logs WHERE task_id = ? AND run_at >= ? AND id <= ?";
/// The highest id ever given (AUTOINCREMENT's high-water mark, which
/// deleting the newest rows does not lower; only a database put back from
/// an older copy does), else the highest id there.
const MAX_ID_Q: &str =
    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'task_run_logs'), \
    (SELECT MAX(id) FROM task_run_logs)) AS id";
/// Without AUTOINCREMENT anywhere there is no `sqlite_sequence`.
const MAX_ID_PLAIN_Q: &str = "SELECT MAX(id) AS id FROM task_run_logs";

fn max_id(c: &mut SqliteConnection) -> diesel::QueryResult<Option<i64>> {
    match diesel::sql_query(MAX_ID_Q).get_result::<MaxId>(c) {
        Err(e) if e.to_string().contains("sqlite_sequence") => {
            Ok(diesel::sql_query(MAX_ID_PLAIN_Q).get_result::<MaxId>(c)?.id)
        }
        r => Ok(r?.id),
    }
}
/// New rows, by rowid (never a walk of the `(task_id, run_at)` index), a
/// batch at a time.
const NEW_Q: &str = concat!(
    run_columns!(),
    "WHERE id > ? AND id <= ? ORDER BY id LIMIT 1000"
);
/// Each task's rows and highest id: one pass over the `(task_id, run_at)`
/// index (it holds the rowid), grouped as it goes.
const TALLY_Q: &str = "SELECT task_id, COUNT(*) AS n, MAX(id) AS top FROM task_run_logs \
    WHERE id <= ? GROUP BY task_id";
/// One task's rows and highest id, through the same index.
const TASK_TALLY_Q: &str = "SELECT ? AS task_id, COUNT(*) AS n, MAX(id) AS top \
    FROM task_run_logs WHERE task_id = ? AND id <= ?";

#[derive(QueryableByName)]
struct Tally {
    #[diesel(sql_type = Text)]
    task_id: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    top: Option<i64>,
}

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

const DAY: chrono::TimeDelta = chrono::TimeDelta::days(1);
const WEEK: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// One run in a window: when it finished, how long it took (NaN: not
/// known), how it went. 24 bytes: a million of them are 24 MB.
#[derive(Debug, Clone, Copy)]
struct Point {
    at: DateTime<Utc>,
    duration_ms: f64,
    ok: bool,
    failed: bool,
}

impl Point {
    /// A run whose finish time cannot be read counts in no window.
    fn new(run_at: &str, duration_ms: Option<f64>, ok: bool, failed: bool) -> Option<Point> {
        let at = DateTime::parse_from_rfc3339(run_at)
            .ok()?
            .with_timezone(&Utc);
        Some(Point {
            at,
            duration_ms: duration_ms.unwrap_or(f64::NAN),
            ok,
            failed,
        })
    }
}

fn window<'a>(points: impl Iterator<Item = &'a Point>) -> Window {
    let (mut runs, mut successes, mut failures) = (0u64, 0u64, 0u64);
    for p in points {
        runs += 1;
        successes += u64::from(p.ok);
        failures += u64::from(p.failed);
    }
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

fn run(r: RunRow) -> Run {
    Run {
        run_at: r.run_at,
        duration_ms: r.duration_ms,
        status: r.status,
        error: r.error.as_deref().and_then(first_line),
    }
}

/// One task's runs as kept, and its history as served.
#[derive(Debug)]
struct Entry {
    /// The last [`RECENT`] runs, newest first.
    recent: Vec<Run>,
    /// The runs of the last 7 days (as of the last settle), oldest first.
    points: VecDeque<Point>,
    /// The highest row id this entry holds: newer rows are added once.
    seen: i64,
    /// The task's rows up to `seen` and its highest id, as its table would
    /// count them: a differing tally means rows went away.
    tally: (i64, Option<i64>),
    history: Arc<History>,
    /// The figures hold from `settled` (a clock set back makes them
    /// worked out again) until `valid_until` (a run leaves a window).
    settled: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
}

impl Entry {
    /// Reads task `id` whole, up to row `top`, as of `now`.
    fn read(
        c: &mut SqliteConnection,
        id: &str,
        top: i64,
        now: DateTime<Utc>,
    ) -> diesel::QueryResult<Entry> {
        let recent: Vec<RunRow> = diesel::sql_query(RECENT_Q)
            .bind::<Text, _>(id)
            .bind::<BigInt, _>(top)
            .load(c)?;
        let rows: Vec<WindowRow> = diesel::sql_query(WINDOW_Q)
            .bind::<Text, _>(id)
            .bind::<Text, _>(iso(now - WEEK))
            .bind::<BigInt, _>(top)
            .load(c)?;
        let mut points: Vec<Point> = rows
            .iter()
            .filter_map(|r| Point::new(&r.run_at, r.duration_ms, r.ok, r.failed))
            .collect();
        points.sort_by_key(|p| p.at);
        points.shrink_to_fit();
        let tally: Tally = diesel::sql_query(TASK_TALLY_Q)
            .bind::<Text, _>(id)
            .bind::<Text, _>(id)
            .bind::<BigInt, _>(top)
            .get_result(c)?;
        let mut e = Entry {
            recent: recent.into_iter().map(run).collect(),
            points: points.into(),
            seen: top,
            tally: (tally.n, tally.top),
            history: Arc::default(),
            settled: now,
            valid_until: None,
        };
        e.settle(now);
        Ok(e)
    }

    /// Adds a run read after this entry's rows.
    fn add(&mut self, r: RunRow) {
        self.seen = self.seen.max(r.id);
        self.tally = (self.tally.0 + 1, self.tally.1.max(Some(r.id)));
        let (ok, failed) = (
            r.status.as_deref() == Some("success"),
            r.status.as_deref() == Some("error"),
        );
        if let Some(p) = Point::new(&r.run_at, r.duration_ms, ok, failed) {
            let at = self.points.partition_point(|q| q.at <= p.at);
            self.points.insert(at, p);
        }
        // pynchy's order: run_at descending (a new run is nearly always first).
        // Ties: the newer row (higher id) first, as `ORDER BY run_at DESC, id DESC`.
        let at = self.recent.partition_point(|q| q.run_at > r.run_at);
        if at < RECENT {
            self.recent.insert(at, run(r));
            self.recent.truncate(RECENT);
        }
        self.valid_until = None;
    }

    /// Works the figures out again if a run arrived or left a window by `now`.
    fn settle(&mut self, now: DateTime<Utc>) {
        if self.valid_until.is_some_and(|t| now < t) && now >= self.settled {
            return;
        }
        self.settled = now;
        while self.points.front().is_some_and(|p| p.at < now - WEEK) {
            self.points.pop_front();
        }
        let day = self.points.partition_point(|p| p.at < now - DAY);
        let known = self.points.iter().map(|p| p.duration_ms);
        let (p50, max) = durations(known.filter(|d| !d.is_nan()).collect());
        self.history = Arc::new(History {
            runs: self.recent.clone(),
            stats: Stats {
                last_24h: window(self.points.range(day..)),
                last_7d: window(self.points.iter()),
                duration_ms_p50: p50,
                duration_ms_max: max,
            },
        });
        // The next change with the clock: the oldest run leaving the week,
        // or the oldest of the day leaving the day.
        let leaves_week = self.points.front().map(|p| p.at + WEEK);
        let leaves_day = self.points.get(day).map(|p| p.at + DAY);
        self.valid_until = match (leaves_week, leaves_day) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b).or(Some(DateTime::<Utc>::MAX_UTC)),
        };
    }
}

/// The histories last read, and the highest `id` read past.
#[derive(Debug, Default)]
pub struct Histories {
    max_id: Option<i64>,
    per_task: HashMap<String, Entry>,
    /// The database file they were read from.
    file: Option<FileKey>,
    /// When the tallies were last compared with the table's.
    verified: Option<Instant>,
}

/// The identity of a database file (device and inode).
pub type FileKey = (u64, u64);

impl Histories {
    /// The history of task `id`, if read.
    pub fn get(&self, id: &str) -> Option<&Arc<History>> {
        self.per_task.get(id).map(|e| &e.history)
    }

    /// Brings the histories of the tasks `ids` up to date as of `now` (see
    /// the module's header), forgetting tasks no longer there. Reads start
    /// only until `deadline`: on a database too big for one collection, the
    /// rest are read at the next ones (returns false then), and a task not
    /// read yet shows no runs. On error nothing is lost: the rows not taken
    /// in are read again. `file` is the database file's identity; the
    /// tallies are compared every `verify`.
    pub fn refresh(
        &mut self,
        c: &mut SqliteConnection,
        file: Option<FileKey>,
        ids: &[&str],
        now: DateTime<Utc>,
        deadline: Instant,
        verify: std::time::Duration,
    ) -> diesel::QueryResult<bool> {
        if file != self.file {
            // Another file: its ids say nothing about the old one's.
            *self = Histories {
                file,
                ..Histories::default()
            };
        }
        let max_id = max_id(c)?;
        if max_id < self.max_id {
            // An older copy of the database: ids may be given again.
            self.per_task.clear();
        }
        let caught_up = self.catch_up(c, max_id, deadline)?;
        let top = max_id.unwrap_or(0);
        if caught_up && self.verified.is_none_or(|t| t.elapsed() >= verify) {
            self.verify(c, top)?;
        }
        let mut complete = caught_up;
        let mut next = HashMap::with_capacity(ids.len());
        for &id in ids {
            let entry = match self.per_task.remove(id) {
                Some(e) => e,
                None if Instant::now() < deadline => match Entry::read(c, id, top, now) {
                    Ok(e) => e,
                    Err(err) => {
                        // Keep what was read; the rest next time.
                        self.per_task.extend(next);
                        return Err(err);
                    }
                },
                None => {
                    complete = false;
                    continue;
                }
            };
            next.insert(id.to_owned(), entry);
        }
        self.per_task = next;
        self.settle(now);
        Ok(complete)
    }

    /// Adds the rows past the last id read, up to `max_id`, a batch at a
    /// time: the first always, more until `deadline`. False when some are
    /// left for the next time.
    fn catch_up(
        &mut self,
        c: &mut SqliteConnection,
        max_id: Option<i64>,
        deadline: Instant,
    ) -> diesel::QueryResult<bool> {
        if let (Some(mut last), Some(top)) = (self.max_id, max_id) {
            // One batch at least, so that each collection makes progress.
            let mut first = true;
            while last < top && !self.per_task.is_empty() {
                if !std::mem::take(&mut first) && Instant::now() >= deadline {
                    return Ok(false);
                }
                let rows: Vec<RunRow> = diesel::sql_query(NEW_Q)
                    .bind::<BigInt, _>(last)
                    .bind::<BigInt, _>(top)
                    .load(c)?;
                last = rows.last().map_or(top, |r| r.id);
                for r in rows {
                    // A task without an entry is read whole.
                    if let Some(e) = self.per_task.get_mut(&r.task_id).filter(|e| r.id > e.seen) {
                        e.add(r);
                    }
                }
                self.max_id = Some(last);
            }
        }
        self.max_id = max_id;
        Ok(true)
    }

    /// Forgets every task whose rows up to `top` are not the ones held (rows
    /// deleted): it is read whole again.
    fn verify(&mut self, c: &mut SqliteConnection, top: i64) -> diesel::QueryResult<()> {
        self.verified = Some(Instant::now());
        if self.per_task.is_empty() {
            return Ok(());
        }
        let tallies: Vec<Tally> = diesel::sql_query(TALLY_Q).bind::<BigInt, _>(top).load(c)?;
        let table: HashMap<&str, (i64, Option<i64>)> = tallies
            .iter()
            .map(|t| (t.task_id.as_str(), (t.n, t.top)))
            .collect();
        self.per_task.retain(|id, e| {
            let held = (e.tally.0, e.tally.1.filter(|_| e.tally.0 > 0));
            table.get(id.as_str()).copied().unwrap_or((0, None)) == held
        });
        Ok(())
    }

    /// Works out again the figures that changed with the clock alone.
    pub fn settle(&mut self, now: DateTime<Utc>) {
        for e in self.per_task.values_mut() {
            e.settle(now);
        }
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
