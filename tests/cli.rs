//! The command line: config errors exit 2 and name the problem, and every
//! subcommand has `--help`.

mod common;

use std::time::Duration;

use common::*;

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
}

/// Runs the binary to its end; a `serve` that unexpectedly starts serving is
/// killed after `LIMIT` and fails the test instead of hanging it.
fn run(cmd: &mut std::process::Command) -> std::process::Output {
    output_within(cmd, LIMIT)
}

const LIMIT: Duration = Duration::from_secs(30);

fn serve_with(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, config).unwrap();
    let out = run(bin()
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"]));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn config_errors_exit_2_and_name_the_problem() {
    let (code, err) = serve_with("[pynchy]\nroot = \".\"\ncolour = \"blue\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("colour"), "{err}");
    let (code, err) = serve_with("[sections.service]\ninterval = \"soon\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("interval"), "{err}");
    let (code, err) = serve_with("[sections.weather]\ninterval = \"5s\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sections.weather"), "{err}");
    let (code, err) = serve_with("listen = \"nowhere\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("listen"), "{err}");
    let out = run(bin().args(["serve", "--config", "/nonexistent/pynchy-status.toml"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/pynchy-status.toml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
    ] {
        let out = run(bin().args(&sub));
        assert!(out.status.success(), "{sub:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}
