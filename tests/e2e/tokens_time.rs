//! Expiry, grace periods and key ageing in the real binary, with time moved
//! by the test clock (`WARDEN_TEST_CLOCK=1`, debug builds in development mode
//! only) instead of sleeping.

use crate::support::{Builder, Daemon};
use crate::tokens_support::{builder, kid_of, login, reason, refresh, verify};
use serde_json::json;

fn timed() -> Builder {
    builder().env("WARDEN_TEST_CLOCK", "1")
}

fn advance(d: &Daemon, by: &str) {
    let r = d.post_json("/v1/admin/test/clock", &json!({ "advance": by }));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn the_test_clock_exists_only_when_asked_for() {
    let d = builder().start();
    let r = d.post_json("/v1/admin/test/clock", &json!({"advance": "1h"}));
    assert_eq!((r.status, r.error_code()), (404, "not_found".to_string()));
    let d = timed().start();
    assert!(d.log().contains("TEST CLOCK in use"));
    let r = d.post_json("/v1/admin/test/clock", &json!({"advance": "soon"}));
    assert_eq!(r.status, 400);
}

#[test]
fn access_tokens_expire_after_their_lifetime_plus_leeway() {
    let d = timed().start();
    let t = login(&d, "alice", "acme");
    let token = t["access_token"].as_str().unwrap();
    assert_eq!(verify(&d, token)["valid"], true);
    advance(&d, "15m");
    assert_eq!(verify(&d, token)["valid"], true, "within the 30 s leeway");
    advance(&d, "32s");
    assert_eq!(reason(&d, token), "expired");
    // The session lives on: a refresh gives a fresh access token.
    let r = refresh(&d, t["refresh_token"].as_str().unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        verify(&d, r.json()["access_token"].as_str().unwrap())["valid"],
        true
    );
}

#[test]
fn refresh_tokens_die_when_idle_and_sessions_at_their_absolute_lifetime() {
    let d = timed().start();
    let idle = login(&d, "alice", "acme");
    advance(&d, "8h");
    let r = refresh(&d, idle["refresh_token"].as_str().unwrap());
    assert_eq!(
        (r.status, r.error_code()),
        (401, "refresh_expired".to_string())
    );

    let mut current = login(&d, "bob", "acme")["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..23 {
        advance(&d, "7h");
        let r = refresh(&d, &current);
        assert_eq!(r.status, 200, "{}", r.text());
        current = r.json()["refresh_token"].as_str().unwrap().to_string();
    }
    advance(&d, "7h");
    assert_eq!(
        refresh(&d, &current).error_code(),
        "refresh_expired",
        "7 days after login"
    );
}

#[test]
fn a_replaced_key_verifies_during_its_grace_and_not_after() {
    let d = timed().set("keys.grace", "2m").start();
    let old = login(&d, "alice", "acme");
    let token = old["access_token"].as_str().unwrap();
    let old_kid = kid_of(token);
    let r = d.post_json("/v1/admin/keys/rotate", &json!({"purpose": "jwt"}));
    assert_eq!(r.status, 200, "{}", r.text());
    advance(&d, "1m");
    assert_eq!(verify(&d, token)["valid"], true, "in grace");
    advance(&d, "61s");
    assert_eq!(reason(&d, token), "unknown_kid", "grace over");
    let kids: Vec<String> = d.get("/v1/jwks").json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert!(!kids.contains(&old_kid), "{kids:?}");
    let r = d.post_json("/v1/admin/keys/rollback", &json!({"purpose": "jwt"}));
    assert_eq!(
        r.error_code(),
        "nothing_to_roll_back",
        "nothing left in grace"
    );
}

#[test]
fn a_rotated_key_signs_only_after_the_propagation_delay() {
    let d = timed().set("keys.propagation_delay", "5m").start();
    let before = kid_of(login(&d, "alice", "acme")["access_token"].as_str().unwrap());
    let r = d.post_json("/v1/admin/keys/rotate", &json!({"purpose": "jwt"}));
    let new_kid = r.json()["key"]["kid"].as_str().unwrap().to_string();
    advance(&d, "4m59s");
    assert_eq!(
        kid_of(login(&d, "alice", "acme")["access_token"].as_str().unwrap()),
        before
    );
    advance(&d, "1s");
    assert_eq!(
        kid_of(login(&d, "alice", "acme")["access_token"].as_str().unwrap()),
        new_kid
    );
    let keys = d.get("/v1/admin/keys").json();
    let state = |kid: &str| {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state(&before), "retiring");
    assert_eq!(state(&new_kid), "active");
}

#[test]
fn old_keys_are_flagged_and_with_auto_rotation_replaced() {
    let d = timed().start();
    advance(&d, "90d");
    let s = d.get("/v1/status").json();
    let jwt = s["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "jwt")
        .unwrap()
        .clone();
    assert_eq!(jwt["age_days"], 90);
    assert_eq!(jwt["rotation_due"], true);
    assert!(d
        .get("/metrics")
        .text()
        .contains("warden_key_rotation_due{purpose=\"jwt\"} 1"));
    let out = d.cli(&["keys", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rotation due"));

    let d = timed().set("keys.auto_rotate", true).start();
    let first = kid_of(login(&d, "alice", "acme")["access_token"].as_str().unwrap());
    advance(&d, "91d");
    let t = login(&d, "alice", "acme");
    assert_ne!(
        kid_of(t["access_token"].as_str().unwrap()),
        first,
        "rotated on use"
    );
    let s = d.get("/v1/status").json();
    assert!(
        s["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["rotation_due"] == false),
        "{s}"
    );
}
