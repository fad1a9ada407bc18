//! The example config in `examples/` stays valid.

use pynchy_status::config::Config;

#[test]
fn example_config_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pynchy-status.toml");
    let cfg = Config::load(&path).expect("examples/pynchy-status.toml is valid");
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8484");
    assert_eq!(cfg.repos.len(), 1);
    assert!(cfg.pynchy.database.ends_with("data/messages.db"));
    pynchy_status::app::Daemon::new(cfg).expect("every [sections.*] is a known section");
}
