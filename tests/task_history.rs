//! Task run history (`GET /status/tasks/{id}`, the tasks' `last_run_status`,
//! `failures_24h`, `consecutive_failures`, rule `task_failing`) and per-group
//! activity (`queue.per_group.<folder>.last_message_at`, `last_run_at`),
//! against real SQLite files with pynchy's schema. Expected values come from
//! the `sqlite3` CLI, with queries of its own (pynchy's, from the install
//! notes), not ours.

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use common::*;
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use serde_json::{json, Value};

/// pynchy's own timestamp: UTC isoformat with microseconds.
fn iso_ago(minutes: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes))
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn write(db: &Path, sql: &str) {
    let mut c = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    c.batch_execute(sql).unwrap();
}

/// Three workspaces: `a` (inbound and, newer, outbound messages; task t1
/// hourly, failing lately, and t3 paused), `b` (inbound only; task t2 every
/// 8 h, some runs older than 7 days), `c` (nothing at all).
fn world(db: &Path) {
    let mut sql = String::from(pynchy_status::demo::SCHEMA);
    let t = iso_ago(60 * 24 * 30);
    sql.push_str(&format!(
        "INSERT INTO registered_groups VALUES ('slack:A','A','a','@a','{t}',NULL,NULL,1),
           ('slack:B','B','b','@b','{t}',NULL,NULL,0),('slack:C','C','c','@c','{t}',NULL,NULL,0);
         INSERT INTO scheduled_tasks VALUES
           ('t1','a','slack:A','p','interval','3600000','{soon}',NULL,NULL,'active','{t}','isolated',NULL),
           ('t2','b','slack:B','p','interval','28800000','{soon}',NULL,NULL,'active','{t2}','isolated',NULL),
           ('t3','a','slack:A','p','interval','3600000','{soon}',NULL,NULL,'paused','{t3}','isolated',NULL);",
        soon = (Utc::now() + chrono::Duration::minutes(20)).format("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
        t2 = iso_ago(60 * 24 * 29),
        t3 = iso_ago(60 * 24 * 28),
    ));
    for i in 0..40i64 {
        // In workspace a every fourth message is the bot's, the newest included.
        let from_me = i % 4 == 0;
        sql.push_str(&format!(
            "INSERT INTO messages VALUES ('a{i}','slack:A','u','U','hi','{}',{},'user',NULL);",
            iso_ago(5 + i * 7),
            i32::from(from_me)
        ));
    }
    for i in 0..5i64 {
        sql.push_str(&format!(
            "INSERT INTO messages VALUES ('b{i}','slack:B','u','U','hi','{}',0,'user',NULL);",
            iso_ago(50 + i * 30),
        ));
    }
    // A chat that is not a registered group: never counted.
    sql.push_str(&format!(
        "INSERT INTO messages VALUES ('x','slack:X','u','U','hi','{}',0,'user',NULL);",
        iso_ago(1)
    ));
    // t1: hourly for 30 h, 30 min off the hour (far from the 24 h edge);
    // the newest three failed, and every fifth.
    for i in 0..30i64 {
        let failed = i < 3 || i % 5 == 0;
        let error = if failed {
            if i == 1 {
                format!("'{}\nsecond line'", "x".repeat(260))
            } else {
                format!("'\n  run {i}: agent exited with code 1\nTraceback…'")
            }
        } else {
            "NULL".into()
        };
        sql.push_str(&format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('t1','{}',{},'{}',NULL,{error});",
            iso_ago(30 + i * 60),
            1000.5 + ((i * 37) % 11) as f64 * 250.25,
            if failed { "error" } else { "success" },
        ));
    }
    // t2: every 8 h for 10 days, 30 min off; an integer duration too.
    for i in 0..30i64 {
        sql.push_str(&format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('t2','{}',{},'success','done',NULL);",
            iso_ago(30 + i * 480),
            if i == 0 {
                "5000".into()
            } else {
                format!("{}.75", 3000 + i * 10)
            },
        ));
    }
    let mut c = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    c.batch_execute(&sql).unwrap();
}

