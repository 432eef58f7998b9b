//! Permission checks whose subject is a token: the verified token's user,
//! org, roles and second factor decide, and revocation applies at once.

use crate::support::Daemon;
use crate::tokens_support::{builder, directory_file, start};
use serde_json::{json, Value};

fn issue(d: &Daemon, user: &str, org: &str, amr: &[&str]) -> Value {
    let r = d.post_json(
        "/v1/tokens/issue",
        &json!({"user_id": user, "org_id": org, "amr": amr}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn check(d: &Daemon, subject: Value, perm: &str, surface: &str, resource: Value) -> Value {
    let (permission, action) = perm.split_once(':').unwrap();
    let r = d.post_json(
        "/v1/check",
        &json!({"subject": subject, "permission": permission, "action": action,
                "surface": surface, "resource": resource, "explain": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn north() -> Value {
    json!({"org_id": "acme", "region": "north"})
}

#[test]
fn a_token_subject_decides_with_the_tokens_roles_and_factors() {
    let d = start();
    let pwd = issue(&d, "alice", "acme", &["pwd"]);
    let token = json!({"token": pwd["access_token"]});
    let a = check(
        &d,
        token.clone(),
        "inventory.adjust_stock:write",
        "http",
        north(),
    );
    assert_eq!(a["allow"], true, "{a}");
    assert_eq!(a["reason"], "granted");
    assert_eq!(a["matched"]["role"], "inventory_supervisor");

    // Approving needs a second factor: a password-only session is stepped up.
    let a = check(
        &d,
        token.clone(),
        "inventory.adjust_stock:approve",
        "http",
        north(),
    );
    assert_eq!(
        (a["allow"].clone(), a["reason"].clone()),
        (json!(false), json!("mfa_required"))
    );
    let otp = issue(&d, "alice", "acme", &["pwd", "otp"]);
    let a = check(
        &d,
        json!({"token": otp["access_token"]}),
        "inventory.adjust_stock:approve",
        "http",
        north(),
    );
    assert_eq!(a["allow"], true, "{a}");

    // The token's org bounds the data it may touch.
    let a = check(
        &d,
        token.clone(),
        "inventory.adjust_stock:write",
        "http",
        json!({"org_id": "globex", "region": "north"}),
    );
    assert_eq!(a["reason"], "cross_org");

    // A token that does not verify decides nothing.
    let a = check(
        &d,
        json!({"token": "not.a.jwt"}),
        "inventory.view_stock:read",
        "http",
        json!(null),
    );
    assert_eq!(
        (a["allow"].clone(), a["reason"].clone()),
        (json!(false), json!("token_invalid"))
    );
    assert!(
        a["explain"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("malformed"),
        "{a}"
    );
}

#[test]
fn revoking_the_session_denies_the_next_check_at_once() {
    let d = start();
    let t = issue(&d, "bob", "acme", &["pwd"]);
    let subject = json!({"token": t["access_token"]});
    // Warm the verified-token cache first: revocation must still apply.
    for _ in 0..3 {
        assert_eq!(
            check(
                &d,
                subject.clone(),
                "inventory.adjust_stock:write",
                "http",
                north()
            )["allow"],
            true
        );
    }
    let r = d.post_json(
        "/v1/sessions/revoke",
        &json!({"session_id": t["session_id"], "reason": "logout"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let a = check(&d, subject, "inventory.adjust_stock:write", "http", north());
    assert_eq!(
        (a["allow"].clone(), a["reason"].clone()),
        (json!(false), json!("session_revoked"))
    );
}

#[test]
fn a_role_change_in_the_registry_revokes_token_sessions() {
    let d = builder().start();
    let t = issue(&d, "bob", "acme", &["pwd"]);
    let subject = json!({"token": t["access_token"]});
    assert_eq!(
        check(
            &d,
            subject.clone(),
            "inventory.view_stock:read",
            "http",
            json!(null)
        )["allow"],
        true
    );
    let text = std::fs::read_to_string(directory_file(&d)).unwrap();
    let clerk =
        "name = \"Bob Baker\"\nmemberships = [\n  { org = \"acme\", roles = [\"inventory_clerk\"]";
    assert!(text.contains(clerk));
    std::fs::write(
        directory_file(&d),
        text.replace(clerk, &clerk.replace("inventory_clerk", "sales_rep")),
    )
    .unwrap();
    let r = d.post_json("/v1/admin/reload", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let a = check(
        &d,
        subject,
        "inventory.view_stock:read",
        "http",
        json!(null),
    );
    assert_eq!(a["reason"], "session_revoked", "{a}");
}

#[test]
fn a_task_token_authorises_only_its_own_task_on_the_task_surface() {
    let d = start();
    let login = issue(&d, "alice", "acme", &["pwd"]);
    let r = d.post_json(
        "/v1/tokens/task",
        &json!({"task": "inventory.recount", "subject": {"token": login["access_token"]}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let task_token = r.json()["task_token"].clone();
    let own = json!({"task_token": task_token, "task": "inventory.recount"});
    let a = check(
        &d,
        own.clone(),
        "inventory.adjust_stock:write",
        "task",
        north(),
    );
    assert_eq!(a["allow"], true, "{a}");
    let other = json!({"task_token": task_token, "task": "finance.payout"});
    assert_eq!(
        check(&d, other, "inventory.adjust_stock:write", "task", north())["reason"],
        "token_invalid"
    );
    let a = check(&d, own, "inventory.adjust_stock:write", "http", north());
    assert_eq!(a["reason"], "token_invalid");
    assert!(
        a["explain"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("surface"),
        "{a}"
    );
    // An access token is not a task token, and the task name is required.
    let wrong = json!({"task_token": login["access_token"], "task": "inventory.recount"});
    assert_eq!(
        check(&d, wrong, "inventory.adjust_stock:write", "task", north())["reason"],
        "token_invalid"
    );
    let r = d.post_json(
        "/v1/check",
        &json!({"subject": {"task_token": task_token}, "permission": "inventory.adjust_stock",
                "action": "write", "surface": "task"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("subject.task"), "{}", r.text());
}
