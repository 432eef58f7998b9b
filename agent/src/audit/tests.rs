use super::*;
use crate::clock::{Clock, ManualClock};
use proptest::prelude::*;
use serde_json::json;
use std::path::Path;

const T0: i64 = 1_780_000_000_000;

fn signer() -> Arc<dyn CheckpointSigner> {
    Arc::new(RingSigner::generate("audit-test-1").unwrap())
}

fn quiet_config() -> Config {
    Config {
        checkpoint_every_records: 1000,
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..Config::default()
    }
}

struct Rig {
    store: Store,
    recorder: Recorder,
    clock: Arc<ManualClock>,
}

fn rig(dir: &Path, config: Config) -> Rig {
    rig_with(dir, config, signer())
}

fn rig_with(dir: &Path, config: Config, signer: Arc<dyn CheckpointSigner>) -> Rig {
    let store = Store::open(dir).unwrap();
    let clock = ManualClock::new(T0);
    let recorder = Recorder::start_with_sink(
        &store,
        "host-a",
        config,
        signer,
        clock.clone(),
        Metrics::unregistered().unwrap(),
        None,
    )
    .unwrap();
    Rig {
        store,
        recorder,
        clock,
    }
}

fn event(i: u64) -> Event {
    Event {
        kind: "erp.stock_adjust".into(),
        identity: Identity {
            user: Some(format!("u-{i}")),
            roles: vec!["clerk".into()],
            session: Some("s-1".into()),
            uid: Some(1000),
            pid: Some(4242),
        },
        permission: Some("inventory.adjust_stock".into()),
        action: Some("write".into()),
        org_id: Some("acme".into()),
        kid: None,
        target: Some(format!("sku-{i}")),
        outcome: "success".into(),
        reason: None,
        attrs: [("qty".to_string(), json!(i))].into_iter().collect(),
        ts_ms: None,
    }
}

fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(crate::store::DB_FILE)).unwrap()
}

fn verify_dir(dir: &Path) -> Report {
    let store = Store::open_read_only(dir).unwrap();
    verify(&store, None, &TrustedKeys::default()).unwrap()
}

// ---- canonical encoding ----

#[test]
fn canonical_encoding_is_stable() {
    let mut e = event(7);
    e.attrs = [
        ("z".to_string(), json!({"b": 1, "a": [true, null, "x\"y"]})),
        ("a".to_string(), json!(-3)),
    ]
    .into_iter()
    .collect();
    e.identity.roles = vec!["b".into(), "a".into(), "b".into()];
    e.ts_ms = Some(5);
    let rec = e.encode("h", 0).unwrap().with_seq(12);
    assert_eq!(
        rec,
        r#"{"action":"write","attrs":{"a":-3,"z":{"a":[true,null,"x\"y"],"b":1}},"host":"h","identity":{"pid":4242,"roles":["a","b"],"session":"s-1","uid":1000,"user":"u-7"},"kid":null,"kind":"erp.stock_adjust","org_id":"acme","outcome":"success","permission":"inventory.adjust_stock","reason":null,"seq":12,"target":"sku-7","ts_ms":5,"v":1}"#
    );
    let decoded = Record::decode(&rec).unwrap();
    assert_eq!(decoded.seq, 12);
    assert_eq!(decoded.identity.roles, vec!["a", "b"]);
    // Re-encoding the decoded value canonically gives the same bytes.
    let mut again = String::new();
    record::canonical(&serde_json::to_value(&decoded).unwrap(), &mut again);
    assert_eq!(again, rec);
}