/// The world in a temp folder; None (said loudly, a failure with `CI=true`)
/// without the sqlite3 CLI, the tests' ground truth.
fn world_in_temp() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    if !sqlite3_present() {
        missing_part("the sqlite3 CLI");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    world(&db);
    Some((dir, db))
}

fn config(db: &Path) -> String {
    format!(
        "[pynchy]\nroot = \"nowhere\"\ndatabase = \"{}\"\n\
         [sections.service]\ninterval = \"1h\"\n\
         [sections.tasks]\ninterval = \"200ms\"\n",
        db.display()
    )
}

fn page(addr: std::net::SocketAddr, id: &str) -> Value {
    wait_for(Duration::from_secs(10), "the task's page", || {
        let r = get(addr, &format!("/status/tasks/{id}"));
        (r.status == 200).then(|| r.json())
    })
}

/// What sqlite3 says of a task's window: runs, successes, failures.
fn window(db: &Path, id: &str, modifier: &str) -> (u64, u64, u64) {
    let out = sqlite3_read(
        db,
        &format!(
            "SELECT COUNT(*), IFNULL(SUM(status = 'success'), 0), IFNULL(SUM(status = 'error'), 0) \
             FROM task_run_logs WHERE task_id = '{id}' \
             AND run_at >= strftime('%Y-%m-%dT%H:%M:%f', 'now', '{modifier}')"
        ),
    );
    let f: Vec<u64> = out.split('|').map(|x| x.parse().unwrap()).collect();
    (f[0], f[1], f[2])
}

fn check_page(db: &Path, p: &Value, id: &str) {
    // The last 20 runs, newest first, as sqlite3 lists them.
    let truth = sqlite3_read(
        db,
        &format!(
            "SELECT run_at, CAST(duration_ms AS REAL), status, \
             IFNULL(substr(ltrim(error, char(10) || ' '), 1, \
               min(200, instr(ltrim(error, char(10) || ' ') || char(10), char(10)) - 1)), 'null') \
             FROM task_run_logs WHERE task_id = '{id}' ORDER BY run_at DESC LIMIT 20"
        ),
    );
    let runs = p["runs"].as_array().unwrap();
    assert_eq!(runs.len(), truth.lines().count(), "{id}");
    for (r, line) in runs.iter().zip(truth.lines()) {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(r["run_at"], json!(f[0]));
        assert_eq!(
            r["duration_ms"].as_f64().unwrap(),
            f[1].parse::<f64>().unwrap()
        );
        assert_eq!(r["status"], json!(f[2]));
        let error = r["error"].as_str().unwrap_or("null");
        assert_eq!(error, f[3], "{id} {}", f[0]);
        assert!(error.chars().count() <= 200);
    }
    for (key, modifier) in [("last_24h", "-1 day"), ("last_7d", "-7 days")] {
        let (runs, ok, failed) = window(db, id, modifier);
        let w = &p["stats"][key];
        assert_eq!(
            (
                w["runs"].as_u64(),
                w["successes"].as_u64(),
                w["failures"].as_u64()
            ),
            (Some(runs), Some(ok), Some(failed)),
            "{id} {key}"
        );
        let rate = w["success_rate"].as_f64().unwrap();
        assert!((rate - ok as f64 / runs as f64).abs() < 1e-9, "{id} {key}");
    }
    let week = format!(
        "FROM task_run_logs WHERE task_id = '{id}' \
         AND run_at >= strftime('%Y-%m-%dT%H:%M:%f', 'now', '-7 days')"
    );
    let p50 = sqlite3_read(
        db,
        &format!(
            "SELECT CAST(duration_ms AS REAL) {week} ORDER BY duration_ms \
             LIMIT 1 OFFSET (SELECT (COUNT(*) + 1) / 2 - 1 {week})"
        ),
    );
    let max = sqlite3_read(db, &format!("SELECT CAST(MAX(duration_ms) AS REAL) {week}"));
    assert_eq!(
        p["stats"]["duration_ms_p50"].as_f64(),
        Some(p50.parse().unwrap())
    );
    assert_eq!(
        p["stats"]["duration_ms_max"].as_f64(),
        Some(max.parse().unwrap())
    );
    // The task as in /status.
    assert_eq!(p["task"]["id"], json!(id));
}

