//! Every capability records through the one audit recorder: permission
//! decisions, token and session events, key rotations.

use crate::audit_api::audit_cli;
use crate::support::Daemon;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// All records so far (export reads the state directory offline).
fn records(d: &Daemon) -> Vec<Value> {
    let out = audit_cli(d, &["export", "--since", "1h"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["record"].clone())
        .collect()
}

/// Waits until a record matching `pred` is durable, and returns it.
fn wait_record(d: &Daemon, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = records(d).into_iter().find(|r| pred(r)) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} record in {:#?}",
            records(d)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check(d: &Daemon, user: &str, permission: &str, action: &str) -> Value {
    let r = d.post_json(
        "/v1/check",
        &json!({"subject": {"user_id": user, "org_id": "acme"}, "permission": permission,
                "action": action, "surface": "http", "resource": {"org_id": "acme", "region": "north"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn denials_and_sensitive_allows_are_recorded_reads_are_not() {
    let d = Daemon::start();
    let deny = check(&d, "bob", "finance.approve_payment", "approve");
    assert_eq!(deny["allow"], false);
    let write = check(&d, "alice", "inventory.adjust_stock", "write");
    assert_eq!(write["allow"], true);
    let read = check(&d, "alice", "inventory.view_stock", "read");
    assert_eq!(read["allow"], true);

    let r = wait_record(&d, "denial", |r| {
        r["attrs"]["decision_id"] == deny["decision_id"]
    });
    assert_eq!(r["kind"], "decision");
    assert_eq!(r["outcome"], "deny");
    assert_eq!(r["reason"], deny["reason"]);
    assert_eq!(r["identity"]["user"], "bob");
    assert_eq!(r["identity"]["uid"], nix::unistd::getuid().as_raw());
    assert_eq!(r["permission"], "finance.approve_payment");
    assert_eq!(r["org_id"], "acme");
    let r = wait_record(&d, "write allow", |r| {
        r["attrs"]["decision_id"] == write["decision_id"]
    });
    assert_eq!(
        (r["outcome"].clone(), r["action"].clone()),
        (json!("allow"), json!("write"))
    );
    assert_eq!(r["attrs"]["policy_version"], write["policy_version"]);
    assert!(
        !records(&d)
            .iter()
            .any(|r| r["attrs"]["decision_id"] == read["decision_id"]),
        "plain reads are not recorded"
    );
}

#[test]
fn token_session_and_key_events_are_recorded_with_their_kid() {
    let d = Daemon::builder()
        .set("keys.propagation_delay", "0s")
        .set("tokens.reuse_grace", "0s")
        .start();
    let r = d.post_json(
        "/v1/tokens/issue",
        &json!({"user_id": "alice", "org_id": "acme", "amr": ["pwd", "otp"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let login = r.json();
    let issued = wait_record(&d, "token.issued", |r| r["kind"] == "token.issued");
    assert_eq!(issued["identity"]["user"], "alice");
    assert_eq!(issued["identity"]["session"], login["session_id"]);
    assert_eq!(issued["org_id"], "acme");
    assert!(
        issued["kid"].as_str().is_some_and(|k| !k.is_empty()),
        "{issued}"
    );

    let r = d.post_json(
        "/v1/tokens/refresh",
        &json!({"refresh_token": login["refresh_token"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    wait_record(&d, "token.refreshed", |r| r["kind"] == "token.refreshed");
    // Reusing the superseded refresh token is recorded as suspicious, and
    // so is the revocation it triggers.
    let reuse = d.post_json(
        "/v1/tokens/refresh",
        &json!({"refresh_token": login["refresh_token"]}),
    );
    assert_eq!(reuse.status, 401, "{}", reuse.text());
    let r = wait_record(&d, "token.refresh_reused", |r| {
        r["kind"] == "token.refresh_reused"
    });
    assert_eq!(r["outcome"], "denied");
    wait_record(&d, "token.user_sessions_revoked", |r| {
        r["kind"] == "token.user_sessions_revoked" && r["reason"] == "refresh_reused"
    });

    let r = d.post_json("/v1/admin/keys/rotate", &json!({"purpose": "jwt"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let rotated = wait_record(&d, "key.rotated", |r| r["kind"] == "key.rotated");
    assert_eq!(rotated["attrs"]["purpose"], "jwt");
    assert!(rotated["kid"].is_string());
}