#[test]
fn invalid_events_name_the_field() {
    fn check(mutate: impl FnOnce(&mut Event), field: &str) {
        let mut e = event(1);
        mutate(&mut e);
        match e.encode("h", T0) {
            Err(Error::InvalidEvent { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    check(|e| e.kind = String::new(), "kind");
    check(|e| e.kind = "Bad Kind".into(), "kind");
    check(|e| e.outcome = "x".repeat(65), "outcome");
    check(|e| e.action = Some("WRITE".into()), "action");
    check(|e| e.org_id = Some(String::new()), "org_id");
    check(|e| e.target = Some("t".repeat(1025)), "target");
    check(|e| e.identity.user = Some("u".repeat(257)), "identity.user");
    check(
        |e| e.identity.roles = vec!["r".into(); 65],
        "identity.roles",
    );
    check(|e| e.ts_ms = Some(-1), "ts_ms");
    check(
        |e| {
            e.attrs.insert("blob".into(), json!("x".repeat(17 * 1024)));
        },
        "attrs",
    );
}

// ---- Merkle tree ----

#[test]
fn frontier_matches_tree_and_proofs_verify() {
    assert_eq!(
        hex::encode(Frontier::new().root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let leaves: Vec<Hash> = (0..37u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut f = Frontier::new();
    for n in 1..=leaves.len() {
        f.push(leaves[n - 1]);
        let root = tree_root(&leaves[..n]);
        assert_eq!(f.root(), root, "size {n}");
        let restored = Frontier::from_bytes(n as u64, &f.to_bytes()).unwrap();
        assert_eq!(restored.root(), root);
        for i in 0..n {
            let proof = inclusion_proof(&leaves[..n], i).unwrap();
            assert!(verify_inclusion(
                &leaves[i], i as u64, n as u64, &proof, &root
            ));
            let wrong = leaf_hash(b"other");
            assert!(!verify_inclusion(&wrong, i as u64, n as u64, &proof, &root));
        }
    }
    assert!(Frontier::from_bytes(3, &[0u8; 32]).is_none());
}

// ---- recorder ----

#[test]
fn append_is_durable_contiguous_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(dir.path(), quiet_config());
    assert_eq!(r.recorder.append_blocking(vec![event(1)]).unwrap(), (1, 1));
    assert_eq!(
        r.recorder
            .append_blocking((2..=101).map(event).collect())
            .unwrap(),
        (2, 101)
    );
    r.recorder.submit(event(102)).unwrap();
    r.recorder.checkpoint_blocking().unwrap();
    let rows = r.store.audit_range(1, 1000).unwrap();
    assert_eq!(rows.len(), 102);
    let rec = Record::decode(&rows[0].record).unwrap();
    assert_eq!(rec.host, "host-a");
    assert_eq!(rec.ts_ms, T0);
    assert_eq!(rec.identity.pid, Some(4242));
    let st = r.recorder.status();
    assert_eq!(st.head_seq, 102);
    assert_eq!(st.checkpoint.as_ref().map(|c| c.seq), Some(102));
    assert_eq!(st.unshipped_records, 102);
    let report = verify_dir(dir.path());
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        (report.first_seq, report.last_seq, report.checkpoints),
        (1, 102, 1)
    );
    assert_eq!(report.unsigned_tail, 0);
}

#[test]
fn empty_and_invalid_appends_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(dir.path(), quiet_config());
    assert!(matches!(
        r.recorder.append_blocking(vec![]),
        Err(Error::InvalidEvent { .. })
    ));
    let mut bad = event(2);
    bad.kind = "NOPE".into();
    match r.recorder.append_blocking(vec![event(1), bad]) {
        Err(Error::InvalidEvent { field, .. }) => assert_eq!(field, "events[1].kind"),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.recorder.append_blocking(vec![event(3)]).unwrap(), (1, 1));
}

#[test]
fn restart_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    {
        let r = rig(dir.path(), quiet_config());
        r.recorder
            .append_blocking((1..=10).map(event).collect())
            .unwrap();
        r.recorder.checkpoint_blocking().unwrap();
        r.recorder
            .append_blocking((11..=15).map(event).collect())
            .unwrap();
        // No shutdown: like a crash after the acknowledgements.
    }
    let r = rig(dir.path(), quiet_config());
    assert_eq!(r.recorder.status().head_seq, 15);
    assert_eq!(
        r.recorder.append_blocking(vec![event(16)]).unwrap(),
        (16, 16)
    );
    r.recorder.shutdown().unwrap();
    let report = verify_dir(dir.path());
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.last_seq, report.checkpoints), (16, 2));
}

#[test]
fn the_log_keeps_the_host_it_was_started_under() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(dir.path(), quiet_config());
    r.recorder.append_blocking(vec![event(1)]).unwrap();
    r.recorder.shutdown().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A renamed machine keeps one chain under its original name.
    let renamed = Recorder::start_with_sink(
        &store,
        "host-b",
        quiet_config(),
        signer(),
        ManualClock::new(T0),
        Metrics::unregistered().unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(renamed.host(), "host-a");
    renamed.append_blocking(vec![event(2)]).unwrap();
    renamed.shutdown().unwrap();
    assert!(verify_dir(dir.path()).ok());
}

#[test]
fn checkpoints_every_n_records_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        checkpoint_every_records: 10,
        ..quiet_config()
    };
    let r = rig(dir.path(), config);
    for i in 0..25 {
        r.recorder.append_blocking(vec![event(i)]).unwrap();
    }
    let seqs: Vec<u64> = r
        .store
        .audit_checkpoints()
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, vec![10, 20]);
    r.clock.advance_ms(3_600_000);
    r.recorder.append_blocking(vec![event(26)]).unwrap();
    let last = r.store.audit_latest_checkpoint().unwrap().unwrap();
    assert_eq!((last.seq, last.signed_at_ms), (26, T0 + 3_600_000));
    assert_eq!(last.kid, "audit-test-1");
}