#[test]
fn task_pages_and_group_activity_match_sqlite3_and_follow_new_runs() {
    let Some((dir, db)) = world_in_temp() else {
        return;
    };
    let run = start_in(dir.path(), &config(&db), vec![]);
    ready(run.addr);

    for id in ["t1", "t2"] {
        check_page(&db, &page(run.addr, id), id);
    }
    let t3 = page(run.addr, "t3");
    assert_eq!(t3["runs"], json!([]));
    assert_eq!(t3["stats"]["last_7d"]["runs"], json!(0));
    assert_eq!(t3["stats"]["last_7d"]["success_rate"], Value::Null);
    assert_eq!(t3["stats"]["duration_ms_p50"], Value::Null);

    let r = get(run.addr, "/status/tasks/no-such-task");
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"error": "unknown task"}));
    assert_eq!(get(run.addr, "/status/repos/anything").status, 404);

    // The entries of /status: the newest status, failures in 24 h, streak.
    let doc = get_json(run.addr, "/status");
    let t1 = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "t1")
        .unwrap()
        .clone();
    let newest = sqlite3_read(
        &db,
        "SELECT status FROM task_run_logs WHERE task_id = 't1' ORDER BY run_at DESC LIMIT 1",
    );
    assert_eq!(t1["last_run_status"], json!(newest));
    assert_eq!(t1["failures_24h"], json!(window(&db, "t1", "-1 day").2));
    assert_eq!(t1["consecutive_failures"], json!(3));
    assert!(
        has_reason(&doc, "task t1: its last 3 runs failed"),
        "{}",
        doc["reasons"]
    );

    // Per-group activity: pushed groups and registered ones the push omits.
    push(
        run.addr,
        "queue",
        json!({"active_containers": 1, "max_concurrent": 4, "groups_waiting": 0,
               "per_group": {"a": {"active": true, "is_task": true, "pending_messages": false, "pending_tasks": 0},
                             "gone": {"active": false, "is_task": false, "pending_messages": false, "pending_tasks": 0}}}),
    );
    let q = get_json(run.addr, "/status/queue")["queue"].clone();
    // pynchy's own query (install notes, section 5).
    let last_in = sqlite3_read(
        &db,
        "SELECT g.folder, IFNULL(MAX(m.timestamp), 'null') FROM registered_groups g \
         LEFT JOIN messages m ON m.chat_jid = g.jid AND m.is_from_me = 0 GROUP BY g.jid ORDER BY g.folder",
    );
    let last_run = sqlite3_read(
        &db,
        "SELECT g.folder, IFNULL(MAX(l.run_at), 'null') FROM registered_groups g \
         LEFT JOIN scheduled_tasks t ON t.group_folder = g.folder \
         LEFT JOIN task_run_logs l ON l.task_id = t.id GROUP BY g.folder ORDER BY g.folder",
    );
    for (a, b) in last_in.lines().zip(last_run.lines()) {
        let (folder, msg) = a.split_once('|').unwrap();
        let (_, ran) = b.split_once('|').unwrap();
        let g = &q["per_group"][folder];
        let s = |v: &Value| v.as_str().unwrap_or("null").to_string();
        assert_eq!(
            (s(&g["last_message_at"]), s(&g["last_run_at"])),
            (msg.into(), ran.into()),
            "{folder}"
        );
    }
    assert_eq!(q["per_group"]["a"]["active"], json!(true));
    assert_eq!(q["per_group"]["a"]["idle"], json!(false));
    for idle in ["b", "c"] {
        assert_eq!(q["per_group"][idle]["idle"], json!(true), "{idle}");
        assert_eq!(q["per_group"][idle]["active"], json!(false), "{idle}");
    }
    assert_eq!(q["per_group"]["c"]["last_message_at"], Value::Null);
    // A pushed group the database does not know keeps its pushed state.
    assert_eq!(q["per_group"]["gone"]["last_message_at"], Value::Null);
    assert!(q["per_group"].get("x").is_none());

    // New runs, written as pynchy writes them: the page and the reason follow.
    write(
        &db,
        &format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('t1','{}',1234.5,'success','fine',NULL);",
            iso_ago(0)
        ),
    );
    let p = wait_for(Duration::from_secs(10), "the new run", || {
        let p = page(run.addr, "t1");
        (p["runs"][0]["duration_ms"] == json!(1234.5)).then_some(p)
    });
    check_page(&db, &p, "t1");
    assert_eq!(p["task"]["consecutive_failures"], json!(0));
    wait_for(Duration::from_secs(10), "task_failing clears", || {
        (!has_reason(&get_json(run.addr, "/status"), "task t1:")).then_some(())
    });
    let newest = sqlite3_read(
        &db,
        "SELECT MAX(run_at) FROM task_run_logs WHERE task_id IN ('t1','t3')",
    );
    wait_for(Duration::from_secs(10), "a's last_run_at moves", || {
        let q = get_json(run.addr, "/status/queue")["queue"].clone();
        (q["per_group"]["a"]["last_run_at"] == json!(newest)).then_some(())
    });

    // A paused task's failures are no reason.
    let mut sql = String::new();
    for i in 0..4 {
        sql.push_str(&format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('t3','{}',10,'error',NULL,'boom');",
            iso_ago(10 - i)
        ));
    }
    write(&db, &sql);
    let p = wait_for(Duration::from_secs(10), "t3's runs", || {
        let p = page(run.addr, "t3");
        (p["runs"].as_array().unwrap().len() == 4).then_some(p)
    });
    assert_eq!(p["task"]["consecutive_failures"], json!(4));
    assert!(!has_reason(&get_json(run.addr, "/status"), "task t3"));
}

