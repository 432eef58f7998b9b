//! The audit API through the socket: durable appends, head, status, metrics,
//! shipping, backpressure, bad input, and the offline CLI.

use crate::support::Daemon;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub fn event(n: u64) -> Value {
    json!({
        "kind": "erp.stock_adjust",
        "actor": "u-42",
        "org_id": "acme",
        "permission": "inventory.adjust_stock",
        "action": "write",
        "target": format!("sku-{n}"),
        "outcome": "success",
        "roles": ["clerk"],
        "session_id": "s-1",
        "attrs": {"n": n, "qty": -3}
    })
}

pub fn audit_cli(d: &Daemon, args: &[&str]) -> std::process::Output {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let state = d.state_dir.to_string_lossy().to_string();
    all.extend_from_slice(&["--state-dir", &state]);
    d.cli(&all)
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not met in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn appends_are_acknowledged_with_seqs_and_shipped() {
    let d = Daemon::start();
    let r = d.post_json("/v1/audit/events", &json!({"events": [event(1)]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json()["first_seq"].as_u64().unwrap();
    assert_eq!(r.json()["last_seq"].as_u64(), Some(first));
    let batch: Vec<Value> = (2..=101).map(event).collect();
    let r = d.post_json("/v1/audit/events", &json!({"events": batch}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"first_seq": first + 1, "last_seq": first + 100})
    );

    let head = d.get("/v1/audit/head").json();
    assert!(head["seq"].as_u64().unwrap() >= first + 100);
    assert_eq!(head["hash"].as_str().map(str::len), Some(64));

    // Everything reaches the JSON Lines sink, once, in order.
    let sink = d.state_dir.join("audit-shipped.jsonl");
    wait_for(|| d.get("/v1/status").json()["audit"]["unshipped_count"] == 0);
    let lines: Vec<Value> = std::fs::read_to_string(&sink)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let rec = &lines.iter().find(|l| l["seq"] == first).unwrap()["record"];
    assert_eq!(rec["identity"]["user"], "u-42");
    assert_eq!(rec["identity"]["uid"], nix::unistd::getuid().as_raw());
    assert!(rec["identity"]["pid"].as_u64().unwrap() > 0);
    assert_eq!(rec["org_id"], "acme");
    assert_eq!(rec["permission"], "inventory.adjust_stock");
    assert_eq!(rec["target"], "sku-1");

    let status = d.get("/v1/status").json();
    let audit = &status["audit"];
    assert_eq!(audit["head_seq"], head["seq"]);
    assert_eq!(audit["backpressure"]["policy"], "block");
    assert_eq!(audit["writer_healthy"], true);
    assert!(audit["sink"].as_str().unwrap().starts_with("jsonl:"));

    let metrics = d.get("/metrics").text();
    for name in [
        "warden_audit_appended_total",
        "warden_audit_commits_total",
        "warden_audit_unshipped_records 0",
        "warden_audit_oldest_unshipped_age_seconds 0",
        "warden_audit_ack_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
}

#[test]
fn shutdown_signs_a_checkpoint_that_the_head_reports() {
    let d = Daemon::start();
    d.post_json("/v1/audit/events", &json!({"events": [event(1), event(2)]}));
    let dir = d.into_dir();
    let d = Daemon::builder().in_dir(dir).start();
    let head = d.get("/v1/audit/head").json();
    let cp = &head["checkpoint"];
    assert_eq!(cp["seq"], 2, "{head}");
    assert_eq!(cp["alg"], "EdDSA");
    assert!(cp["kid"].as_str().unwrap().starts_with("audit-"));
    assert!(cp["signed_at"].as_str().unwrap().ends_with('Z'));
    // Signed with the key ring's active `audit` key.
    let keys = d.get("/v1/admin/keys").json();
    let audit_key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "audit" && k["state"] == "active")
        .unwrap_or_else(|| panic!("no active audit key in {keys}"));
    assert_eq!(audit_key["kid"], cp["kid"]);
    // The published key verifies the log offline.
    let trust = format!(
        "{}={}",
        cp["kid"].as_str().unwrap(),
        cp["public_key"].as_str().unwrap()
    );
    let out = audit_cli(&d, &["verify", "--trust", &trust]);
    assert!(out.status.success(), "{out:?}");
    let other = format!(
        "{}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        cp["kid"].as_str().unwrap()
    );
    let out = audit_cli(&d, &["verify", "--trust", &other]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn bad_input_gets_a_clear_400() {
    let d = Daemon::start();
    let check = |body: &[u8], needle: &str| {
        let r = d
            .client()
            .request(
                "POST",
                "/v1/audit/events",
                &[("content-type", "application/json")],
                body,
            )
            .unwrap();
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.error_code(), "bad_request");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    };
    check(b"{not json", "line 1");
    check(br#"{"events": {}}"#, "events");
    check(br#"{"events": []}"#, "events");
    check(br#"{"events": [], "extra": 1}"#, "extra");
    let mut e = event(1);
    e["bogus"] = json!(1);
    check(json!({"events": [e]}).to_string().as_bytes(), "bogus");
    let mut e = event(1);
    e.as_object_mut().unwrap().remove("actor");
    check(json!({"events": [e]}).to_string().as_bytes(), "actor");
    let mut e = event(1);
    e["actor"] = json!("");
    check(
        json!({"events": [event(0), e]}).to_string().as_bytes(),
        "events[1].actor",
    );
    let mut e = event(1);
    e["kind"] = json!("token.issue");
    check(
        json!({"events": [e]}).to_string().as_bytes(),
        "recorded by the agent itself",
    );
    let mut e = event(1);
    e["kind"] = json!("Stock Adjust");
    check(
        json!({"events": [e]}).to_string().as_bytes(),
        "events[0].kind",
    );
    let mut e = event(1);
    e["attrs"] = json!("not an object");
    check(json!({"events": [e]}).to_string().as_bytes(), "attrs");
    let mut e = event(1);
    e["outcome"] = json!(7);
    check(json!({"events": [e]}).to_string().as_bytes(), "outcome");
    let too_many: Vec<Value> = (0..1001).map(event).collect();
    check(
        json!({"events": too_many}).to_string().as_bytes(),
        "at most 1000",
    );
    // Nothing of the above was recorded.
    assert_eq!(d.get("/v1/audit/head").json()["seq"], 0);
    assert_eq!(d.get("/v1/audit/events").status, 405);
}

#[test]
fn callers_without_audit_write_are_refused_and_recorded() {
    let rules = format!(
        "[[callers]]\nuids = [{}]\nallow = [\"status\", \"audit_read\"]\n",
        nix::unistd::getuid().as_raw()
    );
    let d = Daemon::builder().callers(&rules).start();
    let r = d.post_json("/v1/audit/events", &json!({"events": [event(1)]}));
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "caller_not_allowed");
    wait_for(|| d.get("/v1/audit/head").json()["seq"] == 1);
    let out = audit_cli(&d, &["tail", "-n", "1"]);
    assert!(out.status.success(), "{out:?}");
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rec = &line["record"];
    assert_eq!(rec["kind"], "caller.denied");
    assert_eq!(rec["outcome"], "deny");
    assert_eq!(rec["target"], "/v1/audit/events");
    assert_eq!(rec["attrs"]["op"], "audit_write");
    assert_eq!(rec["identity"]["uid"], nix::unistd::getuid().as_raw());
}

#[test]
fn block_policy_fails_closed_at_the_cap() {
    let d = Daemon::builder()
        .set("audit.sink.kind", "none")
        .set("audit.backpressure.max_unshipped_records", 5)
        .start();
    let batch: Vec<Value> = (1..=5).map(event).collect();
    assert_eq!(
        d.post_json("/v1/audit/events", &json!({"events": batch}))
            .status,
        200
    );
    let r = d.post_json("/v1/audit/events", &json!({"events": [event(6)]}));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "audit_backpressure");
    let status = d.get("/v1/status").json();
    assert_eq!(status["audit"]["unshipped_count"], 5);
    assert_eq!(status["audit"]["backpressure"]["over_cap"], false);
    assert!(d
        .get("/metrics")
        .text()
        .contains("warden_audit_rejected_total{reason=\"backpressure\"} 1"));
}

#[test]
fn bad_audit_config_is_reported_at_start() {
    let (d, _) = Daemon::builder()
        .set("audit.backpressure.policy", "drop_oldest")
        .set("audit.sink.retry_min", "soon")
        .prepare();
    let (status, text) = d.run_again();
    assert_eq!(status.code(), Some(64), "{text}");
    assert!(
        text.contains("audit.backpressure.policy") || text.contains("drop_oldest"),
        "{text}"
    );
}

#[test]
fn export_and_tail_print_json_lines() {
    let d = Daemon::start();
    let batch: Vec<Value> = (1..=10).map(event).collect();
    assert_eq!(
        d.post_json("/v1/audit/events", &json!({"events": batch}))
            .status,
        200
    );
    let out = audit_cli(&d, &["export", "--since", "1h"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    assert_eq!(lines[9]["record"]["target"], "sku-10");
    let out = audit_cli(&d, &["export", "--since", "2099-01-01T00:00:00Z"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out = audit_cli(&d, &["export", "--since", "yesterday-ish"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
    let out = audit_cli(&d, &["tail", "-n", "3"]);
    let seqs: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![8, 9, 10]);
}

#[test]
fn tail_follow_prints_new_records() {
    use std::io::{BufRead, BufReader};
    let d = Daemon::start();
    assert_eq!(
        d.post_json("/v1/audit/events", &json!({"events": [event(1)]}))
            .status,
        200
    );
    // Killed on drop, also when an assertion fails: a leaked `tail -f`
    // would hold the test runner's output open and hang the whole suite.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(
        std::process::Command::new(crate::support::warden_bin())
            .args(["audit", "tail", "-f", "-n", "1", "--state-dir"])
            .arg(&d.state_dir)
            .env_clear()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(
        d.post_json("/v1/audit/events", &json!({"events": [event(2)]}))
            .status,
        200
    );
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["seq"], 2);
    drop(child);
}

#[test]
fn a_failing_sink_keeps_records_and_retries() {
    let (mut d, env) = Daemon::builder()
        .set("audit.sink.path", "sink/out.jsonl")
        .set("audit.sink.retry_min", "20ms")
        .set("audit.sink.retry_max", "100ms")
        .prepare();
    // The sink's directory is a plain file: every shipment fails.
    std::fs::create_dir_all(&d.state_dir).unwrap();
    let blocker = d.state_dir.join("sink");
    std::fs::write(&blocker, b"not a directory").unwrap();
    d.spawn(&env);
    d.wait_healthy();
    let batch: Vec<Value> = (1..=7).map(event).collect();
    assert_eq!(
        d.post_json("/v1/audit/events", &json!({"events": batch}))
            .status,
        200
    );
    wait_for(|| {
        d.get("/metrics")
            .text()
            .lines()
            .any(|l| l.starts_with("warden_audit_ship_failures_total ") && !l.ends_with(" 0"))
    });
    let audit = &d.get("/v1/status").json()["audit"];
    assert_eq!(audit["unshipped_count"], 7);
    assert!(audit["oldest_unshipped_age_seconds"].is_u64(), "{audit}");
    // The sink comes back: the backlog drains, each record exactly once.
    std::fs::remove_file(&blocker).unwrap();
    wait_for(|| d.get("/v1/status").json()["audit"]["unshipped_count"] == 0);
    let text = std::fs::read_to_string(blocker.join("out.jsonl")).unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
}

fn unhex(s: &Value) -> Vec<u8> {
    hex::decode(s.as_str().unwrap()).unwrap()
}

fn hash32(s: &Value) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

#[test]
fn inclusion_proofs_verify_against_the_signed_checkpoint() {
    use base64::Engine as _;
    let d = Daemon::builder()
        .set("audit.checkpoint_every_records", 5)
        .start();
    for chunk in 0..5 {
        let batch: Vec<Value> = (1..=4).map(|i| event(chunk * 4 + i)).collect();
        assert_eq!(
            d.post_json("/v1/audit/events", &json!({"events": batch}))
                .status,
            200
        );
    }
    // Checkpoints at 8 and 16 (the commits that crossed 5 records since the
    // last one); 17..20 are not signed yet.
    for seq in 1..=16u64 {
        let r = d.get(&format!("/v1/audit/proof?seq={seq}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let p = r.json();
        assert_eq!(p["tree_size"], 16);
        assert_eq!(p["record"]["seq"], seq);
        let canonical = p["record_canonical"].as_str().unwrap();
        let leaf = warden::audit::leaf_hash(canonical.as_bytes());
        assert_eq!(hex::encode(leaf), p["leaf_hash"].as_str().unwrap());
        let path: Vec<[u8; 32]> = p["path"].as_array().unwrap().iter().map(hash32).collect();
        let cp = &p["checkpoint"];
        let root = hash32(&cp["merkle_root"]);
        assert!(warden::audit::verify_inclusion(
            &leaf,
            seq - 1,
            16,
            &path,
            &root
        ));
        let mut wrong = leaf;
        wrong[0] ^= 1;
        assert!(!warden::audit::verify_inclusion(
            &wrong,
            seq - 1,
            16,
            &path,
            &root
        ));
        // The checkpoint verifies with nothing but the documented payload
        // and the published key.
        let payload = format!(
            "{{\"head_hash\":\"{}\",\"host\":{},\"kid\":{},\"merkle_root\":\"{}\",\"seq\":16,\"signed_at_ms\":{},\"type\":\"warden.audit.checkpoint\",\"v\":1}}",
            cp["hash"].as_str().unwrap(),
            p["record"]["host"],
            cp["kid"],
            cp["merkle_root"].as_str().unwrap(),
            cp["signed_at_ms"]
        );
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let key = b64.decode(cp["public_key"].as_str().unwrap()).unwrap();
        let sig = b64.decode(cp["signature"].as_str().unwrap()).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(payload.as_bytes(), &sig)
            .expect("checkpoint signature verifies offline");
    }
    let r = d.get("/v1/audit/proof?seq=17");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "audit_proof_unavailable");
    for bad in ["", "?seq=abc", "?seq=0", "?seq=1&x=2"] {
        let r = d.get(&format!("/v1/audit/proof{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }

    // The log signed at 16 extends the one signed at 8.
    let r = d.get("/v1/audit/consistency?from=8&to=16");
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json();
    let path: Vec<[u8; 32]> = c["path"].as_array().unwrap().iter().map(hash32).collect();
    let (r8, r16) = (
        hash32(&c["from"]["merkle_root"]),
        hash32(&c["to"]["merkle_root"]),
    );
    assert!(warden::audit::verify_consistency(8, 16, &r8, &r16, &path));
    assert!(!warden::audit::verify_consistency(8, 16, &r16, &r16, &path));
    let same = d.get("/v1/audit/consistency?from=16&to=16").json();
    assert_eq!(same["path"], json!([]));
    let r = d.get("/v1/audit/consistency?from=3&to=16");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "audit_proof_unavailable");
    for bad in ["", "?from=8", "?from=8&to=x", "?to=16&from=8&extra=1"] {
        let r = d.get(&format!("/v1/audit/consistency{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

#[test]
fn reloads_are_recorded_and_audit_changes_need_a_restart() {
    let d = Daemon::start();
    let text = std::fs::read_to_string(&d.config_path).unwrap();
    std::fs::write(&d.config_path, format!("{text}\n[audit]\nmax_batch = 64\n")).unwrap();
    let r = d.post_json("/v1/admin/reload", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["config"]["restart_needed"], json!(["audit"]));
    wait_for(|| d.get("/v1/audit/head").json()["seq"] == 1);
    let out = audit_cli(&d, &["tail", "-n", "1"]);
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["record"]["kind"], "config.reload");
    assert_eq!(line["record"]["outcome"], "applied");
    assert_eq!(line["record"]["attrs"]["trigger"], "api");
}

#[test]
fn alert_policy_keeps_recording_loudly_up_to_the_hard_limit() {
    let d = Daemon::builder()
        .set("audit.sink.kind", "none")
        .set("audit.backpressure.policy", "alert")
        .set("audit.backpressure.max_unshipped_records", 3)
        .set("audit.backpressure.hard_max_records", 5)
        .start();
    for n in 1..=5 {
        let r = d.post_json("/v1/audit/events", &json!({"events": [event(n)]}));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let status = d.get("/v1/status").json();
    assert_eq!(status["audit"]["backpressure"]["over_cap"], true);
    assert!(d
        .get("/metrics")
        .text()
        .contains("warden_audit_over_cap_total 2"));
    assert!(d.log().contains("audit backlog above its cap"));
    let r = d.post_json("/v1/audit/events", &json!({"events": [event(6)]}));
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "audit_backpressure");
    assert_eq!(d.get("/v1/audit/head").json()["seq"], 5);
}

#[test]
fn retention_prunes_shipped_records_and_the_rest_still_verifies() {
    let d = Daemon::builder()
        .set("audit.checkpoint_every_records", 5)
        .set("audit.retention.keep_shipped", "1ms")
        .start();
    for chunk in 0..4 {
        let batch: Vec<Value> = (1..=5).map(|i| event(chunk * 5 + i)).collect();
        assert_eq!(
            d.post_json("/v1/audit/events", &json!({"events": batch}))
                .status,
            200
        );
    }
    // Shipped, and pruned up to the newest checkpoint (20).
    wait_for(|| {
        d.get("/metrics")
            .text()
            .contains("warden_audit_pruned_total 20")
    });
    let sink = std::fs::read_to_string(d.state_dir.join("audit-shipped.jsonl")).unwrap();
    assert_eq!(sink.lines().count(), 20);
    assert_eq!(
        d.post_json("/v1/audit/events", &json!({"events": [event(21)]}))
            .status,
        200
    );
    let out = audit_cli(&d, &["verify"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("records 21..21"), "{text}");
    let out = audit_cli(&d, &["export", "--since", "1h"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // Shutdown signs a checkpoint at 21 and, with 1 ms retention, prunes it
    // too. The next run continues the chain from that anchor; its records
    // verify and have proofs, pruned ones do not.
    let dir = d.into_dir();
    let d = Daemon::builder()
        .in_dir(dir)
        .set("audit.checkpoint_every_records", 5)
        .start();
    let batch: Vec<Value> = (22..=26).map(event).collect();
    let r = d.post_json("/v1/audit/events", &json!({"events": batch}));
    assert_eq!(r.json(), json!({"first_seq": 22, "last_seq": 26}));
    let out = audit_cli(&d, &["verify"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("records 22..26"), "{text}");
    let r = d.get("/v1/audit/proof?seq=23");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = d.get("/v1/audit/proof?seq=3");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("pruned"), "{}", r.text());
}
