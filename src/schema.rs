//! The published contract of `/status`: a JSON Schema (draft 2020-12) of the
//! whole document, generated from the typed bodies (schemars) — each
//! section's body or null, the verdict and its reasons, each section's meta.
//! Served at `GET /status/schema`; `schema/status.schema.json` is a copy a
//! test keeps in sync. A `/status/{section}` answer is that section's
//! property and its meta entry (see [`section`]).

use serde_json::{json, Map, Value};

use crate::engine::record::Meta;
use crate::engine::rollup::{Level, Reason};
use crate::sections::registry;

/// The schema of `/status`.
pub fn document() -> Value {
    let mut g = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut props = Map::new();
    props.insert("status".into(), g.subschema_for::<Level>().to_value());
    props.insert(
        "reasons".into(),
        g.subschema_for::<Vec<Reason>>().to_value(),
    );
    let meta = g.subschema_for::<Meta>().to_value();
    let mut metas = Map::new();
    props.insert(
        "status_since".into(),
        json!({"description": "since when the verdict is what it is (RFC 3339)", "type": ["string", "null"]}),
    );
    let mut names = vec![
        "status".to_string(),
        "status_since".to_string(),
        "reasons".to_string(),
    ];
    for e in registry() {
        let body = (e.schema)(&mut g).to_value();
        let what = format!(
            "the {} section's body; null before its first good collection",
            e.id
        );
        props.insert(
            e.id.name().into(),
            json!({"description": what, "anyOf": [body, {"type": "null"}]}),
        );
        metas.insert(e.id.name().into(), meta.clone());
        names.push(e.id.name().into());
    }
    let meta_names: Vec<Value> = registry().iter().map(|e| json!(e.id.name())).collect();
    props.insert(
        "meta".into(),
        json!({
            "description": "each section's collection: when, how long, stale, last error",
            "type": "object",
            "properties": metas,
            "required": meta_names,
        }),
    );
    names.push("meta".into());
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/crypdick/pynchy-status/schema/status.schema.json",
        "title": "pynchy-status /status",
        "description": "GET /status: the verdict, its reasons, a body per section and each section's meta",
        "type": "object",
        "properties": props,
        "required": names,
        "$defs": g.take_definitions(true),
    })
}

/// The schema of `/status/{name}`, cut from the document's: `{name: body,
/// meta: {name: meta}}`. `None` for a name that is not a section.
pub fn section(document: &Value, name: &str) -> Option<Value> {
    let body = document["properties"].get(name)?;
    let meta = &document["properties"]["meta"]["properties"][name];
    Some(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            name: body,
            "meta": {"type": "object", "properties": {name: meta}, "required": [name]},
        },
        "required": [name, "meta"],
        "$defs": document["$defs"],
    }))
}
