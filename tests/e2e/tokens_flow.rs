//! Tokens end to end: issue, verify, refresh rotation, reuse detection,
//! concurrent refresh, revocation (session, password reset, role change),
//! task tokens, restart, and bad input.

use crate::tokens_support::{
    builder, directory_file, kid_of, login, reason, refresh, start, verify,
};
use serde_json::json;

#[test]
fn issue_then_verify_returns_the_documented_shape_and_claims() {
    let d = start();
    let t = login(&d, "alice", "acme");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 900);
    assert_eq!(t["refresh_expires_in"], 8 * 3600);
    assert!(t["refresh_token"].as_str().unwrap().starts_with("wrt_"));
    let sid = t["session_id"].as_str().unwrap();
    let v = verify(&d, t["access_token"].as_str().unwrap());
    assert_eq!(v["valid"], true, "{v}");
    let c = &v["claims"];
    assert_eq!(c["iss"], "warden");
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["org"], "acme");
    assert_eq!(c["roles"], json!(["inventory_supervisor"]));
    assert_eq!(c["sid"], sid);
    assert_eq!(c["amr"], json!(["pwd"]));
    assert_eq!(c["typ"], "access");
    for claim in ["auth_time", "iat", "exp", "jti"] {
        assert!(!c[claim].is_null(), "{claim} missing: {c}");
    }
    // The second verification is served from the cache, with the same answer.
    assert_eq!(verify(&d, t["access_token"].as_str().unwrap()), v);
    let metrics = d.get("/metrics").text();
    assert!(
        metrics.contains("warden_token_verifications_total{path=\"cache\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warden_token_events_total{event=\"issued\"} 1"),
        "{metrics}"
    );
}

#[test]
fn refresh_rotates_and_reuse_revokes_every_session_of_the_user() {
    let d = builder().set("tokens.reuse_grace", "0s").start();
    let first = login(&d, "alice", "acme");
    let other = login(&d, "alice", "acme");
    let bob = login(&d, "bob", "acme");
    let r = refresh(&d, first["refresh_token"].as_str().unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    let second = r.json();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["session_id"], first["session_id"]);
    assert_eq!(
        verify(&d, second["access_token"].as_str().unwrap())["valid"],
        true
    );

    let r = refresh(&d, first["refresh_token"].as_str().unwrap());
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "refresh_reused");
    for t in [&first, &second, &other] {
        assert_eq!(reason(&d, t["access_token"].as_str().unwrap()), "revoked");
    }
    let r = refresh(&d, second["refresh_token"].as_str().unwrap());
    assert_eq!(r.error_code(), "session_revoked");
    assert_eq!(
        verify(&d, bob["access_token"].as_str().unwrap())["valid"],
        true
    );
    let metrics = d.get("/metrics").text();
    assert!(
        metrics.contains("warden_token_events_total{event=\"refresh_reused\"} 1"),
        "{metrics}"
    );
    assert!(d.log().contains("refresh token reused"));
}

