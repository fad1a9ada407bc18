//! The published contract: `GET /status/schema` serves the schema generated
//! from the typed bodies, `schema/status.schema.json` holds the same (bless
//! with UPDATE_GOLDEN=1), and an independent validator (the `jsonschema`
//! crate) accepts the demo's `/status` and every `/status/{section}` — with
//! every body present, and again with the pushed ones still null.

mod common;

use common::*;
use serde_json::{json, Value};

fn validate(schema: &Value, doc: &Value, what: &str) {
    let validator = jsonschema::draft202012::new(schema)
        .unwrap_or_else(|e| panic!("the schema itself is invalid: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match the schema: {errors:#?}"
    );
}

fn sections(doc: &Value) -> Vec<String> {
    doc["meta"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_schema_is_published_in_sync_and_holds() {
    let generated = pynchy_status::schema::document();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/status.schema.json");
    let text = format!("{}\n", serde_json::to_string_pretty(&generated).unwrap());
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, &text).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == text,
        "schema/status.schema.json is out of date: run UPDATE_GOLDEN=1 cargo test --test schema"
    );

    let (dir, cfg) = demo_world("");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let served = get(run.addr, "/status/schema");
    assert_eq!(served.status, 200);
    assert_eq!(
        served.header("content-type"),
        Some("application/schema+json")
    );
    assert_eq!(served.json(), generated);

    // Nothing pushed: the queue is observed (pynchy's memory null) and valid too.
    let doc = get_json(run.addr, "/status");
    assert_eq!(doc["queue"]["source"], "observed");
    assert_eq!(doc["queue"]["groups_waiting"], Value::Null);
    validate(&generated, &doc, "/status before any push");
    healthy_service(run.addr);
    push(
        run.addr,
        "channels",
        json!({"slack": {"connected": false}, "whatsapp": {"connected": true}}),
    );
    push(
        run.addr,
        "queue",
        json!({"active_containers": 1, "max_concurrent": 4, "groups_waiting": 1,
               "per_group": {"g": {"active": true, "is_task": false, "pending_messages": true, "pending_tasks": 2}}}),
    );
    let doc = get_json(run.addr, "/status");
    for s in sections(&doc) {
        assert!(!doc[&s].is_null(), "{s} has a body");
    }
    validate(&generated, &doc, "/status");
    for s in sections(&doc) {
        let one = get_json(run.addr, &format!("/status/{s}"));
        let schema = pynchy_status::schema::section(&generated, &s).unwrap();
        validate(&schema, &one, &format!("/status/{s}"));
    }
    // The validator is not a rubber stamp: a wrong type is caught.
    let mut bad = doc.clone();
    bad["messages"]["total_inbound"] = json!("many");
    let validator = jsonschema::draft202012::new(&generated).unwrap();
    assert!(!validator.is_valid(&bad));
    let mut bad = doc;
    bad["status"] = json!("fine");
    assert!(!validator.is_valid(&bad));
}