// ---- tamper detection ----

fn tampered(tamper: impl FnOnce(&rusqlite::Connection)) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(
        dir.path(),
        Config {
            checkpoint_every_records: 5,
            ..quiet_config()
        },
    );
    for i in 1..=12 {
        r.recorder.append_blocking(vec![event(i)]).unwrap();
    }
    r.recorder.shutdown().unwrap();
    drop(r);
    assert!(verify_dir(dir.path()).ok());
    tamper(&raw(dir.path()));
    verify_dir(dir.path())
}

#[test]
fn edit_is_named() {
    let report = tampered(|c| {
        c.execute(
            "UPDATE audit_log SET record = replace(record, 'sku-7', 'sku-9') WHERE seq = 7",
            [],
        )
        .unwrap();
    });
    assert_eq!(report.problem, Some(verify::Problem::Altered { seq: 7 }));
}

#[test]
fn edit_with_rehash_is_caught_by_the_checkpoint() {
    let report = tampered(|c| {
        let rec: String = c
            .query_row("SELECT record FROM audit_log WHERE seq = 7", [], |r| {
                r.get(0)
            })
            .unwrap();
        let prev: Vec<u8> = c
            .query_row("SELECT hash FROM audit_log WHERE seq = 6", [], |r| r.get(0))
            .unwrap();
        let forged = rec.replace("sku-7", "sku-9");
        let h = chain::chain_hash(
            &chain::to_hash(&prev).unwrap(),
            &leaf_hash(forged.as_bytes()),
        );
        c.execute(
            "UPDATE audit_log SET record = ?1, hash = ?2 WHERE seq = 7",
            rusqlite::params![forged, h.to_vec()],
        )
        .unwrap();
    });
    // Record 8 no longer follows from the rewritten 7.
    assert_eq!(report.problem.as_ref().map(verify::Problem::seq), Some(8));
}

#[test]
fn delete_is_named() {
    let report = tampered(|c| {
        c.execute("DELETE FROM audit_log WHERE seq = 4", [])
            .unwrap();
    });
    assert_eq!(
        report.problem,
        Some(verify::Problem::Missing { seq: 4, found: 5 })
    );
}

#[test]
fn reorder_is_named() {
    let report = tampered(|c| {
        c.execute_batch(
            "UPDATE audit_log SET seq = -1 WHERE seq = 3;
             UPDATE audit_log SET seq = 3 WHERE seq = 4;
             UPDATE audit_log SET seq = 4 WHERE seq = -1;",
        )
        .unwrap();
    });
    assert_eq!(
        report.problem,
        Some(verify::Problem::Moved { seq: 3, claims: 4 })
    );
}