/// Histories are read whole within a budget (what is left over is read at
/// the next refresh); new runs are added to the tasks already read, whatever
/// the time; the windows slide with the clock without a read.
/// [`Histories::refresh`] on one file, tallies compared every hour.
fn refresh(
    h: &mut pynchy_status::sections::task_history::Histories,
    c: &mut SqliteConnection,
    ids: &[&str],
    now: chrono::DateTime<Utc>,
    deadline: std::time::Instant,
) -> diesel::QueryResult<bool> {
    h.refresh(c, None, ids, now, deadline, Duration::from_secs(3600))
}

#[test]
fn histories_read_within_their_budget_follow_new_runs_and_slide() {
    use pynchy_status::sections::task_history::Histories;
    use std::time::Instant;
    let Some((_dir, db)) = world_in_temp() else {
        return;
    };
    let mut c = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    let ids = ["t1", "t2", "t3"];
    let runs = |h: &Histories, id: &str| h.get(id).map(|h| h.runs.len());
    let truth = |id: &str| -> usize {
        let n: usize = sqlite3_read(
            &db,
            &format!("SELECT COUNT(*) FROM task_run_logs WHERE task_id = '{id}'"),
        )
        .parse()
        .unwrap();
        n.min(20)
    };
    let later = || Instant::now() + Duration::from_secs(60);

    let mut h = Histories::default();
    // Past the deadline already: nothing read, and it says so.
    assert!(!refresh(&mut h, &mut c, &ids, Utc::now(), Instant::now()).unwrap());
    assert_eq!(runs(&h, "t1"), None);
    assert!(refresh(&mut h, &mut c, &ids, Utc::now(), later()).unwrap());
    for id in ids {
        assert_eq!(runs(&h, id), Some(truth(id)), "{id}");
    }

    // New runs reach the tasks read, even without time for whole reads.
    write(
        &db,
        &format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('t3','{}',7.5,'success',NULL,NULL), ('t1','{}',8.5,'error',NULL,'late');",
            iso_ago(0),
            iso_ago(0)
        ),
    );
    assert!(refresh(&mut h, &mut c, &ids, Utc::now(), Instant::now()).unwrap());
    assert_eq!(runs(&h, "t3"), Some(truth("t3")));
    assert_eq!(h.get("t3").unwrap().runs[0].duration_ms, Some(7.5));
    let t1 = h.get("t1").unwrap();
    assert_eq!(
        (t1.runs.len(), t1.runs[0].error.as_deref()),
        (20, Some("late"))
    );
    assert_eq!(t1.stats.last_24h.runs, window(&db, "t1", "-1 day").0);
    // Read twice, counted once.
    assert!(refresh(&mut h, &mut c, &ids, Utc::now(), later()).unwrap());
    assert_eq!(
        h.get("t1").unwrap().stats.last_7d.runs,
        window(&db, "t1", "-7 days").0
    );

    // Two days on, without a read: the windows slid, as sqlite3 counts them
    // from a clock two days ahead.
    let ahead = Utc::now() + chrono::Duration::days(2);
    h.settle(ahead);
    for id in ["t1", "t2"] {
        let s = &h.get(id).unwrap().stats;
        for (w, modifier) in [(&s.last_24h, "+1 day"), (&s.last_7d, "-5 days")] {
            let (runs, ok, failed) = window(&db, id, modifier);
            assert_eq!(
                (w.runs, w.successes, w.failures),
                (runs, ok, failed),
                "{id} {modifier}"
            );
        }
    }

    // Two runs finishing at the same moment: the later row first, as
    // sqlite3 orders them.
    let same = iso_ago(0);
    write(
        &db,
        &format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('t2','{same}',1,'success',NULL,NULL), ('t2','{same}',2,'error',NULL,'tie');"
        ),
    );
    assert!(refresh(&mut h, &mut c, &ids, Utc::now(), Instant::now()).unwrap());
    let order = sqlite3_read(
        &db,
        "SELECT status FROM task_run_logs WHERE task_id = 't2' ORDER BY run_at DESC, id DESC LIMIT 2",
    );
    let shown: Vec<&str> = h.get("t2").unwrap().runs[..2]
        .iter()
        .map(|r| r.status.as_deref().unwrap())
        .collect();
    assert_eq!(shown.join("\n"), order);

    // Deleting the task with the newest runs (t2 now; pynchy deletes its
    // rows with it) lowers MAX(id) but not the ids given: the others are
    // kept, with no time for whole reads.
    let newest = sqlite3_read(
        &db,
        "SELECT task_id FROM task_run_logs ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(newest, "t2");
    write(
        &db,
        "DELETE FROM task_run_logs WHERE task_id = 't3'; DELETE FROM scheduled_tasks WHERE id = 't3';",
    );
    assert!(refresh(&mut h, &mut c, &["t1", "t2"], Utc::now(), Instant::now()).unwrap());
    assert!(h.get("t3").is_none());
    write(
        &db,
        "DELETE FROM task_run_logs WHERE task_id = 't2'; DELETE FROM scheduled_tasks WHERE id = 't2';",
    );
    assert!(refresh(&mut h, &mut c, &["t1"], Utc::now(), Instant::now()).unwrap());
    assert_eq!(runs(&h, "t1"), Some(20));
    assert!(h.get("t2").is_none());
}

