//! messages, tasks, host_jobs and groups against real SQLite files with pynchy's
//! schema; expected values come from the `sqlite3` CLI running the same queries.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::*;
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use serde_json::{json, Value};

fn create(path: &Path, extra_sql: &str) {
    let mut c = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    c.batch_execute(pynchy_status::demo::SCHEMA).unwrap();
    c.batch_execute(extra_sql).unwrap();
}

fn ago(minutes: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn config(db: &Path, extra: &str) -> String {
    format!(
        "[pynchy]\nroot = \"nowhere\"\ndatabase = \"{}\"\ntimezone = \"Europe/Berlin\"\n[sections.service]\ninterval = \"1h\"\n{extra}",
        db.display()
    )
}

fn fast() -> &'static str {
    "[sections.messages]\ninterval = \"100ms\"\ntimeout = \"1s\"\n\
     [sections.tasks]\ninterval = \"100ms\"\ntimeout = \"1s\"\n\
     [sections.host_jobs]\ninterval = \"100ms\"\ntimeout = \"1s\"\n\
     [sections.groups]\ninterval = \"100ms\"\ntimeout = \"1s\"\n"
}

fn section(addr: std::net::SocketAddr, name: &str) -> Value {
    wait_for(Duration::from_secs(10), name, || {
        let d = get_json(addr, &format!("/status/{name}"));
        let m = &d["meta"][name];
        (m["collected_at"].is_string() || m["error"].is_string()).then_some(d)
    })
}