#[test]
fn truncation_after_the_last_checkpoint_is_caught() {
    let report = tampered(|c| {
        c.execute("DELETE FROM audit_log WHERE seq > 10", [])
            .unwrap();
    });
    // Shutdown signed a checkpoint at 12.
    assert!(
        matches!(
            report.problem,
            Some(verify::Problem::Truncated {
                last: 10,
                expected: 12,
                ..
            })
        ),
        "{report:?}"
    );
}

#[test]
fn truncation_of_records_and_checkpoints_is_caught_by_the_head_marker() {
    let report = tampered(|c| {
        c.execute_batch(
            "DELETE FROM audit_log WHERE seq > 10; DELETE FROM audit_checkpoint WHERE seq > 10;",
        )
        .unwrap();
    });
    assert!(
        matches!(
            report.problem,
            Some(verify::Problem::Truncated {
                last: 10,
                expected: 12,
                ..
            })
        ),
        "{report:?}"
    );
}

#[test]
fn forged_checkpoint_signature_is_caught() {
    let report = tampered(|c| {
        c.execute(
            "UPDATE audit_checkpoint SET signed_at_ms = signed_at_ms + 1 WHERE seq = 5",
            [],
        )
        .unwrap();
    });
    assert!(
        matches!(
            report.problem,
            Some(verify::Problem::BadCheckpoint { seq: 5, .. })
        ),
        "{report:?}"
    );
}

#[test]
fn untrusted_key_is_caught_when_keys_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(dir.path(), quiet_config());
    r.recorder.append_blocking(vec![event(1)]).unwrap();
    r.recorder.shutdown().unwrap();
    let store = Store::open_read_only(dir.path()).unwrap();
    let other = RingSigner::generate("audit-test-1").unwrap();
    let trusted = TrustedKeys([("audit-test-1".to_string(), other.public_key())].into());
    let report = verify(&store, None, &trusted).unwrap();
    assert!(matches!(
        report.problem,
        Some(verify::Problem::BadCheckpoint { seq: 1, .. })
    ));
}

#[test]
fn recorder_refuses_to_append_on_a_truncated_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let r = rig(dir.path(), quiet_config());
        r.recorder
            .append_blocking((1..=5).map(event).collect())
            .unwrap();
        r.recorder.shutdown().unwrap();
    }
    raw(dir.path())
        .execute("DELETE FROM audit_log WHERE seq = 5", [])
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = Recorder::start_with_sink(
        &store,
        "host-a",
        quiet_config(),
        signer(),
        ManualClock::new(T0),
        Metrics::unregistered().unwrap(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn verify_from_a_later_seq() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(dir.path(), quiet_config());
    r.recorder
        .append_blocking((1..=20).map(event).collect())
        .unwrap();
    r.recorder.shutdown().unwrap();
    let store = Store::open_read_only(dir.path()).unwrap();
    let report = verify(&store, Some(11), &TrustedKeys::default()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.first_seq, report.records), (11, 10));
    let report = verify(&store, Some(99), &TrustedKeys::default()).unwrap();
    assert!(matches!(
        report.problem,
        Some(verify::Problem::BadStart { .. })
    ));
}

// ---- backpressure ----

#[test]
fn block_policy_fails_closed_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(
        dir.path(),
        Config {
            max_unshipped_records: 5,
            ..quiet_config()
        },
    );
    r.recorder
        .append_blocking((1..=5).map(event).collect())
        .unwrap();
    assert!(matches!(
        r.recorder.append_blocking(vec![event(6)]),
        Err(Error::Backpressure { unshipped: 6, .. })
    ));
    assert!(matches!(
        r.recorder.submit(event(6)),
        Err(Error::Backpressure { .. })
    ));
    assert_eq!(r.recorder.status().head_seq, 5);
    assert!(r.recorder.status().over_cap || r.recorder.status().unshipped_records == 5);
}

