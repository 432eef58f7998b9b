//! Crash safety: SIGKILL the agent while several clients append; after a
//! restart every acknowledged event is present, exactly once, at the seq it
//! was acknowledged with, and the chain verifies.

use crate::audit_api::audit_cli;
use crate::support::{Client, Daemon};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn acknowledged_events_survive_sigkill_under_load() {
    let mut d = Daemon::start();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..6u64 {
        let socket = d.socket.clone();
        let stop = stop.clone();
        clients.push(std::thread::spawn(move || {
            // (client, n) -> acknowledged seq
            let mut acked: Vec<((u64, u64), u64)> = Vec::new();
            let Ok(mut client) = Client::connect(&socket) else {
                return acked;
            };
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let size = 1 + (n % 20);
                let events: Vec<Value> = (n..n + size)
                    .map(|i| {
                        json!({"kind": "erp.order_cancel", "actor": format!("client-{c}"),
                               "org_id": "acme", "outcome": "success",
                               "attrs": {"client": c, "n": i}})
                    })
                    .collect();
                match client.post_json("/v1/audit/events", &json!({"events": events})) {
                    Ok(r) if r.status == 200 => {
                        let v = r.json();
                        let first = v["first_seq"].as_u64().unwrap();
                        assert_eq!(v["last_seq"].as_u64().unwrap(), first + size - 1);
                        for k in 0..size {
                            acked.push(((c, n + k), first + k));
                        }
                    }
                    // The agent died mid-request: unacknowledged, may or may
                    // not be stored.
                    _ => break,
                }
                n += size;
            }
            acked
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    d.kill();
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<((u64, u64), u64)> = clients
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(acked.len() > 100, "too little load: {} events", acked.len());

    d.spawn(&[]);
    d.wait_healthy();
    let out = audit_cli(&d, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = audit_cli(&d, &["export", "--since", "1h"]);
    assert!(out.status.success());
    let mut stored: HashMap<(u64, u64), u64> = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let attrs = &v["record"]["attrs"];
        if let (Some(c), Some(n)) = (attrs["client"].as_u64(), attrs["n"].as_u64()) {
            let prev = stored.insert((c, n), v["seq"].as_u64().unwrap());
            assert!(prev.is_none(), "event {c}/{n} stored twice");
        }
    }
    for (key, seq) in &acked {
        assert_eq!(
            stored.get(key),
            Some(seq),
            "acknowledged event {key:?} lost or moved"
        );
    }
    // The restarted agent continues the chain.
    let head = d.get("/v1/audit/head").json()["seq"].as_u64().unwrap();
    let r = d.post_json(
        "/v1/audit/events",
        &json!({"events": [{"kind": "erp.after_crash", "actor": "u", "org_id": "acme", "outcome": "success"}]}),
    );
    assert_eq!(r.json()["first_seq"].as_u64(), Some(head + 1));
}