/// What sqlite3 says of a task's last runs: how many are listed (at most 20)
/// and how many of them failed.
fn recent_truth(db: &Path, id: &str) -> (usize, usize) {
    let out = sqlite3_read(
        db,
        &format!(
            "SELECT COUNT(*), IFNULL(SUM(status = 'error'), 0) FROM (SELECT status \
             FROM task_run_logs WHERE task_id = '{id}' ORDER BY run_at DESC, id DESC LIMIT 20)"
        ),
    );
    let f: Vec<usize> = out.split('|').map(|x| x.parse().unwrap()).collect();
    (f[0], f[1])
}

fn recent_held(h: &pynchy_status::sections::task_history::Histories, id: &str) -> (usize, usize) {
    let runs = &h.get(id).unwrap().runs;
    let failed = runs.iter().filter(|r| r.status.as_deref() == Some("error"));
    (runs.len(), failed.count())
}

#[test]
fn histories_follow_deleted_rows_a_replaced_file_and_a_long_catch_up() {
    use pynchy_status::sections::task_history::Histories;
    use std::time::Instant;
    let Some((dir, db)) = world_in_temp() else {
        return;
    };
    let mut c = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    let ids = ["t1", "t2", "t3"];
    let later = || Instant::now() + Duration::from_secs(60);
    let mut h = Histories::default();
    let file = Some((1, 1));
    let verify = Duration::from_secs(3600);
    assert!(h
        .refresh(&mut c, file, &ids, Utc::now(), later(), verify)
        .unwrap());
    assert_eq!(recent_held(&h, "t1"), recent_truth(&db, "t1"));

    // (a) t1's newest runs deleted by hand (its three failures among them):
    // kept until the tallies are compared, then as sqlite3 says.
    write(
        &db,
        "DELETE FROM task_run_logs WHERE id IN \
         (SELECT id FROM task_run_logs WHERE task_id = 't1' ORDER BY run_at DESC LIMIT 5)",
    );
    let truth = recent_truth(&db, "t1");
    assert_ne!(recent_held(&h, "t1"), truth);
    assert!(h
        .refresh(&mut c, file, &ids, Utc::now(), later(), Duration::ZERO)
        .unwrap());
    assert_eq!(recent_held(&h, "t1"), truth);
    assert_eq!(
        h.get("t1").unwrap().stats.last_24h.failures,
        window(&db, "t1", "-1 day").2
    );

    // (c) an error opening with 1,500 blank lines shows its first line.
    write(
        &db,
        &format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('t3','{}',1,'error',NULL,'{}  boom: the agent died\nmore');",
            iso_ago(0),
            "\n".repeat(1500)
        ),
    );
    assert!(h
        .refresh(&mut c, file, &ids, Utc::now(), later(), verify)
        .unwrap());
    assert_eq!(
        h.get("t3").unwrap().runs[0].error.as_deref(),
        Some("boom: the agent died")
    );

    // (b) the file replaced by another whose AUTOINCREMENT mark is higher but
    // whose rows are others: read as that file alone, at once.
    let other = dir.path().join("other.db");
    world(&other);
    write(
        &other,
        "DELETE FROM task_run_logs WHERE task_id = 't1' AND status = 'error'; \
         UPDATE sqlite_sequence SET seq = seq + 1000 WHERE name = 'task_run_logs';",
    );
    drop(c);
    std::fs::rename(&other, &db).unwrap();
    let mut c = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    assert!(h
        .refresh(&mut c, Some((1, 2)), &ids, Utc::now(), later(), verify)
        .unwrap());
    for id in ids {
        assert_eq!(recent_held(&h, id), recent_truth(&db, id), "{id}");
    }
    assert_eq!(recent_held(&h, "t1").1, 0);

    // A catch-up of 300,000 new rows stops at its deadline, says so, and
    // goes on at the next refresh; every row counted once.
    write(
        &db,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) \
             INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             SELECT 't2', '{}', i, CASE WHEN i % 3 = 0 THEN 'error' ELSE 'success' END, NULL, NULL FROM n;",
            iso_ago(1)
        ),
    );
    let done = h
        .refresh(
            &mut c,
            Some((1, 2)),
            &ids,
            Utc::now(),
            Instant::now(),
            verify,
        )
        .unwrap();
    assert!(!done, "300 batches within a deadline already past");
    let mut rounds = 1;
    while !h
        .refresh(
            &mut c,
            Some((1, 2)),
            &ids,
            Utc::now(),
            Instant::now() + Duration::from_millis(50),
            verify,
        )
        .unwrap()
    {
        rounds += 1;
        assert!(rounds < 10_000, "the catch-up makes no progress");
    }
    assert!(rounds > 1, "{rounds}");
    let s = &h.get("t2").unwrap().stats;
    let (runs, ok, failed) = window(&db, "t2", "-1 day");
    assert_eq!(
        (s.last_24h.runs, s.last_24h.successes, s.last_24h.failures),
        (runs, ok, failed)
    );
}