fn sample(path: &Path) {
    let mut sql = String::new();
    for i in 0..57 {
        sql.push_str(&format!(
            "INSERT INTO messages VALUES ('m{i}','c{}','u','U','hi','{}',{},'user',NULL);",
            i % 3,
            ago(600 - i),
            i32::from(i % 5 == 0)
        ));
    }
    for i in 1..=9 {
        sql.push_str(&format!(
            "INSERT INTO outbound_ledger (chat_jid, content, timestamp, source) VALUES ('c','r','{}','agent');
             INSERT INTO outbound_deliveries VALUES ({i},'whatsapp',{},NULL);
             INSERT INTO outbound_deliveries VALUES ({i},'slack',{},NULL);",
            ago(300 - i),
            if i % 4 == 0 { "NULL".into() } else { format!("'{}'", ago(1)) },
            if i == 9 { "NULL".into() } else { format!("'{}'", ago(1)) },
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO registered_groups VALUES ('a','A','a','@a','{t}',NULL,NULL,1),('b','B','b','@b','{t}',NULL,NULL,0),('c','C','c','@c','{t}',NULL,NULL,0);
         INSERT INTO sessions VALUES ('a','s1');
         INSERT INTO scheduled_tasks VALUES
           ('t1-late','a','a','p','interval','600000','{late}','{older}','ok','active','{t}','isolated',NULL),
           ('t2-fine','a','a','p','interval','600000','{soon}','{recent}','ok','active','{t}','isolated',NULL),
           ('t3-paused','b','b','p','interval','600000','{late}','{older}',NULL,'paused','{t}','isolated',NULL),
           ('t4-badcron','b','b','p','cron','0 9 * *','{soon}',NULL,NULL,'active','{t}','isolated',NULL),
           ('t5-missed','c','c','p','cron','*/10 * * * *','{soon}','{older}','ok','active','{t}','isolated',NULL),
           ('t6-done','c','c','p','once','','{late}','{older}',replace(hex(zeroblob(1000000)), '00', 'ok'),'completed','{t}','isolated',NULL);
         INSERT INTO host_jobs VALUES
           ('j1','backup','b','cron','*/10 * * * *','{soon}','{recent}','active','{t}','admin',NULL,600,1),
           ('j2','prune','p','interval','60000','{late}','{older}','active','{t}','admin',NULL,600,0),
           ('j3','late-job','l','interval','60000','{late}','{older}','active','{t}','admin',NULL,600,1),
           ('j4','bad-interval','x','interval','soon','{soon}',NULL,'active','{t}','admin',NULL,600,1);",
        t = ago(60 * 24 * 30),
        late = ago(30),
        older = ago(90),
        recent = ago(1),
        soon = (Utc::now() + chrono::Duration::minutes(9)).to_rfc3339_opts(SecondsFormat::Secs, false),
    ));
    create(path, &sql);
}

#[test]
fn sections_match_sqlite3() {
    if !sqlite3_present() {
        return missing_part("the sqlite3 CLI");
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    sample(&db);
    let run = start_in(dir.path(), &config(&db, ""), vec![]);
    // Nothing listens on pynchy's port here: say pynchy is up (a push), or
    // nothing is overdue (nothing runs while pynchy is down), and judge the
    // rows again with it.
    healthy_service(run.addr);
    for name in ["tasks", "host_jobs"] {
        let r = request(run.addr, "POST", &format!("/refresh/{name}"), &[], b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    let m = section(run.addr, "messages")["messages"].clone();
    let truth = sqlite3_read(&db, pynchy_status::sections::messages::QUERY);
    let f: Vec<&str> = truth.split('|').collect();
    assert_eq!(m["total_inbound"], json!(f[0].parse::<i64>().unwrap()));
    assert_eq!(m["total_outbound"], json!(f[1].parse::<i64>().unwrap()));
    assert_eq!(m["last_received_at"], json!(f[2]));
    assert_eq!(m["last_sent_at"], json!(f[3]));
    assert_eq!(m["pending_deliveries"], json!(f[4].parse::<i64>().unwrap()));
    assert_eq!(m["total_inbound"], json!(45));
    assert_eq!(m["pending_deliveries"], json!(3));

    let g = section(run.addr, "groups")["groups"].clone();
    assert_eq!(
        g["total"].to_string(),
        sqlite3_read(&db, "SELECT COUNT(*) FROM registered_groups")
    );
    assert_eq!(
        g["active_sessions"].to_string(),
        sqlite3_read(
            &db,
            "SELECT COUNT(*) FROM sessions s JOIN registered_groups g \
             ON g.folder = s.group_folder WHERE s.session_id <> ''"
        )
    );

    let tasks = section(run.addr, "tasks")["tasks"].clone();
    let ids: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let truth_ids = sqlite3_read(
        &db,
        "SELECT id FROM scheduled_tasks ORDER BY created_at DESC, id",
    );
    assert_eq!(ids.join("\n"), truth_ids);
    let rows = sqlite3_read(
        &db,
        "SELECT id, group_folder, schedule_type, schedule_value, status, IFNULL(next_run,'null'), IFNULL(last_run,'null'), IFNULL(substr(last_result, 1, 1000),'null'), IFNULL(length(last_result) > 1000, 0) FROM scheduled_tasks ORDER BY created_at DESC, id",
    );
    for (t, row) in tasks.as_array().unwrap().iter().zip(rows.lines()) {
        let f: Vec<&str> = row.split('|').collect();
        let s = |v: &Value| v.as_str().map(str::to_string).unwrap_or("null".into());
        assert_eq!(
            [
                s(&t["id"]),
                s(&t["group"]),
                s(&t["schedule_type"]),
                s(&t["schedule_value"]),
                s(&t["status"]),
                s(&t["next_run"]),
                s(&t["last_run"]),
                s(&t["last_result"]),
                if t["last_result_cut"].as_bool().unwrap() {
                    "1"
                } else {
                    "0"
                }
                .to_string()
            ],
            [f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]].map(str::to_string)
        );
    }
    // A 2 MB agent output is served cut, and says so.
    let t6 = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "t6-done")
        .unwrap();
    assert_eq!(t6["last_result_cut"], json!(true));
    assert_eq!(t6["last_result"].as_str().map(str::len), Some(1000));
    assert!(get(run.addr, "/status").body.len() < 200_000);
    let by_id = |id: &str| {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_id("t1-late")["overdue"],
        json!(true),
        "next_run 30 min ago"
    );
    assert_eq!(by_id("t2-fine")["overdue"], json!(false));
    assert_eq!(
        by_id("t3-paused")["overdue"],
        json!(false),
        "paused is never overdue"
    );
    assert_eq!(
        by_id("t5-missed")["overdue"],
        json!(false),
        "next_run in the future: pynchy will run it then, whatever last_run says"
    );
    assert_eq!(by_id("t6-done")["overdue"], json!(false));
    assert!(by_id("t4-badcron")["schedule_error"]
        .as_str()
        .unwrap()
        .contains("5 to 7 fields"));
    assert_eq!(by_id("t2-fine")["schedule_error"], Value::Null);

    let jobs = section(run.addr, "host_jobs")["host_jobs"].clone();
    let names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.join("\n"),
        sqlite3_read(
            &db,
            "SELECT name FROM host_jobs ORDER BY created_at DESC, name"
        )
    );
    let enabled = sqlite3_read(
        &db,
        "SELECT enabled FROM host_jobs ORDER BY created_at DESC, name",
    );
    for (j, e) in jobs.as_array().unwrap().iter().zip(enabled.lines()) {
        assert_eq!(j["enabled"], json!(e == "1"));
    }
    let by_name = |n: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("prune")["enabled"], json!(false));
    assert_eq!(
        by_name("prune")["overdue"],
        json!(false),
        "disabled is never overdue"
    );
    assert_eq!(by_name("late-job")["overdue"], json!(true));
    assert_eq!(by_name("backup")["overdue"], json!(false));
    assert!(by_name("bad-interval")["schedule_error"]
        .as_str()
        .unwrap()
        .contains("milliseconds"));
}

