//! Health, readiness, status, metrics and the common response headers.

use crate::support::Daemon;
use std::os::unix::fs::PermissionsExt;

#[test]
fn health_ready_status_and_metrics_answer() {
    let d = Daemon::start();
    let health = d.get("/v1/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
    assert!(health.header("x-warden-policy-version").is_some());
    assert!(health.header("x-request-id").is_some());
    assert_eq!(health.header("content-type"), Some("application/json"));

    assert_eq!(d.get("/v1/ready").status, 200);

    let status = d.get("/v1/status");
    assert_eq!(status.status, 200);
    let s = status.json();
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["mode"], "development");
    assert!(s["uptime_seconds"].is_u64());
    assert_eq!(s["pid"].as_u64(), Some(u64::from(d.pid().as_raw() as u32)));
    assert_eq!(s["host_id"].as_str().map(str::len), Some(32));

    let metrics = d.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text();
    for name in [
        "warden_requests_total{route=\"/v1/health\",status=\"200\"}",
        "warden_request_duration_seconds_bucket",
        "warden_open_connections",
        "warden_build_info{version=",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
}

#[test]
fn every_response_carries_the_headers_even_errors() {
    let d = Daemon::start();
    let r = d.get("/v1/nope");
    assert_eq!(r.status, 404);
    assert!(r.header("x-warden-policy-version").is_some());
    assert_eq!(r.error_code(), "not_found");
}

#[test]
fn caller_request_id_is_echoed_when_safe() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c
        .request("GET", "/v1/health", &[("x-request-id", "erp-req-42")], b"")
        .unwrap();
    assert_eq!(r.header("x-request-id"), Some("erp-req-42"));
    let r = c
        .request(
            "GET",
            "/v1/health",
            &[("x-request-id", "bad id with spaces")],
            b"",
        )
        .unwrap();
    assert_ne!(r.header("x-request-id"), Some("bad id with spaces"));
}

#[test]
fn socket_is_created_with_the_configured_mode() {
    let d = Daemon::start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    drop(d);
    let d = Daemon::builder().set("server.socket_mode", "0600").start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let d = Daemon::start();
    let mut c = d.client();
    for _ in 0..50 {
        assert_eq!(c.get("/v1/health").unwrap().status, 200);
    }
}

#[test]
fn status_cli_prints_the_agent_status() {
    let d = Daemon::start();
    let out = d.cli(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let out = d.cli(&["version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("agent  0."), "{text}");
}

#[test]
fn client_cli_reports_an_unreachable_agent() {
    let dir = crate::support::short_tempdir();
    let out = std::process::Command::new(crate::support::warden_bin())
        .args(["status", "--socket"])
        .arg(dir.path().join("none.sock"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the agent"));
}
