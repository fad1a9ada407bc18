//! The example config in `examples/` stays valid, and states every key with
//! the default the code uses (each default is named once, in `config::defaults`).

use pynchy_status::config::{stated_defaults, Config, OPTIONAL_KEYS};

fn example_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pynchy-status.toml")
}

#[test]
fn example_config_loads() {
    let cfg = Config::load(&example_path()).expect("examples/pynchy-status.toml is valid");
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8484");
    assert_eq!(cfg.repos.len(), 1);
    assert!(cfg.pynchy.database.ends_with("data/messages.db"));
    pynchy_status::app::Daemon::new(cfg).expect("every rule and section it names exists");
}

/// The value at a dotted key (`a.b.c`) of a TOML table.
fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut v = table.get(parts.next()?)?;
    for p in parts {
        v = v.as_table()?.get(p)?;
    }
    Some(v)
}

fn same(a: &toml::Value, b: &toml::Value) -> bool {
    let duration = |v: &toml::Value| v.as_str().and_then(|s| humantime::parse_duration(s).ok());
    match (duration(a), duration(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[test]
fn example_config_states_every_default() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let defaults = stated_defaults();
    // Derived from the `config` printout: every table is in it.
    for key in [
        "listen",
        "pynchy.timezone",
        "gateway.models_interval",
        "llm.budgets_interval",
        "push.ttl",
        "server.max_connections",
        "rollup.down_http_status",
        "limits.pull_body",
    ] {
        assert!(
            defaults.iter().any(|(k, _)| k == key),
            "{key} not among {defaults:?}"
        );
    }
    assert!(defaults.len() >= 40, "{}", defaults.len());
    for (key, default) in defaults {
        let stated = lookup(&table, &key)
            .unwrap_or_else(|| panic!("examples/pynchy-status.toml misses `{key}` = {default}"));
        assert!(
            same(stated, &default),
            "examples/pynchy-status.toml states `{key}` = {stated}, the default is {default}"
        );
    }
    for key in OPTIONAL_KEYS {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            lookup(&table, key).is_some() || text.contains(&format!("{leaf} =")),
            "examples/pynchy-status.toml does not mention `{key}`"
        );
    }
}

#[test]
fn readme_config_table_states_every_default() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    for (key, default) in stated_defaults() {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("README's config table has no row for `{key}`"));
        let text = match &default {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert!(
            row.contains(&format!("`{text}`")),
            "README states `{key}` as {row:?}; the default is {text}"
        );
    }
}