#[test]
fn empty_tables_give_zeros_and_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    create(&db, "");
    let run = start_in(dir.path(), &config(&db, ""), vec![]);
    let mut m = section(run.addr, "messages")["messages"].clone();
    let hourly = m.as_object_mut().unwrap().remove("hourly").unwrap();
    assert_eq!(hourly["inbound"], json!(vec![0; 24]));
    assert_eq!(hourly["outbound"], json!(vec![0; 24]));
    assert_eq!(
        m,
        json!({"total_inbound": 0, "total_outbound": 0, "last_received_at": null, "last_sent_at": null, "pending_deliveries": 0})
    );
    assert_eq!(section(run.addr, "tasks")["tasks"], json!([]));
    assert_eq!(section(run.addr, "host_jobs")["host_jobs"], json!([]));
    assert_eq!(
        section(run.addr, "groups")["groups"],
        json!({"total": 0, "active_sessions": 0})
    );
}

#[test]
fn missing_file_is_an_error_and_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("messages.db");
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let run = start_in(dir.path(), &config(&db, ""), vec![]);
    for name in ["messages", "tasks", "host_jobs", "groups"] {
        let d = section(run.addr, name);
        let e = d["meta"][name]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(e.contains("does not exist"), "{name}: {e}");
        assert_eq!(d[name], Value::Null);
    }
    drop(run);
    assert!(!db.exists(), "no database file appeared");
    assert_eq!(
        std::fs::read_dir(dir.path().join("data")).unwrap().count(),
        0
    );
}

#[test]
fn missing_table_and_column_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    // An older pynchy: no host_jobs table, a scheduled_tasks without last_result.
    let schema = pynchy_status::demo::SCHEMA
        .replace("    last_result TEXT,\n", "")
        .replace("CREATE TABLE host_jobs", "CREATE TABLE host_jobs_renamed")
        .replace("ON host_jobs(", "ON host_jobs_renamed(");
    let mut c = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    c.batch_execute(&schema).unwrap();
    drop(c);
    let run = start_in(dir.path(), &config(&db, ""), vec![]);
    let e = section(run.addr, "host_jobs")["meta"]["host_jobs"]["error"].clone();
    assert!(
        e.as_str().unwrap().contains("no such table: host_jobs"),
        "{e}"
    );
    let e = section(run.addr, "tasks")["meta"]["tasks"]["error"].clone();
    assert!(
        e.as_str().unwrap().contains("no such column: last_result"),
        "{e}"
    );
    let m = section(run.addr, "messages");
    assert_eq!(m["meta"]["messages"]["error"], Value::Null);
    assert_eq!(m["messages"]["total_inbound"], json!(0));
}

#[test]
fn corrupt_file_is_an_error_then_recovers_when_restored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    sample(&db);
    let good = std::fs::read(&db).unwrap();
    let run = start_in(dir.path(), &config(&db, fast()), vec![]);
    let before = section(run.addr, "messages")["messages"].clone();
    assert_eq!(before["total_inbound"], json!(45));
    // Replace the file with garbage (a new inode, as a restore would).
    let tmp = dir.path().join("garbage");
    std::fs::write(&tmp, vec![0x5au8; 8192]).unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    let doc = wait_for(Duration::from_secs(5), "an error", || {
        let d = get_json(run.addr, "/status/messages");
        d["meta"]["messages"]["error"].is_string().then_some(d)
    });
    let e = doc["meta"]["messages"]["error"].as_str().unwrap();
    assert!(e.contains("not a database"), "{e}");
    assert_eq!(doc["messages"], before, "last good body kept");
    // Restore it: the next interval recovers.
    std::fs::write(&tmp, &good).unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    wait_for(Duration::from_secs(5), "recovery", || {
        let d = get_json(run.addr, "/status/messages");
        d["meta"]["messages"]["error"].is_null().then_some(())
    });
}

#[test]
fn exclusive_lock_fails_the_cycle_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    sample(&db);
    let run = start_in(dir.path(), &config(&db, fast()), vec![]);
    section(run.addr, "messages");
    let mut writer = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    writer
        .batch_execute("BEGIN EXCLUSIVE; INSERT INTO sessions VALUES ('b','s2');")
        .unwrap();
    // Whichever section reads while the lock is held fails its cycle (with
    // events, only those whose data changed read at all).
    let e = wait_for(Duration::from_secs(5), "locked", || {
        let d = get_json(run.addr, "/status");
        ["groups", "messages", "tasks", "host_jobs"]
            .iter()
            .find_map(|s| d["meta"][s]["error"].as_str().map(str::to_string))
    });
    assert!(e.contains("locked"), "{e}");
    writer.batch_execute("COMMIT;").unwrap();
    // pynchy's count: sessions of registered groups with a session id.
    let truth = sqlite3_or(
        &db,
        "SELECT COUNT(*) FROM sessions s JOIN registered_groups g \
         ON g.folder = s.group_folder WHERE s.session_id <> ''",
        "2",
    );
    let g = wait_for(Duration::from_secs(5), "recovery", || {
        let d = get_json(run.addr, "/status/groups");
        let n = d["groups"]["active_sessions"].to_string();
        (d["meta"]["groups"]["error"].is_null() && n == truth).then_some(d)
    });
    assert_eq!(g["groups"]["active_sessions"].to_string(), truth);
}

