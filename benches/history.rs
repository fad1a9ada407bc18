//! The `tasks` section's collection with run history at scale: 1,000 tasks
//! with 10,000 runs each (10,000,000 rows of `task_run_logs`, one run per
//! task every 10 minutes, so each 7-day window holds 1,008 runs), against the
//! section's 5 s timeout. Criterion; `cargo bench --bench history` (about
//! 1.5 GB of disk under the temp folder while it runs). Under `cargo test` a
//! small world.
//!
//! - `first_read`: a new section's first collection with a 60 s timeout, so
//!   that it reads every task's history at once (as at start): the whole
//!   cost, paid once. With the default 5 s timeout a collection starts whole
//!   reads for 2 s at most and leaves the rest to the next.
//! - `unchanged`: the database changed elsewhere, no new run (one `MAX(id)`).
//! - `one_new_run`: a run was appended: that task's history is read again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use pynchy_status::app::Daemon;
use pynchy_status::config::Config;
use pynchy_status::sections::DynSection;
use pynchy_status::SectionId;

#[path = "support/collect.rs"]
mod collect;
#[path = "support/proc.rs"]
mod proc;
use collect::run_blocking;

fn sizes() -> (u64, u64) {
    if std::env::args().any(|a| a == "--bench") {
        (1_000, 10_000)
    } else {
        (20, 200)
    }
}

fn build(path: &std::path::Path, tasks: u64, runs: u64) {
    let mut c = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    c.batch_execute(pynchy_status::demo::SCHEMA).unwrap();
    let now = chrono::Utc::now().timestamp();
    c.batch_execute(&format!(
        "PRAGMA journal_mode = WAL;
         BEGIN;
         DROP INDEX idx_task_run_logs;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {tasks})
         INSERT INTO scheduled_tasks SELECT printf('task-%04d', x), 'g' || (x % 20), 'c', 'p',
             'interval', '600000', strftime('%Y-%m-%dT%H:%M:%S+00:00', {now} + 300, 'unixepoch'),
             strftime('%Y-%m-%dT%H:%M:%S+00:00', {now} - 300, 'unixepoch'), 'Completed', 'active',
             '2026-01-01T00:00:00+00:00', 'isolated', NULL FROM n;
         WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < {total} - 1)
         INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error)
             SELECT printf('task-%04d', x % {tasks} + 1),
                 strftime('%Y-%m-%dT%H:%M:%f+00:00',
                     {now} - ({runs} - 1 - x / {tasks}) * 600 - x % {tasks} * 0.5, 'unixepoch'),
                 1000.25 + x % 5000,
                 CASE WHEN x % 17 = 0 THEN 'error' ELSE 'success' END,
                 NULL,
                 CASE WHEN x % 17 = 0 THEN 'Error: agent exited with code 1' || char(10) || 'Traceback ...' END
             FROM n;
         CREATE INDEX idx_task_run_logs ON task_run_logs(task_id, run_at);
         COMMIT;",
        total = tasks * runs,
    ))
    .unwrap();
}

/// The tasks section; `timeout` sets its read budget (40 % of it).
fn section(db: &std::path::Path, dir: &std::path::Path, timeout: &str) -> Arc<dyn DynSection> {
    let cfg = Config::parse(
        &format!(
            "[pynchy]\nroot = \".\"\ndatabase = \"{}\"\n[watch]\nenabled = false\n\
             [sections.tasks]\ntimeout = \"{timeout}\"\n",
            db.display()
        ),
        dir,
    )
    .unwrap();
    let daemon = Daemon::new(cfg).unwrap();
    let ctx = daemon.context().clone();
    let e = pynchy_status::sections::lookup(SectionId::Tasks).unwrap();
    (e.build)(&ctx, e.schedule(&ctx.config))
}

fn bench(c: &mut Criterion) {
    let (tasks, runs) = sizes();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    let t = Instant::now();
    build(&db, tasks, runs);
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "history: {tasks} tasks x {runs} runs built in {:.1?}, database {} MiB",
        t.elapsed(),
        size >> 20
    );

    // With the default timeout (5 s) a first collection starts reads for
    // 2 s at most and leaves the rest to the next ones.
    let bounded = section(&db, dir.path(), "5s");
    let t = Instant::now();
    run_blocking(&bounded);
    eprintln!(
        "history: first collection with the default 5 s timeout: {:.1?}",
        t.elapsed()
    );
    // With a long timeout one collection reads everything: the whole cost.
    let steady = section(&db, dir.path(), "60s");
    let before = proc::rss_kib(std::process::id());
    let t = Instant::now();
    run_blocking(&steady);
    eprintln!(
        "history: every history in one collection: {:.1?}, RSS +{} KiB for the histories and pages",
        t.elapsed(),
        proc::rss_kib(std::process::id()).saturating_sub(before)
    );

    let mut g = c.benchmark_group("history");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    // A section of its own each time: its first collection reads everything.
    g.bench_function("first_read", |b| {
        b.iter_batched(
            || section(&db, dir.path(), "60s"),
            |fresh| run_blocking(&fresh),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("unchanged", |b| b.iter(|| run_blocking(&steady)));
    let mut w = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    let mut n = 0u64;
    g.bench_function("one_new_run", |b| {
        b.iter(|| {
            n += 1;
            w.batch_execute(&format!(
                "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
                 VALUES (printf('task-%04d', {}), strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), 1500.5, 'success', NULL, NULL);",
                n % tasks + 1
            ))
            .unwrap();
            run_blocking(&steady)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
