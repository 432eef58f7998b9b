//! The shipped systemd unit passes `systemd-analyze verify` and keeps its
//! hardening (exposure <= 2.0), checked by `scripts/check-systemd` against
//! the real `warden` binary as ExecStart.

use std::path::Path;
use std::process::Command;

#[test]
fn unit_verifies_and_stays_hardened() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/check-systemd"))
        .env("WARDEN_BIN", env!("CARGO_BIN_EXE_warden"))
        .output()
        .expect("run scripts/check-systemd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-systemd failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("SKIPPED") || stdout.contains(", 0 failed"),
        "{stdout}"
    );
}
