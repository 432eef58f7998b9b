//! The policy source through the real binary: hot reload, rejected changes,
//! SIGHUP and admin reload, start from the local cache, and the peer (CLI)
//! subject mapped from the caller's uid.

use crate::support::{copy_registry, short_tempdir, Daemon};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn reason(d: &Daemon, body: &Value) -> (String, String) {
    let r = d.post_json("/v1/check", body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    (
        v["reason"].as_str().unwrap().to_string(),
        v["policy_version"].as_str().unwrap().to_string(),
    )
}

/// Polls until `f` holds; returns how long it took.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn erin_payment() -> Value {
    json!({"subject": {"user_id": "erin", "org_id": "acme"}, "permission": "finance.approve_payment", "action": "read", "surface": "http"})
}

/// Gives sales reps (erin) read on payments; the anchor line is unique to sales_rep.
const GRANT_ERIN: (&str, &str) = (
    "{ permission = \"orders.view\", actions = [\"read\"], scope = \"own\" },",
    "{ permission = \"orders.view\", actions = [\"read\"], scope = \"own\" },\n  { permission = \"finance.approve_payment\", actions = [\"read\"] },",
);

#[test]
fn a_valid_change_is_served_within_a_second() {
    let tmp = short_tempdir();
    let dir = copy_registry(tmp.path());
    let d = Daemon::builder()
        .set("policy.dir", dir.to_string_lossy().to_string())
        .start();
    let (before, v1) = reason(&d, &erin_payment());
    assert_eq!(before, "no_grant");
    edit(&dir.join("roles.toml"), GRANT_ERIN.0, GRANT_ERIN.1);
    let took = wait_for(Duration::from_secs(1), || {
        reason(&d, &erin_payment()).0 == "granted"
    });
    let (_, v2) = reason(&d, &erin_payment());
    assert_ne!(v1, v2);
    eprintln!("hot reload served after {took:?}");
    let status = d.get("/v1/status").json();
    assert_eq!(status["policy"]["version"], v2.as_str());
    assert_eq!(status["policy"]["source"], "file");
}

#[test]
fn an_invalid_change_keeps_the_old_snapshot_serving() {
    let tmp = short_tempdir();
    let dir = copy_registry(tmp.path());
    let d = Daemon::builder()
        .set("policy.dir", dir.to_string_lossy().to_string())
        .start();
    let (_, v1) = reason(&d, &erin_payment());
    edit(
        &dir.join("orgs/acme.toml"),
        "permission = \"orders.refund\"",
        "permission = \"orders.refnud\"",
    );
    wait_for(Duration::from_secs(5), || {
        !d.get("/v1/status").json()["policy"]["last_error"].is_null()
    });
    let status = d.get("/v1/status").json();
    let err = status["policy"]["last_error"].as_str().unwrap();
    assert!(
        err.contains("orgs/acme.toml:") && err.contains("unknown permission `orders.refnud`"),
        "{err}"
    );
    assert_eq!(status["policy"]["version"], v1.as_str());
    assert_eq!(d.get("/v1/ready").status, 200);
    assert_eq!(
        reason(&d, &erin_payment()),
        ("no_grant".to_string(), v1.clone())
    );
    let metrics = d.get("/metrics").text();
    assert!(metrics.contains("warden_policy_reload_ok 0"), "{metrics}");
    assert!(
        metrics.contains("warden_reloads_total{outcome=\"rejected\",what=\"policy\"}"),
        "{metrics}"
    );
    assert!(d.log().contains("policy change rejected"));
    // Fix it: the error clears.
    edit(
        &dir.join("orgs/acme.toml"),
        "orders.refnud",
        "orders.refund",
    );
    wait_for(Duration::from_secs(5), || {
        d.get("/v1/status").json()["policy"]["last_error"].is_null()
    });
}

#[test]
fn sighup_and_admin_reload_reload_at_once() {
    let tmp = short_tempdir();
    let dir = copy_registry(tmp.path());
    let d = Daemon::builder()
        .set("policy.dir", dir.to_string_lossy().to_string())
        .set("policy.watch", false)
        .start();
    edit(&dir.join("roles.toml"), GRANT_ERIN.0, GRANT_ERIN.1);
    // Not watched: nothing changes until asked.
    assert_eq!(reason(&d, &erin_payment()).0, "no_grant");
    let r = d.post_json("/v1/admin/reload", &json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["policy"]["outcome"], "applied", "{}", r.text());
    assert_eq!(reason(&d, &erin_payment()).0, "granted");
    edit(&dir.join("roles.toml"), GRANT_ERIN.1, GRANT_ERIN.0);
    d.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(5), || {
        reason(&d, &erin_payment()).0 == "no_grant"
    });
}