fn sqlite3_or(db: &Path, sql: &str, fallback: &str) -> String {
    if sqlite3_present() {
        sqlite3_read(db, sql)
    } else {
        fallback.to_string()
    }
}

fn checksum(paths: &[PathBuf]) -> Vec<u64> {
    paths
        .iter()
        .map(|p| xxhash_rust::xxh3::xxh3_64(&std::fs::read(p).unwrap_or_default()))
        .collect()
}

/// The sections that read the database.
const DB_SECTIONS: [&str; 4] = ["messages", "tasks", "host_jobs", "groups"];

fn never_writes(wal: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    sample(&db);
    if wal {
        let mut c = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
        c.batch_execute("PRAGMA journal_mode=WAL; INSERT INTO sessions VALUES ('w','w');")
            .unwrap();
        // Keep the writer open so the WAL stays, as a running pynchy would.
        std::mem::forget(c);
    }
    let files = vec![db.clone()];
    let before = checksum(&files);
    let run = start_in(dir.path(), &config(&db, fast()), vec![]);
    // Twenty reads of each section (about 2 s at 100 ms), then compare.
    let doc = wait_collections(run.addr, &DB_SECTIONS, 20);
    drop(run);
    for name in DB_SECTIONS {
        assert_eq!(doc["meta"][name]["error"], Value::Null, "{name}");
    }
    assert_eq!(
        before,
        checksum(&files),
        "database file unchanged (wal: {wal})"
    );
}

#[test]
fn never_writes_rollback_journal() {
    never_writes(false);
}

#[test]
fn never_writes_wal() {
    never_writes(true);
}

#[test]
fn concurrent_writer_is_never_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    sample(&db);
    let run = start_in(dir.path(), &config(&db, fast()), vec![]);
    section(run.addr, "messages");
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, inserted) = (db.clone(), stop.clone(), inserted.clone());
        std::thread::spawn(move || {
            let mut c = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
            c.batch_execute("PRAGMA busy_timeout = 2000;").unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 5_000 {
                c.batch_execute(&format!(
                    "INSERT INTO messages VALUES ('w{i}','c','u','U','x','{}',0,'user',NULL);",
                    ago(0)
                ))
                .expect("the writer is never refused");
                i += 1;
                inserted.store(i, Ordering::Relaxed);
            }
        })
    };
    // Once the writer is writing, it goes on through twenty reads of messages
    // (about 2 s at 100 ms).
    wait_for(Duration::from_secs(10), "the writer's first row", || {
        // (A writer that failed at once is reported by the join below.)
        (inserted.load(Ordering::Relaxed) > 0 || writer.is_finished()).then_some(())
    });
    wait_collections(run.addr, &["messages"], 20);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer finished without errors");
    let n = inserted.load(Ordering::Relaxed) as i64;
    assert!(n > 10, "the writer made progress: {n}");
    wait_for(Duration::from_secs(5), "the final count", || {
        let d = get_json(run.addr, "/status/messages");
        (d["messages"]["total_inbound"] == json!(45 + n)).then_some(())
    });
}

#[test]
fn inbound_count_follows_appends_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    sample(&db);
    let run = start_in(dir.path(), &config(&db, fast()), vec![]);
    let count = |want: i64| {
        wait_for(
            Duration::from_secs(5),
            &format!("total_inbound {want}"),
            || {
                let d = get_json(run.addr, "/status/messages");
                (d["messages"]["total_inbound"] == json!(want)).then_some(())
            },
        )
    };
    count(45);
    let mut w = SqliteConnection::establish(&db.to_string_lossy()).unwrap();
    w.batch_execute(&format!(
        "INSERT INTO messages VALUES ('n1','c','u','U','x','{t}',0,'user',NULL), ('n2','c','u','U','x','{t}',1,'user',NULL);",
        t = ago(0)
    ))
    .unwrap();
    count(46);
    // Old inbound rows deleted (a cleared chat): the kept tally must notice.
    w.batch_execute("DELETE FROM messages WHERE id IN ('m1','m2','m3');")
        .unwrap();
    count(43);
    if sqlite3_present() {
        assert_eq!(
            sqlite3_read(&db, "SELECT COUNT(*) FROM messages WHERE is_from_me = 0"),
            "43"
        );
    }
}
