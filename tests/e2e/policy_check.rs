//! Permission checks through the socket against the example ERP registry:
//! every reason code, matched grants, explain, batches and malformed bodies.

use crate::support::Daemon;
use serde_json::{json, Value};

fn check(d: &Daemon, body: Value) -> Value {
    let r = d.post_json("/v1/check", &body);
    assert_eq!(r.status, 200, "{body} -> {}", r.text());
    let v = r.json();
    assert_eq!(
        r.header("x-warden-policy-version"),
        v["policy_version"].as_str(),
        "header and body name the same version"
    );
    v
}

fn user(u: &str, o: &str) -> Value {
    json!({"user_id": u, "org_id": o})
}

#[test]
fn every_reason_code_through_the_socket() {
    let d = Daemon::start();
    // (subject, permission, action, surface, resource, allow, reason, enforced)
    let table = [
        (
            user("bob", "acme"),
            "inventory.adjust_stock",
            "write",
            "http",
            json!({"org_id": "acme"}),
            true,
            "granted",
            true,
        ),
        (
            user("alice", "acme"),
            "inventory.delete_everything",
            "write",
            "http",
            Value::Null,
            false,
            "unknown_permission",
            true,
        ),
        (
            user("alice", "acme"),
            "inventory.view_stock",
            "write",
            "http",
            Value::Null,
            false,
            "unknown_action",
            true,
        ),
        (
            user("mallory-x", "acme"),
            "inventory.view_stock",
            "read",
            "http",
            Value::Null,
            false,
            "unknown_subject",
            true,
        ),
        (
            user("erin", "acme"),
            "finance.approve_payment",
            "read",
            "http",
            Value::Null,
            false,
            "no_grant",
            true,
        ),
        (
            user("alice", "acme"),
            "inventory.view_stock",
            "read",
            "http",
            json!({"org_id": "globex"}),
            false,
            "cross_org",
            true,
        ),
        (
            user("erin", "acme"),
            "orders.cancel",
            "write",
            "http",
            json!({"org_id": "acme", "owner_id": "grace"}),
            false,
            "not_owner",
            true,
        ),
        (
            user("alice", "acme"),
            "inventory.adjust_stock",
            "write",
            "http",
            json!({"org_id": "acme", "region": "south"}),
            false,
            "out_of_region",
            true,
        ),
        (
            json!({"user_id": "dave", "org_id": "acme", "mfa": true}),
            "finance.approve_payment",
            "approve",
            "bot",
            Value::Null,
            false,
            "surface_denied",
            true,
        ),
        (
            user("dave", "acme"),
            "finance.approve_payment",
            "approve",
            "http",
            Value::Null,
            false,
            "mfa_required",
            true,
        ),
        (
            json!({"user_id": "dave", "org_id": "acme", "mfa": true}),
            "finance.approve_payment",
            "approve",
            "http",
            Value::Null,
            true,
            "granted",
            true,
        ),
        (
            json!({"token": "not-a-jwt"}),
            "orders.view",
            "read",
            "http",
            Value::Null,
            false,
            "token_invalid",
            true,
        ),
        (
            json!({"task_token": "x.y.z", "task": "orders.sync"}),
            "orders.view",
            "read",
            "task",
            Value::Null,
            false,
            "token_invalid",
            true,
        ),
        (
            json!({"bot": {"platform": "telegram", "id": "12345"}}),
            "orders.create",
            "write",
            "bot",
            Value::Null,
            true,
            "granted",
            true,
        ),
        (
            json!({"bot": {"platform": "telegram", "id": "0"}}),
            "orders.create",
            "write",
            "bot",
            Value::Null,
            false,
            "unknown_subject",
            true,
        ),
        // Report mode: allowed, with the would-be reason.
        (
            user("erin", "acme"),
            "inventory.manage_items",
            "write",
            "http",
            Value::Null,
            true,
            "no_grant",
            false,
        ),
    ];
    for (subject, permission, action, surface, resource, allow, reason, enforced) in table {
        let mut body = json!({"subject": subject, "permission": permission, "action": action, "surface": surface});
        if !resource.is_null() {
            body["resource"] = resource;
        }
        let v = check(&d, body.clone());
        assert_eq!(
            (
                v["allow"].as_bool(),
                v["reason"].as_str(),
                v["enforced"].as_bool()
            ),
            (Some(allow), Some(reason), Some(enforced)),
            "{body} -> {v}"
        );
        assert!(v["decision_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(v["policy_version"].as_str().map(str::len), Some(64));
    }
    let metrics = d.get("/metrics").text();
    assert!(
        metrics.contains("warden_policy_decisions_total{enforced=\"false\",reason=\"no_grant\"} 1"),
        "{metrics}"
    );
}

#[test]
fn answers_name_the_matched_grant() {
    let d = Daemon::start();
    let v = check(
        &d,
        json!({"subject": user("bob", "acme"), "permission": "inventory.adjust_stock", "action": "approve", "surface": "http", "resource": {"org_id": "acme", "assignee_id": "bob"}}),
    );
    assert_eq!(v["reason"], "mfa_required");
    assert_eq!(
        v["matched"],
        json!({"role": "inventory_clerk", "permission": "inventory.adjust_stock", "action": "approve", "scope": "assigned", "source": "org:acme"})
    );
    let v = check(
        &d,
        json!({"subject": user("alice", "acme"), "permission": "inventory.adjust_stock", "action": "write", "surface": "cli", "resource": {"region": "north"}}),
    );
    assert_eq!(v["matched"]["scope"], "region");
    assert_eq!(v["matched"]["source"], "global");
    let v = check(
        &d,
        json!({"subject": user("alice", "acme"), "permission": "nope.nope", "action": "read", "surface": "http"}),
    );
    assert_eq!(v["matched"], Value::Null);
    assert!(v.get("explain").is_none());
}

#[test]
fn explain_returns_the_evaluation_trace() {
    let d = Daemon::start();
    let v = check(
        &d,
        json!({"subject": user("alice", "acme"), "permission": "inventory.adjust_stock", "action": "write", "surface": "http", "resource": {"region": "south"}, "explain": true}),
    );
    assert_eq!(v["reason"], "out_of_region");
    let steps: Vec<&str> = v["explain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["permission", "subject", "mode", "grant", "scope", "result"],
        "{v}"
    );
    let subject = v["explain"][1]["detail"].as_str().unwrap();
    assert!(
        subject.contains("roles [inventory_supervisor]") && subject.contains("region north"),
        "{subject}"
    );
}

#[test]
fn batch_answers_in_order_against_one_version() {
    let d = Daemon::start();
    let one = |p: &str, a: &str| json!({"subject": user("bob", "acme"), "permission": p, "action": a, "surface": "http"});
    let r = d.post_json("/v1/check/batch", &json!({"checks": [one("inventory.view_stock", "read"), one("finance.invoice", "write"), one("x.y", "read")]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json()["results"].as_array().unwrap().clone();
    let reasons: Vec<&str> = results
        .iter()
        .map(|v| v["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["granted", "no_grant", "unknown_permission"]);
    let versions: Vec<&Value> = results.iter().map(|v| &v["policy_version"]).collect();
    assert!(versions.windows(2).all(|w| w[0] == w[1]));
    let ids: std::collections::HashSet<&str> = results
        .iter()
        .map(|v| v["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "decision ids are unique");

    // 1,000 is the limit.
    let many: Vec<Value> = (0..1000)
        .map(|_| one("inventory.view_stock", "read"))
        .collect();
    let r = d.post_json("/v1/check/batch", &json!({"checks": many}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 1000);
    let too_many: Vec<Value> = (0..1001)
        .map(|_| one("inventory.view_stock", "read"))
        .collect();
    let r = d.post_json("/v1/check/batch", &json!({"checks": too_many}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("checks"), "{}", r.text());

    // A malformed check names its index and field.
    let r = d.post_json("/v1/check/batch", &json!({"checks": [one("a.b", "read"), {"subject": user("bob", "acme"), "permission": "a.b", "action": "read", "surface": "web"}]}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("checks[1].surface"), "{}", r.text());
}

#[test]
fn malformed_check_bodies_get_400_naming_the_field() {
    let d = Daemon::start();
    let cases = [
        (
            json!({"subject": user("bob", "acme"), "permission": "a.b", "action": "read"}),
            "surface",
        ),
        (
            json!({"subject": {"user_id": 42, "org_id": "acme"}, "permission": "a.b", "action": "read", "surface": "http"}),
            "subject.user_id",
        ),
        (
            json!({"subject": user("bob", "acme"), "permission": "a.b", "action": "read", "surface": "fax"}),
            "surface",
        ),
        (
            json!({"subject": user("bob", "acme"), "permission": "a.b", "action": "read", "surface": "http", "resource": {"owner": "x"}}),
            "resource",
        ),
        (
            json!({"subject": user("bob", "acme"), "permission": "a.b", "action": "read", "surface": "http", "extra": 1}),
            "extra",
        ),
        (
            json!({"subject": {"user_id": "bob"}, "permission": "a.b", "action": "read", "surface": "http"}),
            "subject.org_id",
        ),
        (
            json!({"subject": {"user_id": "bob", "org_id": "acme", "peer": true}, "permission": "a.b", "action": "read", "surface": "http"}),
            "subject",
        ),
        (
            json!({"subject": {}, "permission": "a.b", "action": "read", "surface": "http"}),
            "subject",
        ),
        (
            json!({"subject": {"peer": false}, "permission": "a.b", "action": "read", "surface": "http"}),
            "subject.peer",
        ),
        (
            json!({"subject": user("bob", "acme"), "permission": ["a.b"], "action": "read", "surface": "http"}),
            "permission",
        ),
    ];
    for (body, field) in cases {
        let r = d.post_json("/v1/check", &body);
        assert_eq!(r.status, 400, "{body} -> {}", r.text());
        assert_eq!(r.error_code(), "bad_request");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains(field),
            "{body}: message {msg:?} does not name {field}"
        );
    }
    let mut c = d.client();
    let r = c
        .request(
            "POST",
            "/v1/check",
            &[("content-type", "application/json")],
            b"{not json",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    let r = c.request("POST", "/v1/check", &[], b"").unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn permissions_listing_describes_the_registry() {
    let d = Daemon::start();
    let r = d.get("/v1/permissions");
    assert_eq!(r.status, 200);
    let v = r.json();
    let perms = v["permissions"].as_array().unwrap();
    let pay = perms
        .iter()
        .find(|p| p["name"] == "finance.approve_payment")
        .unwrap();
    assert_eq!(pay["module"], "finance");
    assert_eq!(pay["actions"], json!(["read", "approve"]));
    assert_eq!(pay["mfa"], json!(["approve"]));
    assert_eq!(pay["surfaces"], json!(["http", "cli"]));
    assert!(perms
        .iter()
        .any(|p| p["name"] == "inventory.manage_items" && p["mode"] == "report"));
    assert!(v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "warehouse_lead" && r["org"] == "globex"));
    assert_eq!(
        v["policy_version"].as_str(),
        r.header("x-warden-policy-version")
    );
}

#[test]
fn checks_need_the_check_operation_class() {
    let d = Daemon::builder().no_callers().start();
    let r = d.post_json("/v1/check", &json!({"subject": user("bob", "acme"), "permission": "a.b", "action": "read", "surface": "http"}));
    assert_eq!(r.status, 403);
    assert_eq!(d.get("/v1/permissions").status, 403);
}
