//! The systemd units in examples/ (the system unit and the user unit beside
//! pynchy's own) pass `systemd-analyze verify` (pointed at the built binary),
//! and the example config is complete.

mod common;

use std::process::Command;

/// `examples/<name>` as text.
fn unit(name: &str) -> String {
    std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Whether `systemd-analyze` is here (said loudly when not).
fn analyzer() -> bool {
    let here = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok();
    if !here {
        common::missing_part("systemd-analyze (Debian package systemd)");
    }
    here
}

/// `systemd-analyze verify [extra]` of `text`, with `binary` replaced by the
/// built one, installed as `pynchy-status.service`: it must pass and say
/// nothing about the unit.
fn verifies(text: &str, binary: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pynchy-status.service");
    std::fs::write(
        &path,
        text.replace(binary, env!("CARGO_BIN_EXE_pynchy-status")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(extra)
        .arg(&path)
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !said.contains("pynchy-status.service:"),
        "{said}"
    );
}

#[test]
fn systemd_unit_verifies() {
    if !analyzer() {
        return;
    }
    let text = unit("pynchy-status.service");
    for key in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "SupplementaryGroups=docker",
    ] {
        assert!(text.contains(key), "{key}");
    }
    verifies(&text, "/usr/local/bin/pynchy-status", &[]);
}

#[test]
fn user_unit_verifies() {
    if !analyzer() {
        return;
    }
    let text = unit("pynchy-status.user.service");
    // Nothing to edit: pynchy's root, no config file of ours.
    assert!(text.contains("serve --pynchy-root %h/pynchy"), "{text}");
    assert!(!text.contains("--config"), "{text}");
    verifies(&text, "%h/.cargo/bin/pynchy-status", &["--user"]);
}
