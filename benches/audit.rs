//! Audit recorder throughput and acknowledgement latency, in-process.
//!
//! `cargo bench --bench audit` prints, for 1, 8 and 64 concurrent writers
//! and batches of 1 and 100 events: durable events per second, appends per
//! second, and p50/p99/max acknowledgement latency (enqueue to durable ack).
//! Also the cost of the non-blocking `submit` used on hot paths. The
//! database lives in a temp dir (set TMPDIR to bench another disk).
//! `WARDEN_BENCH_SECS` sets the measuring time per case (default 3).
//!
//! The same closed-loop table is then measured through the socket: the real
//! `warden` binary on a temp socket, each writer a blocking HTTP/1.1
//! keep-alive connection posting `POST /v1/audit/events`. Pass `recorder` or
//! `socket` to run only one half.

use std::sync::Arc;
use std::time::{Duration, Instant};
use warden::audit::{Config, Event, Identity, Metrics, Recorder, RingSigner};
use warden::clock;
use warden::store::Store;

fn event(i: u64) -> Event {
    Event {
        kind: "erp.stock_adjust".into(),
        identity: Identity {
            user: Some(format!("u-{}", i % 1000)),
            roles: vec!["clerk".into(), "warehouse".into()],
            session: Some("sess-0123456789".into()),
            uid: Some(1000),
            pid: Some(4242),
        },
        permission: Some("inventory.adjust_stock".into()),
        action: Some("write".into()),
        org_id: Some("acme".into()),
        kid: Some("k-2026-12".into()),
        target: Some(format!("sku-{i}")),
        outcome: "success".into(),
        reason: Some("cycle count".into()),
        attrs: [
            ("qty".to_string(), serde_json::json!(-3)),
            ("warehouse".to_string(), serde_json::json!("north-1")),
        ]
        .into_iter()
        .collect(),
        ts_ms: None,
    }
}

fn start(dir: &std::path::Path) -> Recorder {
    let store = Store::open(dir).expect("open store");
    let config = Config {
        max_unshipped_records: u64::MAX / 4,
        max_unshipped_bytes: u64::MAX / 4,
        hard_max_records: u64::MAX / 4,
        hard_max_bytes: u64::MAX / 4,
        ..Config::default()
    };
    Recorder::start_with_sink(
        &store,
        "bench-host",
        config,
        Arc::new(RingSigner::generate("audit-bench").expect("key")),
        clock::system(),
        Metrics::unregistered().expect("metrics"),
        None,
    )
    .expect("start recorder")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A minimal blocking HTTP/1.1 client: one keep-alive connection.
struct Conn {
    stream: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
}

impl Conn {
    fn connect(path: &std::path::Path) -> Conn {
        Conn {
            stream: std::os::unix::net::UnixStream::connect(path).expect("connect"),
            buf: Vec::with_capacity(4096),
        }
    }

    /// Posts `body`, returns (status, body).
    fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        use std::io::{Read, Write};
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: warden\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).expect("write");
        self.stream.write_all(body).expect("write");
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let status: u16 = head[9..12].parse().expect("status");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().expect("length"))
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut chunk).expect("read");
                    assert!(n > 0, "connection closed");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                return (status, self.buf[end + 4..end + 4 + len].to_vec());
            }
        }
    }
}

fn wire_batch(start: u64, batch: usize) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (start..start + batch as u64)
        .map(|i| {
            serde_json::json!({
                "kind": "erp.stock_adjust", "actor": format!("u-{}", i % 1000),
                "org_id": "acme", "permission": "inventory.adjust_stock", "action": "write",
                "target": format!("sku-{i}"), "outcome": "success", "reason": "cycle count",
                "roles": ["clerk", "warehouse"], "session_id": "sess-0123456789",
                "kid": "k-2026-12", "attrs": {"qty": -3, "warehouse": "north-1"}
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "events": events })).expect("json")
}

fn socket_bench(secs: u64) {
    let dir = tempfile::Builder::new()
        .prefix("wb")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            r#"mode = "development"
[server]
socket = "{}"
max_connections = 1024
[state]
dir = "{}"
[log]
format = "json"
level = "warn"
[[callers]]
name = "bench"
agent_user = true
allow = ["all"]
[audit.backpressure]
max_unshipped_records = 100000000
max_unshipped_bytes = 100000000000
"#,
            socket.display(),
            dir.path().join("state").display()
        ),
    )
    .expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start warden");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "warden did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "\nthrough the socket (real `warden` binary, one keep-alive connection per writer):\n"
    );
    println!("| writers | batch | events/s | requests/s | p50 ack | p99 ack | max ack |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for writers in [1usize, 8, 64] {
        for batch in [1usize, 100] {
            let began = Instant::now();
            let deadline = began + Duration::from_secs(secs);
            let threads: Vec<_> = (0..writers)
                .map(|w| {
                    let socket = socket.clone();
                    std::thread::spawn(move || {
                        let mut conn = Conn::connect(&socket);
                        let mut lat = Vec::new();
                        let mut i = (w as u64) << 32;
                        while Instant::now() < deadline {
                            let body = wire_batch(i, batch);
                            i += batch as u64;
                            let t = Instant::now();
                            let (status, resp) = conn.post("/v1/audit/events", &body);
                            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
                            lat.push(t.elapsed());
                        }
                        lat
                    })
                })
                .collect();
            let mut lat: Vec<Duration> = threads
                .into_iter()
                .flat_map(|t| t.join().expect("writer"))
                .collect();
            let elapsed = began.elapsed().as_secs_f64();
            lat.sort();
            let requests = lat.len() as f64;
            println!(
                "| {writers} | {batch} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
                requests * batch as f64 / elapsed,
                requests / elapsed,
                percentile(&lat, 0.50).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3,
                lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            );
        }
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = child.wait().expect("wait");
    assert!(status.success(), "warden exited with {status}");
}