#[test]
fn alert_policy_accepts_up_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(
        dir.path(),
        Config {
            policy: Policy::Alert,
            max_unshipped_records: 5,
            hard_max_records: 8,
            ..quiet_config()
        },
    );
    r.recorder
        .append_blocking((1..=8).map(event).collect())
        .unwrap();
    assert!(r.recorder.status().over_cap);
    assert_eq!(r.recorder.shared.metrics.over_cap.get(), 8);
    assert!(matches!(
        r.recorder.append_blocking(vec![event(9)]),
        Err(Error::Backpressure { .. })
    ));
}

// ---- shipping ----

struct FlakySink {
    inner: JsonlSink,
    failures: u32,
}

impl Sink for FlakySink {
    fn name(&self) -> &str {
        "jsonl"
    }
    fn ship(&mut self, host: &str, records: &[crate::store::audit::AuditRow]) -> Result<(), Error> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err(Error::Sink {
                sink: "flaky".into(),
                reason: "down".into(),
            });
        }
        self.inner.ship(host, records)
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn shipping_is_at_least_once_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let r = rig(
        dir.path(),
        Config {
            ship_batch: 4,
            ..quiet_config()
        },
    );
    r.recorder
        .append_blocking((1..=10).map(event).collect())
        .unwrap();
    let mut shipper = Shipper::new(
        r.store.audit_conn().unwrap(),
        Box::new(FlakySink {
            inner: JsonlSink::new(out.clone()),
            failures: 1,
        }),
        r.recorder.clone(),
    );
    assert!(shipper.ship_once().is_err());
    assert_eq!(r.recorder.status().unshipped_records, 10);
    assert_eq!(shipper.ship_once().unwrap(), 4);
    assert_eq!(shipper.ship_once().unwrap(), 4);
    // A crash after the sink took 9..10 but before the position persisted:
    // the new shipper re-sends them and the sink skips them.
    JsonlSink::new(out.clone())
        .ship("host-a", &r.store.audit_range(9, 2).unwrap())
        .unwrap();
    let mut again = Shipper::new(
        r.store.audit_conn().unwrap(),
        Box::new(JsonlSink::new(out.clone())),
        r.recorder.clone(),
    );
    assert_eq!(again.ship_once().unwrap(), 2);
    assert_eq!(again.ship_once().unwrap(), 0);
    let shipped = lines(&out);
    let seqs: Vec<u64> = shipped.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert_eq!(shipped[0]["host"], "host-a");
    assert_eq!(shipped[0]["record"]["target"], "sku-1");
    let st = r.recorder.status();
    assert_eq!((st.unshipped_records, st.unshipped_bytes), (0, 0));
    assert_eq!(r.store.audit_shipped("jsonl").unwrap(), 10);
}

#[test]
fn torn_sink_line_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let r = rig(dir.path(), quiet_config());
    r.recorder
        .append_blocking((1..=3).map(event).collect())
        .unwrap();
    let rows = r.store.audit_range(1, 3).unwrap();
    JsonlSink::new(out.clone())
        .ship("host-a", &rows[..2])
        .unwrap();
    let mut f = OpenOptionsExt::append(&out);
    std::io::Write::write_all(&mut f, b"{\"hash\":\"ab").unwrap();
    JsonlSink::new(out.clone()).ship("host-a", &rows).unwrap();
    let seqs: Vec<u64> = lines(&out)
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

struct OpenOptionsExt;
impl OpenOptionsExt {
    fn append(p: &Path) -> std::fs::File {
        std::fs::OpenOptions::new().append(true).open(p).unwrap()
    }
}

