//! Tampering with the SQLite file directly: `warden audit verify` must catch
//! every edit, deletion, reordering and truncation and name the first bad
//! record (exit 3), and pass an untouched log (exit 0).

use crate::audit_api::event;
use crate::support::{warden_bin, Daemon};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// A stopped agent's state dir holding records 1..=40 (appended 10 at a
/// time) with signed checkpoints at 20 and 40.
fn recorded_log() -> tempfile::TempDir {
    let d = Daemon::builder()
        .set("audit.checkpoint_every_records", 16)
        .start();
    for chunk in 0..4 {
        let batch: Vec<Value> = (1..=10).map(|i| event(chunk * 10 + i)).collect();
        let r = d.post_json("/v1/audit/events", &json!({"events": batch}));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    d.into_dir()
}

fn verify(state: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(warden_bin())
        .args(["audit", "verify", "--state-dir"])
        .arg(state)
        .args(extra)
        .env_clear()
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn tamper(sql: &str) -> (Option<i32>, String) {
    let dir = recorded_log();
    let state = dir.path().join("state");
    let conn = rusqlite::Connection::open(state.join("warden.db")).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    verify(&state, &[])
}

#[test]
fn an_untouched_log_verifies() {
    let dir = recorded_log();
    let state = dir.path().join("state");
    let before = std::fs::read(state.join("warden.db")).unwrap();
    let (code, text) = verify(&state, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("records 1..40"), "{text}");
    assert!(text.contains("2 signed checkpoints verified"), "{text}");
    let (code, text) = verify(&state, &["--from", "20"]);
    assert_eq!(code, Some(0), "{text}");
    // Read-only: the file is byte for byte what it was.
    assert_eq!(before, std::fs::read(state.join("warden.db")).unwrap());
}

#[test]
fn an_edited_record_is_named() {
    let (code, text) = tamper(
        "UPDATE audit_log SET record = replace(record, '\"qty\":-3', '\"qty\":-30') WHERE seq = 23",
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("at record 23"), "{text}");
    assert!(text.contains("altered"), "{text}");
}

#[test]
fn a_deleted_record_is_named() {
    let (code, text) = tamper("DELETE FROM audit_log WHERE seq = 17");
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("at record 17"), "{text}");
    assert!(text.contains("missing"), "{text}");
}

#[test]
fn reordered_records_are_named() {
    let (code, text) = tamper(
        "UPDATE audit_log SET seq = -1 WHERE seq = 5;
         UPDATE audit_log SET seq = 5 WHERE seq = 6;
         UPDATE audit_log SET seq = 6 WHERE seq = -1;",
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("at record 5"), "{text}");
    assert!(text.contains("reordered"), "{text}");
}

#[test]
fn a_truncated_log_is_caught() {
    let (code, text) = tamper("DELETE FROM audit_log WHERE seq > 35");
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("truncated"), "{text}");
    assert!(text.contains("at record 36"), "{text}");
    // Also when the attacker removes the checkpoints after the cut.
    let (code, text) = tamper(
        "DELETE FROM audit_log WHERE seq > 35; DELETE FROM audit_checkpoint WHERE seq > 35;",
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("truncated"), "{text}");
}

#[test]
fn a_forged_checkpoint_is_caught() {
    let (code, text) =
        tamper("UPDATE audit_checkpoint SET signed_at_ms = signed_at_ms - 1 WHERE seq = 20");
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("checkpoint at seq 20: signature"), "{text}");
    let (code, text) = tamper("UPDATE audit_checkpoint SET seq = 19 WHERE seq = 20");
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("checkpoint at seq 19"), "{text}");
}

#[test]
fn the_agent_refuses_to_extend_a_truncated_log() {
    let dir = recorded_log();
    let conn = rusqlite::Connection::open(dir.path().join("state/warden.db")).unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq > 38", [])
        .unwrap();
    drop(conn);
    let (d, _) = Daemon::builder().in_dir(dir).prepare();
    let (status, text) = d.run_again();
    assert!(!status.success(), "{text}");
    assert!(text.contains("truncated"), "{text}");
}

#[test]
fn verify_on_a_missing_state_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = verify(&dir.path().join("nope"), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}
