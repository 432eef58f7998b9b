//! The generator against real servers on temp Unix sockets: the floor,
//! servers that answer errors, and one that hangs up on every connection.

use std::convert::Infallible;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use warden_loadgen::{run, Error, RequestSpec, RunConfig};

fn config(socket: &Path, request: RequestSpec, connections: usize) -> RunConfig {
    RunConfig {
        socket: socket.to_path_buf(),
        request,
        connections,
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
    }
}

fn health() -> RequestSpec {
    RequestSpec::new("GET", "/v1/health").unwrap()
}

/// Starts the floor in-process; dropping the sender stops it.
fn start_floor(socket: &Path) -> oneshot::Sender<()> {
    let listener = UnixListener::bind(socket).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(warden_loadgen::floor::serve(listener, async move {
        let _ = rx.await;
    }));
    tx
}

/// Serves with `handler` on every connection until the test ends.
fn start_server<F>(socket: &Path, handler: F)
where
    F: Fn(StatusCode, Bytes) -> StatusCode + Send + Sync + Copy + 'static,
{
    let listener = UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let status = handler(StatusCode::OK, body);
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
                    *resp.status_mut() = status;
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

#[tokio::test]
async fn floor_run_is_clean_and_counts_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("f.sock");
    let _stop = start_floor(&socket);
    let report = run(config(&socket, health(), 4)).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(report.counts.requests > 10, "{report}");
    assert_eq!(
        report.counts.statuses.get(&200),
        Some(&report.counts.requests)
    );
    assert_eq!(report.counts.reconnects, 0, "{report}");
    assert!(
        report.duration_s >= 0.3 && report.duration_s < 2.0,
        "{report}"
    );
    assert!(report.latency_us.p50 > 0.0 && report.latency_us.p50 <= report.latency_us.p99);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["connections"], 4);
    assert!(json["latency_us"]["p999"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn non_2xx_answers_are_counted_apart_from_errors() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("e.sock");
    start_server(&socket, |_, _| StatusCode::SERVICE_UNAVAILABLE);
    let report = run(config(&socket, health(), 2)).await.unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.counts.errors, 0, "{report}");
    assert!(report.counts.requests > 0);
    assert_eq!(report.counts.non_2xx, report.counts.requests, "{report}");
    assert_eq!(
        report.counts.statuses.get(&503),
        Some(&report.counts.requests)
    );
}

#[tokio::test]
async fn json_body_reaches_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("b.sock");
    start_server(&socket, |ok, body| {
        if body.as_ref() == br#"{"permission":"inventory.adjust_stock"}"# {
            ok
        } else {
            StatusCode::BAD_REQUEST
        }
    });
    let request = RequestSpec::new("POST", "/v1/check")
        .unwrap()
        .json_body(r#"{"permission":"inventory.adjust_stock"}"#)
        .unwrap();
    let report = run(config(&socket, request, 1)).await.unwrap();
    assert!(report.is_clean(), "{report}");
}

#[tokio::test]
async fn a_server_that_hangs_up_gives_errors_and_the_run_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("h.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let started = Instant::now();
    let report = run(config(&socket, health(), 2)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(report.counts.requests, 0);
    assert!(report.counts.errors > 0, "{report}");
    assert!(report.counts.reconnects > 0, "{report}");
    assert!(report.counts.first_error.is_some());
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("t.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut cfg = config(&socket, health(), 1);
    cfg.timeout = Duration::from_millis(100);
    let report = run(cfg).await.unwrap();
    assert_eq!(report.counts.requests, 0);
    assert!(report.counts.errors >= 2, "{report}");
    assert!(report.counts.first_error.unwrap().contains("timed out"));
}

#[tokio::test]
async fn a_missing_socket_fails_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let err = run(config(&dir.path().join("none.sock"), health(), 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(err.to_string().contains("none.sock"));
    let mut cfg = config(&dir.path().join("none.sock"), health(), 0);
    assert!(matches!(run(cfg.clone()).await, Err(Error::NoConnections)));
    cfg.connections = 1;
    cfg.duration = Duration::ZERO;
    assert!(matches!(run(cfg).await, Err(Error::ZeroDuration)));
}

/// Kills the child on drop so a failing assertion leaves no server behind.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn binaries_compare_side_by_side_as_json_and_floor_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.sock");
    let b = dir.path().join("b.sock");
    let mut floor_a = Reaper(
        Command::new(env!("CARGO_BIN_EXE_floor"))
            .args(["--threads", "1", "--socket"])
            .arg(&a)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _floor_b = Reaper(
        Command::new(env!("CARGO_BIN_EXE_floor"))
            .arg("--socket")
            .arg(&b)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&a);
    wait_for(&b);
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--socket")
        .arg(&a)
        .arg("--baseline")
        .arg(&b)
        .args([
            "-c",
            "1,2",
            "-d",
            "200ms",
            "-w",
            "50ms",
            "--json",
            "--require-clean",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["comparisons"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["connections"], 2);
    assert!(rows[0]["target"]["requests"].as_u64().unwrap() > 0);
    assert!(rows[0]["ratio_p50"].as_f64().unwrap() > 0.0);

    // Text mode on a multi-threaded generator, bad arguments and a missing
    // socket.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--socket")
        .arg(&a)
        .args(["-c", "3", "-d", "100ms", "-w", "0s", "--threads", "2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("p99.9"), "{text}");
    assert!(text.contains("3 connection(s)"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--socket", "/nonexistent.sock", "-d", "100ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--socket")
        .arg(&a)
        .args(["--body", "{broken"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // SIGTERM: the floor exits 0 and removes its socket.
    let pid = floor_a.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = floor_a.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!a.exists());
}
