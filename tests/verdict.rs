//! The rollup's verdict end to end: the real server on the demo world (or a
//! real Docker daemon), pushes over HTTP, and the reasons and status that
//! `/status` and `/health` serve. Every rule's firing and quiet case, one by
//! one, is the table test in tests/rules.rs.

mod common;

use common::*;
use serde_json::json;

#[test]
fn degraded_rules_give_reasons_and_200() {
    let (dir, cfg) = demo_world("[rollup]\npending_deliveries_max = 1\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    healthy_service(run.addr);
    push(
        run.addr,
        "channels",
        json!({"whatsapp": {"connected": true}, "slack": {"connected": false}}),
    );
    push(
        run.addr,
        "queue",
        json!({"active_containers": 4, "max_concurrent": 4, "groups_waiting": 2, "per_group": {}}),
    );
    let doc = get_json(run.addr, "/status");
    assert_eq!(doc["status"], "degraded", "{:#?}", reasons(&doc));
    for needle in [
        "channels: channel slack disconnected",
        "repos: worktree merge-bot of me/pynchy in conflict",
        "tasks: task task-overdue-sync overdue",
        "tasks: task task-typo: invalid cron expression",
        "messages: 2 pending deliveries (more than 1)",
        "queue: queue at max_concurrent (4) with 2 groups waiting",
    ] {
        assert!(
            has_reason(&doc, needle),
            "{needle} not in {:#?}",
            reasons(&doc)
        );
    }
    assert!(
        !has_reason(&doc, "host job"),
        "the overdue host job is disabled: {:#?}",
        reasons(&doc)
    );
    let h = get(run.addr, "/health");
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "degraded");
}

#[test]
fn dead_litellm_container_is_down() {
    let Some(host) = test_docker() else {
        return;
    };
    // Removed when the test ends, however it ends.
    let mut containers = Containers::new(&host);
    let name = format!("pst-rollup-{}", std::process::id());
    containers.names.push(name.clone());
    assert!(
        docker(
            &host,
            &[
                "run",
                "--network",
                "none",
                "--name",
                &name,
                TEST_IMAGE,
                "true"
            ]
        )
        .is_some(),
        "docker run {name}"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[pynchy]\nroot = \".\"\n[gateway]\nmode = \"litellm\"\nurl = \"http://127.0.0.1:9\"\ndocker_host = \"{host}\"\n\
         litellm_container = \"{name}\"\npostgres_container = \"{name}\"\n"
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let doc = get_json(run.addr, "/status");
    drop(containers);
    assert_eq!(doc["gateway"]["litellm_container"], "exited");
    assert!(
        has_reason(&doc, "gateway: LiteLLM container is exited"),
        "{:#?}",
        reasons(&doc)
    );
    assert_eq!(doc["status"], "down");
    assert_eq!(get(run.addr, "/health").status, 503);
}

#[test]
fn an_older_schema_is_degraded_not_down() {
    let (dir, cfg) = demo_world("[rollup.severity]\nservice_down = \"ignore\"\n");
    // An older pynchy: no host_jobs table.
    let db = dir.path().join("pynchy/data/messages.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("DROP TABLE host_jobs;")
        .output();
    if out.is_err() {
        return missing_part("the sqlite3 CLI");
    }
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let doc = get_json(run.addr, "/status");
    let r = doc["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["section"] == "host_jobs")
        .cloned()
        .unwrap_or_default();
    assert!(
        r["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no such table: host_jobs"),
        "{r}"
    );
    assert_eq!(r["level"], "degraded");
    assert!(
        !has_reason(&doc, "database cannot be read"),
        "{:#?}",
        reasons(&doc)
    );
    assert_eq!(get(run.addr, "/health").status, 200);
}
