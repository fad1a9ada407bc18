//! The database sections' collection cost on a large pynchy database:
//! 1,000,000 messages, 100,000 outbound rows, 1,000 pending deliveries, and
//! 1,000 scheduled tasks and host jobs. Criterion; `cargo bench --bench db`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use pynchy_status::app::Daemon;
use pynchy_status::config::Config;
use pynchy_status::sections::{DynSection, Work};
use pynchy_status::SectionId;

fn build(path: &std::path::Path) {
    let mut c = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    c.batch_execute(pynchy_status::demo::SCHEMA).unwrap();
    c.batch_execute(
        "BEGIN;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000)
         INSERT INTO messages SELECT 'm' || x, 'chat' || (x % 50), 'u', 'User',
             'a message of ordinary length, number ' || x,
             strftime('%Y-%m-%dT%H:%M:%S+00:00', 1700000000 + x * 30, 'unixepoch'),
             x % 4 = 3, 'user', NULL FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000)
         INSERT INTO outbound_ledger (chat_jid, content, timestamp, source)
             SELECT 'chat' || (x % 50), 'a reply', strftime('%Y-%m-%dT%H:%M:%S+00:00', 1700000000 + x * 300, 'unixepoch'), 'agent' FROM n;
         INSERT INTO outbound_deliveries SELECT id, 'whatsapp',
             CASE WHEN id % 100 = 0 THEN NULL ELSE '2026-01-01T00:00:00+00:00' END, NULL FROM outbound_ledger;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
         INSERT INTO scheduled_tasks SELECT printf('task-%04d', x), 'g' || (x % 20), 'c', 'p',
             CASE x % 3 WHEN 0 THEN 'cron' WHEN 1 THEN 'interval' ELSE 'once' END,
             CASE x % 3 WHEN 0 THEN '*/15 * * * *' WHEN 1 THEN '3600000' ELSE '' END,
             '2026-11-27T09:00:00+00:00', '2026-11-27T08:00:00+00:00', 'ok', 'active',
             '2026-01-01T00:00:00+00:00', 'isolated', NULL FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
         INSERT INTO host_jobs SELECT 'job' || x, printf('job-%04d', x), 'true',
             CASE x % 2 WHEN 0 THEN 'cron' ELSE 'interval' END,
             CASE x % 2 WHEN 0 THEN '0 3 * * *' ELSE '86400000' END,
             '2026-11-28T03:00:00+00:00', '2026-11-27T03:00:00+00:00', 'active',
             '2026-01-01T00:00:00+00:00', 'admin', NULL, 600, x % 5 != 0 FROM n;
         COMMIT;",
    )
    .unwrap();
}

fn run_blocking(s: &Arc<dyn DynSection>) {
    match s.collect_erased() {
        // The gate only orders reads between sections: run it directly.
        Work::Blocking(f) | Work::Gated { work: f, .. } => {
            f().expect("collection succeeds");
        }
        _ => panic!("database sections are blocking work"),
    }
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
    let daemon = Daemon::new(cfg).unwrap();
    let ctx = daemon.context().clone();
    let mut g = c.benchmark_group("db");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    for id in [
        SectionId::Messages,
        SectionId::Tasks,
        SectionId::HostJobs,
        SectionId::Groups,
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