#[test]
fn concurrent_refreshes_of_one_token_get_one_successor() {
    let d = start();
    let first = login(&d, "alice", "acme");
    let token = first["refresh_token"].as_str().unwrap().to_string();
    let answers: Vec<serde_json::Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let d = &d;
                let token = token.clone();
                s.spawn(move || {
                    let r = refresh(d, &token);
                    assert_eq!(r.status, 200, "{}", r.text());
                    r.json()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let successors: std::collections::HashSet<&str> = answers
        .iter()
        .map(|a| a["refresh_token"].as_str().unwrap())
        .collect();
    assert_eq!(successors.len(), 1, "one rotation, shared by every racer");
    let next = refresh(&d, successors.iter().next().unwrap());
    assert_eq!(next.status, 200, "{}", next.text());
}

#[test]
fn revoking_a_session_or_a_user_takes_effect_at_once() {
    let d = start();
    let a = login(&d, "alice", "acme");
    let b = login(&d, "alice", "acme");
    let bob = login(&d, "bob", "acme");
    let ta = a["access_token"].as_str().unwrap();
    assert_eq!(verify(&d, ta)["valid"], true);
    let r = d.post_json(
        "/v1/sessions/revoke",
        &json!({"session_id": a["session_id"], "reason": "logout"}),
    );
    assert_eq!(r.json(), json!({"revoked": 1}));
    assert_eq!(reason(&d, ta), "revoked", "cached token, revoked at once");
    assert_eq!(
        verify(&d, b["access_token"].as_str().unwrap())["valid"],
        true
    );

    let r = d.post_json(
        "/v1/sessions/revoke",
        &json!({"user_id": "alice", "reason": "password_reset"}),
    );
    assert_eq!(r.json(), json!({"revoked": 1}));
    assert_eq!(reason(&d, b["access_token"].as_str().unwrap()), "revoked");
    assert_eq!(
        refresh(&d, b["refresh_token"].as_str().unwrap()).error_code(),
        "session_revoked"
    );
    assert_eq!(
        verify(&d, bob["access_token"].as_str().unwrap())["valid"],
        true
    );
    // A login after the reset works.
    let fresh = login(&d, "alice", "acme");
    assert_eq!(
        verify(&d, fresh["access_token"].as_str().unwrap())["valid"],
        true
    );

    for bad in [
        json!({"reason": "logout"}),
        json!({"user_id": "alice", "session_id": "s", "reason": "logout"}),
        json!({"user_id": "alice"}),
        json!({"user_id": "alice", "reason": "Not A Reason"}),
    ] {
        let r = d.post_json("/v1/sessions/revoke", &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.error_code(), "bad_request");
    }
}

#[test]
fn a_role_change_seen_on_reload_revokes_the_users_sessions() {
    let d = start();
    let alice = login(&d, "alice", "acme");
    let bob = login(&d, "bob", "acme");
    let users = std::fs::read_to_string(directory_file(&d)).unwrap();
    let bob_clerk =
        "name = \"Bob Baker\"\nmemberships = [\n  { org = \"acme\", roles = [\"inventory_clerk\"]";
    assert!(users.contains(bob_clerk));
    std::fs::write(
        directory_file(&d),
        users.replace(
            bob_clerk,
            &bob_clerk.replace("inventory_clerk", "inventory_supervisor"),
        ),
    )
    .unwrap();
    let r = d.post_json("/v1/admin/reload", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(reason(&d, bob["access_token"].as_str().unwrap()), "revoked");
    assert_eq!(
        refresh(&d, bob["refresh_token"].as_str().unwrap()).error_code(),
        "session_revoked"
    );
    assert_eq!(
        verify(&d, alice["access_token"].as_str().unwrap())["valid"],
        true
    );
    // The new login carries the new role.
    let again = login(&d, "bob", "acme");
    let v = verify(&d, again["access_token"].as_str().unwrap());
    assert_eq!(v["claims"]["roles"], json!(["inventory_supervisor"]));
}

#[test]
fn task_tokens_are_bound_to_their_task_and_session() {
    let d = start();
    let alice = login(&d, "alice", "acme");
    let r = d.post_json(
        "/v1/tokens/task",
        &json!({"task": "inventory.recount", "subject": {"token": alice["access_token"]}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let task = r.json()["task_token"].as_str().unwrap().to_string();
    assert_eq!(r.json()["expires_in"], 600);
    let ok = d.post_json(
        "/v1/tokens/verify",
        &json!({"token": task, "audience": "task:inventory.recount"}),
    );
    let v = ok.json();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["claims"]["aud"], "task:inventory.recount");
    assert_eq!(v["claims"]["typ"], "task");
    assert_eq!(v["claims"]["sid"], alice["session_id"]);
    let wrong = d.post_json(
        "/v1/tokens/verify",
        &json!({"token": task, "audience": "task:reports.export"}),
    );
    assert_eq!(
        wrong.json(),
        json!({"valid": false, "reason": "wrong_audience"})
    );
    // An access token is not a task token, whatever audience it claims.
    let access = d.post_json(
        "/v1/tokens/verify",
        &json!({"token": alice["access_token"], "audience": "task:inventory.recount"}),
    );
    assert_eq!(access.json()["valid"], false);

    let by_user = d.post_json(
        "/v1/tokens/task",
        &json!({"task": "reports.nightly", "subject": {"user_id": "carol", "org_id": "globex"}}),
    );
    assert_eq!(by_user.status, 200, "{}", by_user.text());

    d.post_json(
        "/v1/sessions/revoke",
        &json!({"session_id": alice["session_id"], "reason": "logout"}),
    );
    assert_eq!(reason(&d, &task), "revoked");
    let r = d.post_json(
        "/v1/tokens/task",
        &json!({"task": "x", "subject": {"token": alice["access_token"]}}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "token_invalid");
    for bad in [
        json!({"task": "x", "subject": {}}),
        json!({"task": "x", "subject": {"user_id": "alice"}}),
        json!({"task": "x", "subject": {"user_id": "alice", "org_id": "acme", "token": "t"}}),
        json!({"task": "has space", "subject": {"user_id": "alice", "org_id": "acme"}}),
        json!({"subject": {"user_id": "alice", "org_id": "acme"}}),
    ] {
        let r = d.post_json("/v1/tokens/task", &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

#[test]
fn bad_requests_get_clear_errors_never_a_500() {
    let d = start();
    let cases = [
        (
            "/v1/tokens/issue",
            json!({"user_id": "alice", "org_id": "acme"}),
            400,
            "bad_request",
        ),
        (
            "/v1/tokens/issue",
            json!({"user_id": "alice", "org_id": "acme", "amr": ["pwd"], "admin": true}),
            400,
            "bad_request",
        ),
        (
            "/v1/tokens/issue",
            json!({"user_id": "alice", "org_id": "acme", "amr": ["magic"]}),
            400,
            "bad_request",
        ),
        (
            "/v1/tokens/issue",
            json!({"user_id": 42, "org_id": "acme", "amr": ["pwd"]}),
            400,
            "bad_request",
        ),
        (
            "/v1/tokens/issue",
            json!({"user_id": "mallory", "org_id": "acme", "amr": ["pwd"]}),
            404,
            "unknown_subject",
        ),
        (
            "/v1/tokens/issue",
            json!({"user_id": "alice", "org_id": "globex", "amr": ["pwd"]}),
            404,
            "unknown_subject",
        ),
        (
            "/v1/tokens/refresh",
            json!({"refresh_token": "nope"}),
            401,
            "refresh_invalid",
        ),
        (
            "/v1/tokens/refresh",
            json!({"refresh_token": format!("wrt_{}", "A".repeat(43))}),
            401,
            "refresh_invalid",
        ),
        ("/v1/tokens/refresh", json!({}), 400, "bad_request"),
        ("/v1/tokens/verify", json!({"token": 1}), 400, "bad_request"),
    ];
    for (path, body, status, code) in cases {
        let r = d.post_json(path, &body);
        assert_eq!(
            (r.status, r.error_code()),
            (status, code.to_string()),
            "{path} {body}: {}",
            r.text()
        );
    }
    let mut c = d.client();
    let r = c
        .request(
            "POST",
            "/v1/tokens/issue",
            &[("content-type", "application/json")],
            b"{not json",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    let r = c
        .request(
            "POST",
            "/v1/tokens/verify",
            &[("content-type", "application/json")],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(d.get("/v1/tokens/issue").status, 405);
}

#[test]
fn the_token_endpoints_need_the_tokens_class_but_the_jwks_is_open() {
    let uid = nix::unistd::getuid().as_raw();
    let d = builder()
        .callers(&format!(
            "[[callers]]\nuids = [{uid}]\nallow = [\"check\"]\n"
        ))
        .start();
    for path in [
        "/v1/tokens/issue",
        "/v1/tokens/refresh",
        "/v1/tokens/verify",
        "/v1/tokens/task",
        "/v1/sessions/revoke",
        "/v1/admin/keys/rotate",
    ] {
        let r = d.post_json(path, &json!({}));
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.error_code(), "caller_not_allowed");
    }
    assert_eq!(d.get("/v1/admin/keys").status, 403);
    assert_eq!(d.get("/v1/jwks").status, 200);
}

#[test]
fn keys_sessions_and_revocations_survive_a_restart() {
    let d = start();
    let alice = login(&d, "alice", "acme");
    let bob = login(&d, "bob", "acme");
    d.post_json(
        "/v1/sessions/revoke",
        &json!({"session_id": bob["session_id"], "reason": "logout"}),
    );
    let kid = kid_of(alice["access_token"].as_str().unwrap());
    let dir = d.into_dir();
    let d = crate::support::Daemon::builder()
        .in_dir(dir)
        .own_registry()
        .start();
    assert_eq!(
        verify(&d, alice["access_token"].as_str().unwrap())["valid"],
        true
    );
    assert_eq!(reason(&d, bob["access_token"].as_str().unwrap()), "revoked");
    let r = refresh(&d, alice["refresh_token"].as_str().unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(kid_of(r.json()["access_token"].as_str().unwrap()), kid);
}

#[test]
fn tokens_never_reach_the_log() {
    let d = builder().set("log.level", "trace").start();
    let t = login(&d, "alice", "acme");
    let r = refresh(&d, t["refresh_token"].as_str().unwrap());
    let next = r.json();
    let _ = refresh(&d, t["refresh_token"].as_str().unwrap());
    let task = d.post_json(
        "/v1/tokens/task",
        &json!({"task": "t", "subject": {"user_id": "bob", "org_id": "acme"}}),
    );
    verify(&d, next["access_token"].as_str().unwrap());
    let log = d.log();
    assert!(log.contains("/v1/tokens/refresh"), "trace logging is on");
    for secret in [
        &t["access_token"],
        &t["refresh_token"],
        &next["access_token"],
        &next["refresh_token"],
        &task.json()["task_token"],
    ] {
        let s = secret.as_str().unwrap();
        // Any 20-character run of a token would be a leak.
        let probe = &s[s.len() - 20..];
        assert!(!log.contains(probe), "a token leaked into the log");
    }
}