fn main() {
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let secs: u64 = std::env::var("WARDEN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    if only.as_deref() != Some("socket") {
        recorder_bench(secs);
    }
    if only.as_deref() != Some("recorder") {
        socket_bench(secs);
    }
}

fn recorder_bench(secs: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("| writers | batch | events/s | appends/s | p50 ack | p99 ack | max ack |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for writers in [1usize, 8, 64] {
        for batch in [1usize, 100] {
            let dir = tempfile::tempdir().expect("tempdir");
            let recorder = start(dir.path());
            let deadline = Instant::now() + Duration::from_secs(secs);
            let began = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..writers {
                let r = recorder.clone();
                tasks.push(rt.spawn(async move {
                    let mut lat = Vec::new();
                    let mut i = (w as u64) << 32;
                    while Instant::now() < deadline {
                        let events = (0..batch)
                            .map(|_| {
                                i += 1;
                                event(i)
                            })
                            .collect();
                        let t = Instant::now();
                        r.append(events).await.expect("append");
                        lat.push(t.elapsed());
                    }
                    lat
                }));
            }
            let mut lat: Vec<Duration> = Vec::new();
            for t in tasks {
                lat.extend(rt.block_on(t).expect("writer task"));
            }
            let elapsed = began.elapsed().as_secs_f64();
            lat.sort();
            let appends = lat.len() as f64;
            println!(
                "| {writers} | {batch} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
                appends * batch as f64 / elapsed,
                appends / elapsed,
                percentile(&lat, 0.50).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3,
                lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            );
            recorder.shutdown().expect("shutdown");
        }
    }
    // Open loop: a fixed offered load of batches of 100, latency measured
    // from each batch's scheduled send time (no coordinated omission).
    println!("\n| offered events/s | writers | batch | achieved events/s | p50 ack | p99 ack | max ack |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (rate, writers) in [(20_000u64, 8usize), (50_000, 8), (50_000, 64)] {
        let batch = 100usize;
        let dir = tempfile::tempdir().expect("tempdir");
        let recorder = start(dir.path());
        let per_writer = rate as f64 / batch as f64 / writers as f64;
        let period = Duration::from_secs_f64(1.0 / per_writer);
        let began = Instant::now();
        let deadline = began + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for w in 0..writers {
            let r = recorder.clone();
            tasks.push(rt.spawn(async move {
                let mut lat = Vec::new();
                let mut i = (w as u64) << 32;
                // Stagger writers across one period.
                let mut next = began + period.mul_f64(w as f64 / writers as f64);
                while next < deadline {
                    tokio::time::sleep_until(next.into()).await;
                    let events = (0..batch)
                        .map(|_| {
                            i += 1;
                            event(i)
                        })
                        .collect();
                    r.append(events).await.expect("append");
                    lat.push(next.elapsed());
                    next += period;
                }
                lat
            }));
        }
        let mut lat: Vec<Duration> = Vec::new();
        for t in tasks {
            lat.extend(rt.block_on(t).expect("writer task"));
        }
        let elapsed = began.elapsed().as_secs_f64();
        lat.sort();
        println!(
            "| {rate} | {writers} | {batch} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            lat.len() as f64 * batch as f64 / elapsed,
            percentile(&lat, 0.50).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        recorder.shutdown().expect("shutdown");
    }
    // Hot path: submit() cost per event, and time until all are durable.
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = start(dir.path());
    let n = 100_000u64;
    let t = Instant::now();
    for i in 0..n {
        recorder.submit(event(i)).expect("submit");
    }
    let submit = t.elapsed();
    rt.block_on(recorder.flush()).expect("flush");
    let durable = t.elapsed();
    println!(
        "\nsubmit: {:.2} us/event on the caller; {n} events durable after {:.0} ms ({:.0} events/s)",
        submit.as_secs_f64() * 1e6 / n as f64,
        durable.as_secs_f64() * 1e3,
        n as f64 / durable.as_secs_f64()
    );
    recorder.shutdown().expect("shutdown");
}