#[test]
fn starts_and_is_ready_from_the_cache_when_files_are_broken() {
    let tmp = short_tempdir();
    let dir = copy_registry(tmp.path());
    let d = Daemon::builder()
        .set("policy.dir", dir.to_string_lossy().to_string())
        .start();
    let (_, v1) = reason(&d, &erin_payment());
    let state = d.into_dir();
    std::fs::write(dir.join("roles.toml"), "[[role]\nbroken").unwrap();
    let started = Instant::now();
    let d = Daemon::builder()
        .in_dir(state)
        .set("policy.dir", dir.to_string_lossy().to_string())
        .start();
    wait_for(Duration::from_secs(5), || d.get("/v1/ready").status == 200);
    eprintln!(
        "ready from cache after {:?} (including process start)",
        started.elapsed()
    );
    let status = d.get("/v1/status").json();
    assert_eq!(status["policy"]["source"], "cache", "{status}");
    assert!(
        status["policy"]["last_error"]
            .as_str()
            .unwrap()
            .contains("roles.toml:1"),
        "{status}"
    );
    assert_eq!(reason(&d, &erin_payment()), ("no_grant".to_string(), v1));
    // Missing entirely: still ready from the cache.
    let state = d.into_dir();
    std::fs::remove_dir_all(&dir).unwrap();
    let d = Daemon::builder()
        .in_dir(state)
        .set("policy.dir", dir.to_string_lossy().to_string())
        .start();
    assert_eq!(d.get("/v1/ready").status, 200);
    assert_eq!(d.get("/v1/status").json()["policy"]["source"], "cache");
}

#[test]
fn without_files_or_cache_the_agent_is_not_ready_and_checks_fail_closed() {
    let tmp = short_tempdir();
    let d = Daemon::builder()
        .set(
            "policy.dir",
            tmp.path().join("missing").to_string_lossy().to_string(),
        )
        .start();
    let r = d.get("/v1/ready");
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "not_ready");
    let r = d.post_json("/v1/check", &erin_payment());
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-warden-policy-version"), Some("none"));
}

#[test]
fn peer_subject_maps_the_calling_os_user() {
    let tmp = short_tempdir();
    let dir = copy_registry(tmp.path());
    let uid = nix::unistd::getuid().as_raw();
    std::fs::write(
        dir.join("cli-test.toml"),
        format!("[[cli]]\nuid = {uid}\nuser = \"dave\"\n"),
    )
    .unwrap();
    let d = Daemon::builder()
        .set("policy.dir", dir.to_string_lossy().to_string())
        .start();
    let body = json!({"subject": {"peer": true}, "permission": "finance.approve_payment", "action": "read", "surface": "cli"});
    assert_eq!(reason(&d, &body).0, "granted");
    let body = json!({"subject": {"peer": true}, "permission": "finance.approve_payment", "action": "approve", "surface": "cli"});
    assert_eq!(reason(&d, &body).0, "mfa_required");
}

#[test]
fn a_directory_that_appears_or_is_replaced_is_picked_up() {
    let tmp = short_tempdir();
    let dir = tmp.path().join("live");
    let d = Daemon::builder()
        .set("policy.dir", dir.to_string_lossy().to_string())
        .start();
    assert_eq!(d.get("/v1/ready").status, 503);
    // Deploy tools build the directory aside and rename it into place.
    let staged = copy_registry(&tmp.path().join("stage1"));
    std::fs::rename(&staged, &dir).unwrap();
    wait_for(Duration::from_secs(5), || d.get("/v1/ready").status == 200);
    let (before, v1) = reason(&d, &erin_payment());
    assert_eq!(before, "no_grant");
    // Replaced by a new rename: the new directory is served...
    let staged = copy_registry(&tmp.path().join("stage2"));
    edit(&staged.join("roles.toml"), GRANT_ERIN.0, GRANT_ERIN.1);
    std::fs::rename(&dir, tmp.path().join("old")).unwrap();
    std::fs::rename(&staged, &dir).unwrap();
    wait_for(Duration::from_secs(5), || {
        reason(&d, &erin_payment()).0 == "granted"
    });
    assert_ne!(reason(&d, &erin_payment()).1, v1);
    // ...and watched: an edit inside it is picked up too.
    edit(&dir.join("roles.toml"), GRANT_ERIN.1, GRANT_ERIN.0);
    wait_for(Duration::from_secs(5), || {
        reason(&d, &erin_payment()).0 == "no_grant"
    });
}
