//! The caller ACL: peers identified by SO_PEERCRED, mapped to operation classes.

use crate::support::Daemon;
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

fn my_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

#[test]
fn a_caller_matching_no_rule_only_reaches_open_endpoints() {
    let d = Daemon::builder().no_callers().start();
    assert_eq!(d.get("/v1/health").status, 200);
    assert_eq!(d.get("/v1/ready").status, 200);
    assert_eq!(d.get("/metrics").status, 200);
    let r = d.get("/v1/status");
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "caller_not_allowed");
    let r = d.post_json("/v1/admin/reload", &serde_json::json!({}));
    assert_eq!(r.status, 403);
    let metrics = d.get("/metrics").text();
    assert!(
        metrics.contains("warden_caller_denied_total{op=\"status\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warden_caller_denied_total{op=\"admin\"} 1"),
        "{metrics}"
    );
    assert!(d.log().contains("caller not allowed"));
}

#[test]
fn rules_grant_only_the_listed_classes() {
    let rules = format!("[[callers]]\nuids = [{}]\nallow = [\"status\"]\n", my_uid());
    let d = Daemon::builder().callers(&rules).start();
    let mut c = d.client();
    assert_eq!(c.get("/v1/status").unwrap().status, 200);
    let r = c
        .post_json("/v1/admin/reload", &serde_json::json!({}))
        .unwrap();
    assert_eq!(r.status, 403);
    // The refused request's body was drained: the connection stays usable,
    // also past the header timeout.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(c.get("/v1/status").unwrap().status, 200);
}

#[test]
fn sighup_reloads_the_acl_and_rejects_a_broken_config() {
    let d = Daemon::start();
    let mut keep_alive = d.client();
    assert_eq!(keep_alive.get("/v1/status").unwrap().status, 200);

    // Narrow the ACL in the file and reload: even an open connection sees it.
    let text = std::fs::read_to_string(&d.config_path).unwrap();
    let narrowed = text.replace("allow = [\"all\"]", "allow = [\"check\"]");
    assert_ne!(text, narrowed);
    std::fs::write(&d.config_path, &narrowed).unwrap();
    d.signal(Signal::SIGHUP);
    wait_for(|| keep_alive.get("/v1/status").unwrap().status == 403);

    // A broken file is rejected; the narrowed ACL stays in force.
    std::fs::write(&d.config_path, format!("{narrowed}\nnot_an_option = 1\n")).unwrap();
    d.signal(Signal::SIGHUP);
    wait_for(|| d.log().contains("config reload rejected"));
    assert_eq!(d.get("/v1/status").status, 403);
    assert!(d
        .get("/metrics")
        .text()
        .contains("warden_reloads_total{outcome=\"rejected\",what=\"config\"} 1"));
}

#[test]
fn admin_reload_endpoint_reports_what_changed() {
    let d = Daemon::start();
    let text = std::fs::read_to_string(&d.config_path).unwrap();
    std::fs::write(
        &d.config_path,
        text.replace("socket_mode = \"0660\"", "socket_mode = \"0600\""),
    )
    .unwrap();
    let r = d.post_json("/v1/admin/reload", &serde_json::json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["config"]["outcome"], "applied");
    assert_eq!(
        v["config"]["restart_needed"],
        serde_json::json!(["server.socket"])
    );
    let r = d.post_json("/v1/admin/reload", &serde_json::json!({"force": true}));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("force"));
}

/// As root, a client running under another uid is judged by its own uid.
#[test]
fn another_uid_is_identified_by_the_kernel() {
    if my_uid() != 0 {
        eprintln!("skipped: needs root to run a client under another uid");
        return;
    }
    let nobody = 65534u32;
    let rules = format!(
        "[[callers]]\nuids = [{nobody}]\nallow = [\"check\"]\n[[callers]]\nagent_user = true\nallow = [\"all\"]\n"
    );
    let d = Daemon::builder()
        .callers(&rules)
        .set("server.socket_mode", "0666")
        .start();
    std::fs::set_permissions(&d.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let client = |path: &str| -> String {
        let script = format!(
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\n\
             s.sendall(b'GET {path} HTTP/1.1\\r\\nhost: w\\r\\n\\r\\n')\n\
             print(s.recv(4096).decode().split(' ')[1])",
            d.socket.to_str().unwrap()
        );
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .uid(nobody)
            .gid(nobody)
            .output()
            .expect("run python3 as nobody");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(client("/v1/health"), "200");
    assert_eq!(client("/v1/status"), "403");
    // The agent's own uid (root) is still allowed.
    assert_eq!(d.get("/v1/status").status, 200);
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not met in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}
