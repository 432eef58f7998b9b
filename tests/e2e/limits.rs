//! Bad input and abusive clients: the right 4xx, and everyone else keeps
//! being served meanwhile.

use crate::support::{Client, Daemon};
use std::io::Read;
use std::time::{Duration, Instant};

#[test]
fn malformed_requests_get_clear_client_errors() {
    let d = Daemon::start();
    let r = d
        .client()
        .request(
            "POST",
            "/v1/admin/reload",
            &[("content-type", "application/json")],
            b"{not json",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "bad_request");

    let r = d
        .client()
        .request(
            "POST",
            "/v1/admin/reload",
            &[("content-type", "text/plain")],
            b"{}",
        )
        .unwrap();
    assert_eq!(r.status, 415);
    assert_eq!(r.error_code(), "unsupported_media_type");

    let r = d.client().request("POST", "/v1/health", &[], b"").unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.error_code(), "method_not_allowed");

    let r = d
        .client()
        .request("DELETE", "/v1/status", &[], b"")
        .unwrap();
    assert_eq!(r.status, 405);

    let r = d.get("/v2/whatever");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");

    // Garbage on the wire: hyper answers 400 and closes; the agent lives on.
    let mut c = d.client();
    c.send_raw(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(d.get("/v1/health").status, 200);
    assert!(!d.get("/metrics").text().contains("status=\"500\""));
}

#[test]
fn oversized_bodies_get_413_declared_or_streamed() {
    let d = Daemon::builder().set("server.max_body_bytes", 64).start();
    let big = vec![b' '; 1000];
    let r = d
        .client()
        .request(
            "POST",
            "/v1/admin/reload",
            &[("content-type", "application/json")],
            &big,
        )
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "payload_too_large");

    // Chunked, so the size is only known while reading.
    let mut c = d.client();
    let mut req =
        b"POST /v1/admin/reload HTTP/1.1\r\nhost: w\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"20\r\n");
        req.extend_from_slice(&[b' '; 32]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send_raw(&req).unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(d.get("/v1/health").status, 200);
}

#[test]
fn dribbled_headers_are_cut_off_while_others_are_served() {
    let d = Daemon::builder()
        .set("server.header_read_timeout", "1s")
        .start();
    let mut slow = d.client();
    slow.send_raw(b"GET /v1/health HTTP/1.1\r\nhost: w\r\n")
        .unwrap();
    let started = Instant::now();
    // Meanwhile another client is served promptly.
    for _ in 0..5 {
        slow.send_raw(b"x-dribble: 1\r\n").ok();
        assert_eq!(d.get("/v1/health").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    // The slow client is disconnected once the header timeout passes.
    let mut buf = Vec::new();
    let _ = slow.stream().read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "slow client held on for {waited:?}"
    );
}

#[test]
fn slow_bodies_get_408() {
    let d = Daemon::builder()
        .set("server.body_read_timeout", "500ms")
        .start();
    let mut c = d.client();
    c.send_raw(b"POST /v1/admin/reload HTTP/1.1\r\nhost: w\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n{").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.error_code(), "request_timeout");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let d = Daemon::builder()
        .set("server.idle_timeout", "500ms")
        .start();
    let mut c = d.client();
    assert_eq!(c.get("/v1/health").unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    let mut buf = [0u8; 16];
    let n = c.stream().read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "idle connection should have been closed");
}

#[test]
fn connections_beyond_the_limit_are_refused_and_counted() {
    let d = Daemon::builder().set("server.max_connections", 2).start();
    // The readiness probe's connection may still be winding down: retry
    // until two connections are held open.
    let held = |d: &Daemon| loop {
        if let Ok(mut c) = Client::connect(&d.socket) {
            if c.get("/v1/health").is_ok() {
                return c;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let a = held(&d);
    let b = held(&d);
    let mut c = Client::connect(&d.socket).unwrap();
    assert!(
        c.get("/v1/health").is_err(),
        "third connection should be closed"
    );
    drop(a);
    drop(b);
    // Once others leave, new connections are served again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(r) = Client::connect(&d.socket).and_then(|mut c| c.get("/metrics")) {
            let text = r.text();
            let rejected: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("warden_connections_rejected_total "))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(rejected >= 1, "{text}");
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keep_alive_outlives_the_header_timeout_while_idle() {
    // Regression: hyper's header timeout also ran between requests, closing
    // idle keep-alive connections long before idle_timeout.
    let d = Daemon::builder()
        .set("server.header_read_timeout", "300ms")
        .set("server.idle_timeout", "30s")
        .start();
    let mut c = d.client();
    assert_eq!(c.get("/v1/health").unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(c.get("/v1/health").unwrap().status, 200);
}