#[test]
fn retention_prunes_shipped_records_up_to_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(
        dir.path(),
        Config {
            checkpoint_every_records: 4,
            keep_shipped: Some(std::time::Duration::from_secs(60)),
            ..quiet_config()
        },
    );
    r.recorder
        .append_blocking((1..=10).map(event).collect())
        .unwrap();
    r.clock.advance_ms(1000);
    r.recorder
        .append_blocking((11..=14).map(event).collect())
        .unwrap();
    let mut shipper = Shipper::new(
        r.store.audit_conn().unwrap(),
        Box::new(JsonlSink::new(dir.path().join("out.jsonl"))),
        r.recorder.clone(),
    );
    while shipper.ship_once().unwrap() > 0 {}
    // Nothing old enough yet.
    assert_eq!(shipper.prune().unwrap(), 0);
    r.clock.advance_ms(60_000);
    // Checkpoints at 10 and 14; record 14 is only 60 s old, 10 is older.
    assert_eq!(shipper.prune().unwrap(), 10);
    assert_eq!(r.store.audit_pruned_through().unwrap(), 10);
    r.recorder.append_blocking(vec![event(15)]).unwrap();
    let report = verify_dir(dir.path());
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.first_seq, report.last_seq), (11, 15));
    // Retained records still have inclusion proofs against checkpoint 14.
    let proof = inclusion(&r.store, 12).unwrap();
    assert_eq!(proof.tree_size, 14);
    let root = chain::to_hash(&proof.checkpoint.merkle_root).unwrap();
    assert!(verify_inclusion(
        &proof.leaf_hash,
        11,
        14,
        &proof.path,
        &root
    ));
    assert!(matches!(inclusion(&r.store, 5), Err(Error::Proof(_))));
    // Consistency from the anchor (at the prune point) to the latest holds.
    let c = consistency(&r.store, 10, 14).unwrap();
    let (from, to) = (
        chain::to_hash(&c.from.merkle_root).unwrap(),
        chain::to_hash(&c.to.merkle_root).unwrap(),
    );
    assert!(verify_consistency(10, 14, &from, &to, &c.path));
    assert!(matches!(inclusion(&r.store, 15), Err(Error::Proof(_))));
    // Deleting the anchor checkpoint is caught.
    raw(dir.path())
        .execute("DELETE FROM audit_checkpoint WHERE seq = 10", [])
        .unwrap();
    assert_eq!(
        verify_dir(dir.path()).problem,
        Some(verify::Problem::Unanchored { seq: 10 })
    );
}

#[test]
fn config_reports_every_problem() {
    let raw: RawConfig = toml::from_str(
        r#"
        max_batch = 0
        checkpoint_interval = "soon"
        [backpressure]
        policy = "alert"
        max_unshipped_records = 10
        hard_max_records = 5
        [sink]
        kind = "kafka"
        retry_min = "5s"
        retry_max = "1s"
        "#,
    )
    .unwrap();
    let mut problems = crate::config::Problems::default();
    assert!(raw
        .into_config(Path::new("/state"), &mut problems)
        .is_none());
    assert_eq!(problems.items().len(), 5, "{problems:#?}");
    let ok: RawConfig =
        toml::from_str("[sink]\npath = \"a.jsonl\"\n[retention]\nkeep_shipped = \"7d\"").unwrap();
    let mut problems = crate::config::Problems::default();
    let c = ok.into_config(Path::new("/state"), &mut problems).unwrap();
    assert_eq!(
        c.sink,
        SinkConfig::Jsonl {
            path: "/state/a.jsonl".into()
        }
    );
    assert_eq!(
        c.keep_shipped,
        Some(std::time::Duration::from_secs(7 * 86400))
    );
}

// ---- model-based property test ----

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Submit(u8),
    Invalid,
    Checkpoint,
    Restart,
    Ship,
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 1..20).prop_map(Op::Append),
        3 => any::<u8>().prop_map(Op::Submit),
        1 => Just(Op::Invalid),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Restart),
        1 => Just(Op::Ship),
        1 => Just(Op::Tick),
    ]
}

