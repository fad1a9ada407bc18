//! The systemd units in examples/ (the system unit and the user unit beside
//! pynchy's own) pass `systemd-analyze verify` (pointed at the built binary),
//! and the example config is complete.

mod common;

use std::process::Command;

#[test]
fn systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return common::missing_part("systemd-analyze (Debian package systemd)");
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/pynchy-status.service"
    ))
    .unwrap();
    for key in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "SupplementaryGroups=docker",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pynchy-status.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/pynchy-status",
            env!("CARGO_BIN_EXE_pynchy-status"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("pynchy-status.service:"),
        "{text}"
    );
}

#[test]
fn user_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return common::missing_part("systemd-analyze (Debian package systemd)");
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/pynchy-status.user.service"
    ))
    .unwrap();
    // Nothing to edit: pynchy's root, no config file of ours.
    assert!(unit.contains("serve --pynchy-root %h/pynchy"), "{unit}");
    assert!(!unit.contains("--config"), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pynchy-status.service");
    std::fs::write(
        &path,
        unit.replace(
            "%h/.cargo/bin/pynchy-status",
            env!("CARGO_BIN_EXE_pynchy-status"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(&path)
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("pynchy-status.service:"),
        "{text}"
    );
}
