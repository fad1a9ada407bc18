//! The database sections' collection cost on a large pynchy database:
//! 1,000,000 messages in 50 registered workspaces, 100,000 outbound rows,
//! 1,000 pending deliveries, 1,000 scheduled tasks with 10 runs each, and
//! 1,000 host jobs; `queue` with its per-group activity. The newest message
//! is now, so the last 24 hours hold 2,880 messages and 288 replies (the
//! messages section's per-hour counts read those only). Criterion;
//! `cargo bench --bench db` (the run history at scale: `--bench history`).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use pynchy_status::app::Daemon;
use pynchy_status::config::Config;
use pynchy_status::SectionId;

#[path = "support/collect.rs"]
mod collect;
use collect::run_blocking;

fn build(path: &std::path::Path) {
    let mut c = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    c.batch_execute(pynchy_status::demo::SCHEMA).unwrap();
    // Messages every 30 s and replies every 300 s, the newest now: the last
    // 24 hours hold 2,880 messages and 288 replies (the sparkline's window).
    let now = chrono::Utc::now().timestamp();
    let (m0, o0) = (now - 1_000_000 * 30, now - 100_000 * 300);
    let sql = format!(
        "BEGIN;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000)
         INSERT INTO messages SELECT 'm' || x, 'chat' || (x % 50), 'u', 'User',
             'a message of ordinary length, number ' || x,
             strftime('%Y-%m-%dT%H:%M:%S+00:00', {m0} + x * 30, 'unixepoch'),
             x % 4 = 3, 'user', NULL FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000)
         INSERT INTO outbound_ledger (chat_jid, content, timestamp, source)
             SELECT 'chat' || (x % 50), 'a reply', strftime('%Y-%m-%dT%H:%M:%S+00:00', {o0} + x * 300, 'unixepoch'), 'agent' FROM n;
         INSERT INTO outbound_deliveries SELECT id, 'whatsapp',
             CASE WHEN id % 100 = 0 THEN NULL ELSE '2026-01-01T00:00:00+00:00' END, NULL FROM outbound_ledger;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
         INSERT INTO scheduled_tasks SELECT printf('task-%04d', x), 'g' || (x % 20), 'c', 'p',
             CASE x % 3 WHEN 0 THEN 'cron' WHEN 1 THEN 'interval' ELSE 'once' END,
             CASE x % 3 WHEN 0 THEN '*/15 * * * *' WHEN 1 THEN '3600000' ELSE '' END,
             '2026-11-27T09:00:00+00:00', '2026-11-27T08:00:00+00:00', 'ok', 'active',
             '2026-01-01T00:00:00+00:00', 'isolated', NULL FROM n;
         WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 49)
         INSERT INTO registered_groups SELECT 'chat' || x, 'G' || x, 'g' || x, '@g', '2026-01-01T00:00:00+00:00',
             NULL, NULL, x = 0 FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10000)
         INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error)
             SELECT printf('task-%04d', (x % 1000) + 1),
                 strftime('%Y-%m-%dT%H:%M:%f+00:00', 1790000000 + x * 60, 'unixepoch'),
                 1000.5 + x % 977, CASE WHEN x % 13 = 0 THEN 'error' ELSE 'success' END,
                 NULL, CASE WHEN x % 13 = 0 THEN 'boom' END FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
         INSERT INTO host_jobs SELECT 'job' || x, printf('job-%04d', x), 'true',
             CASE x % 2 WHEN 0 THEN 'cron' ELSE 'interval' END,
             CASE x % 2 WHEN 0 THEN '0 3 * * *' ELSE '86400000' END,
             '2026-11-28T03:00:00+00:00', '2026-11-27T03:00:00+00:00', 'active',
             '2026-01-01T00:00:00+00:00', 'admin', NULL, 600, x % 5 != 0 FROM n;
         COMMIT;"
    );
    c.batch_execute(&sql).unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    build(&db);
    let cfg = Config::parse(
        &format!(
            "[pynchy]\nroot = \".\"\ndatabase = \"{}\"\n[watch]\nenabled = false\n",
            db.display()
        ),
        dir.path(),
    )
    .unwrap();
    // pynchy's queue, as pushed: five of the 50 workspaces busy.
    let host = pynchy_status::sources::push::PushStore::new();
    let per_group: serde_json::Map<String, serde_json::Value> = (0..5)
        .map(|i| {
            let g = serde_json::json!({"active": true, "is_task": false, "pending_messages": false, "pending_tasks": 0});
            (format!("g{i}"), g)
        })
        .collect();
    let queue = serde_json::json!({"active_containers": 5, "max_concurrent": 5, "groups_waiting": 0, "per_group": per_group});
    host.push(
        SectionId::Queue,
        queue.to_string().as_bytes(),
        pynchy_status::Stamp::now(),
    )
    .unwrap();
    let daemon = Daemon::with_push_source(cfg, host).unwrap();
    let ctx = daemon.context().clone();
    let mut g = c.benchmark_group("db");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    for id in [
        SectionId::Messages,
        SectionId::Tasks,
        SectionId::HostJobs,
        SectionId::Groups,
        SectionId::Queue,
    ] {
        let e = pynchy_status::sections::lookup(id).unwrap();
        let s = (e.build)(&ctx, e.schedule(&ctx.config));
        let name = id.name();
        run_blocking(&s);
        g.bench_function(name, |b| b.iter(|| run_blocking(&s)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