fn model_event(tag: u8, ts: i64) -> Event {
    let mut e = event(u64::from(tag));
    e.ts_ms = Some(ts);
    e.attrs.insert("tag".into(), json!(tag));
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The log behaves like a Vec: every accepted event is stored once, in
    /// order, at seq = position + 1; rejected ones leave no trace; the whole
    /// log verifies after every step, across restarts and shipping.
    #[test]
    fn log_matches_a_vec_model(ops in proptest::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { checkpoint_every_records: 7, ship_batch: 5, ..quiet_config() };
        let key = signer();
        let mut r = rig_with(dir.path(), config.clone(), key.clone());
        let mut model: Vec<(u8, i64)> = Vec::new();
        let mut shipped = 0u64;
        let out = dir.path().join("ship.jsonl");
        for op in ops {
            match op {
                Op::Append(tags) => {
                    let now = r.clock.now_ms();
                    let first = model.len() as u64 + 1;
                    let got = r.recorder.append_blocking(tags.iter().map(|t| model_event(*t, now)).collect()).unwrap();
                    model.extend(tags.iter().map(|t| (*t, now)));
                    prop_assert_eq!(got, (first, model.len() as u64));
                }
                Op::Submit(tag) => {
                    r.recorder.submit(model_event(tag, r.clock.now_ms())).unwrap();
                    model.push((tag, r.clock.now_ms()));
                }
                Op::Invalid => {
                    let mut bad = model_event(0, 0);
                    bad.outcome = String::new();
                    prop_assert!(r.recorder.append_blocking(vec![model_event(1, 0), bad]).is_err());
                }
                Op::Checkpoint => {
                    r.recorder.checkpoint_blocking().unwrap();
                }
                Op::Restart => {
                    r.recorder.shutdown().unwrap();
                    let clock_now = r.clock.now_ms();
                    drop(r);
                    r = rig_with(dir.path(), config.clone(), key.clone());
                    r.clock.set_ms(clock_now);
                }
                Op::Ship => {
                    let mut s = Shipper::new(r.store.audit_conn().unwrap(), Box::new(JsonlSink::new(out.clone())), r.recorder.clone());
                    r.recorder.checkpoint_blocking().unwrap();
                    // The recorder under test has no sink of its own, so the
                    // shipped position starts from what the store says.
                    r.recorder.shared.shipped_seq.store(r.store.audit_shipped("jsonl").unwrap(), Ordering::SeqCst);
                    while s.ship_once().unwrap() > 0 {}
                    shipped = model.len() as u64;
                }
                Op::Tick => r.clock.advance_ms(1234),
            }
            r.recorder.checkpoint_blocking().unwrap();
            let rows = r.store.audit_range(1, 10_000).unwrap();
            prop_assert_eq!(rows.len(), model.len());
            for (i, (row, (tag, ts))) in rows.iter().zip(&model).enumerate() {
                let rec = Record::decode(&row.record).unwrap();
                prop_assert_eq!(row.seq, i as u64 + 1);
                prop_assert_eq!(rec.seq, i as u64 + 1);
                prop_assert_eq!(&rec.attrs["tag"], &json!(tag));
                prop_assert_eq!(rec.ts_ms, *ts);
            }
            let report = verify(&r.store, None, &TrustedKeys::default()).unwrap();
            prop_assert!(report.ok(), "{:?}", report);
            prop_assert_eq!(report.last_seq, model.len() as u64);
        }
        let seqs: Vec<u64> = lines(&out).iter().map(|v| v["seq"].as_u64().unwrap()).collect();
        prop_assert_eq!(seqs, (1..=shipped).collect::<Vec<_>>());
    }
}