#[test]
fn a_reload_on_the_same_database_keeps_the_histories() {
    let Some((dir, db)) = world_in_temp() else {
        return;
    };
    let cfg = |interval: &str| {
        format!(
            "[pynchy]\nroot = \"nowhere\"\ndatabase = \"{}\"\n[gateway]\nmode = \"none\"\n\
             [sections.service]\ninterval = \"1h\"\n\
             [sections.tasks]\ninterval = \"{interval}\"\nverify_interval = \"1h\"\n",
            db.display()
        )
    };
    let (mut child, addr) = spawn_serve(dir.path(), &cfg("200ms"), &[]);
    let held = |addr| page(addr, "t1")["runs"].as_array().map_or(0, Vec::len);
    wait_for(Duration::from_secs(20), "t1's history", || {
        (held(addr) == 20).then_some(())
    });
    // Rows deleted by hand (pynchy never does): a reread would show sqlite3's
    // 15 at once; kept histories show them until their tallies are compared
    // (verify_interval, an hour here).
    write(
        &db,
        "DELETE FROM task_run_logs WHERE id IN \
         (SELECT id FROM task_run_logs WHERE task_id = 't1' ORDER BY run_at DESC LIMIT 15)",
    );
    assert_eq!(recent_truth(&db, "t1").0, 15);
    // The reload is seen by the tasks' new interval.
    let c = dir.path().join("c.toml");
    let text = std::fs::read_to_string(&c)
        .unwrap()
        .replace("200ms", "300ms");
    std::fs::write(&c, text).unwrap();
    signal(child.id(), "-HUP");
    wait_for(Duration::from_secs(20), "the reload", || {
        let d = get_json(addr, "/status");
        (d["meta"]["tasks"]["interval_seconds"] == json!(0.3)).then_some(())
    });
    // A collection after the reload has run (a new run of t2 is shown).
    write(
        &db,
        &format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('t2','{}',1,'error',NULL,'after the reload');",
            iso_ago(0)
        ),
    );
    wait_for(Duration::from_secs(20), "t2's new run", || {
        (page(addr, "t2")["runs"][0]["error"] == json!("after the reload")).then_some(())
    });
    assert_eq!(held(addr), 20, "t1's histories were read again");
    signal(child.id(), "-TERM");
    child.wait_within(Duration::from_secs(5));
}

#[test]
fn task_ids_with_slashes_and_percents_have_their_pages() {
    let Some((dir, db)) = world_in_temp() else {
        return;
    };
    let id = "nightly/report 100%+";
    write(
        &db,
        &format!(
            "INSERT INTO scheduled_tasks VALUES ('{id}','a','slack:A','p','interval','3600000',\
             NULL,NULL,NULL,'active','{}','isolated',NULL);
             INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('{id}','{}',5,'success',NULL,NULL);",
            iso_ago(60),
            iso_ago(1)
        ),
    );
    let run = start_in(dir.path(), &config(&db), vec![]);
    ready(run.addr);
    // As a browser's encodeURIComponent sends it, and with `/` left as is.
    for path in ["nightly%2Freport%20100%25%2B", "nightly/report%20100%25%2B"] {
        let p = page(run.addr, path);
        assert_eq!(p["task"]["id"], json!(id), "{path}");
        assert_eq!(p["runs"].as_array().map(Vec::len), Some(1), "{path}");
    }
}