#[test]
fn tree_view_over_a_pruned_prefix_matches_the_full_tree() {
    let leaves: Vec<Hash> = (0..45u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    for p in [0usize, 1, 5, 8, 13, 32] {
        let mut prefix = Frontier::new();
        for l in &leaves[..p] {
            prefix.push(*l);
        }
        let view = TreeView::new(&prefix, &leaves[p..]);
        for n in (p + 1)..=leaves.len() {
            let root = tree_root(&leaves[..n]);
            assert_eq!(view.root(n as u64), Some(root), "p {p} n {n}");
            for m in 0..n {
                let got = view.inclusion_proof(m as u64, n as u64);
                if m < p {
                    assert!(got.is_none());
                    continue;
                }
                assert_eq!(got, inclusion_proof(&leaves[..n], m), "p {p} n {n} m {m}");
            }
        }
    }
}

#[test]
fn a_failing_commit_is_never_acknowledged_and_the_recorder_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig(dir.path(), quiet_config());
    r.recorder.append_blocking(vec![event(1)]).unwrap();
    let c = raw(dir.path());
    c.execute_batch(
        "CREATE TRIGGER audit_fail BEFORE INSERT ON audit_log
         BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END;",
    )
    .unwrap();
    assert!(matches!(
        r.recorder.append_blocking(vec![event(2)]),
        Err(Error::Write(_))
    ));
    assert!(!r.recorder.status().writer_healthy);
    // Hot paths fail closed while the log cannot write.
    assert!(matches!(r.recorder.submit(event(3)), Err(Error::Write(_))));
    c.execute_batch("DROP TRIGGER audit_fail;").unwrap();
    // An acknowledged append is the caller's probe: it succeeds and heals.
    assert_eq!(r.recorder.append_blocking(vec![event(4)]).unwrap(), (2, 2));
    assert!(r.recorder.status().writer_healthy);
    r.recorder.submit(event(5)).unwrap();
    r.recorder.shutdown().unwrap();
    let report = verify_dir(dir.path());
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.last_seq, 3);
}

#[test]
fn consistency_proofs_verify_and_catch_rewritten_history() {
    let leaves: Vec<Hash> = (0..40u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    for p in [0usize, 3, 8] {
        let mut prefix = Frontier::new();
        for l in &leaves[..p] {
            prefix.push(*l);
        }
        let view = TreeView::new(&prefix, &leaves[p..]);
        for n in 1..=leaves.len() as u64 {
            let n_root = tree_root(&leaves[..n as usize]);
            for m in 1..=n {
                let m_root = tree_root(&leaves[..m as usize]);
                let Some(proof) = view.consistency_proof(m, n) else {
                    // Only proofs from an old tree inside the pruned prefix
                    // may be missing (they need pruned interior nodes).
                    assert!((m as usize) < p, "p {p} m {m} n {n}");
                    continue;
                };
                assert!(
                    verify_consistency(m, n, &m_root, &n_root, &proof),
                    "p {p} m {m} n {n}"
                );
                if m < n {
                    let forged = leaf_hash(b"rewritten");
                    assert!(!verify_consistency(m, n, &forged, &n_root, &proof));
                    assert!(!verify_consistency(m, n, &m_root, &forged, &proof));
                }
            }
        }
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Any event either is refused with a named field or encodes to bytes
    /// that decode to the same content and re-encode canonically to the
    /// very same bytes (the chain hashes bytes, so this must hold).
    #[test]
    fn canonical_encoding_round_trips(
        user in proptest::option::of(".{0,20}"),
        target in proptest::option::of(".{0,30}"),
        kind in "[a-z._:-]{0,8}",
        roles in proptest::collection::vec(".{0,5}", 0..4),
        attrs in proptest::collection::btree_map(".{0,8}", json_value(), 0..5),
        seq in 1u64..u64::MAX,
    ) {
        let mut e = event(1);
        e.identity.user = user.clone();
        e.target = target.clone();
        e.kind = kind;
        e.identity.roles = roles;
        e.attrs = attrs.clone();
        match e.clone().encode("hôst \"q\"", T0) {
            Err(Error::InvalidEvent { field, .. }) => prop_assert!(!field.is_empty()),
            Err(other) => prop_assert!(false, "unexpected {other}"),
            Ok(enc) => {
                let bytes = enc.with_seq(seq);
                let rec = Record::decode(&bytes).unwrap();
                prop_assert_eq!(rec.seq, seq);
                prop_assert_eq!(&rec.host, "hôst \"q\"");
                prop_assert_eq!(&rec.identity.user, &user);
                prop_assert_eq!(&rec.target, &target);
                prop_assert_eq!(&rec.kind, &e.kind);
                let mut again = String::new();
                record::canonical(&serde_json::to_value(&rec).unwrap(), &mut again);
                prop_assert_eq!(again, bytes);
            }
        }
    }
}
