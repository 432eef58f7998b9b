//! The audit trail: one recorder every capability uses, an append-only
//! hash-chained log in the local store, signed checkpoints, and lossless
//! shipping to a sink.
//!
//! Why: regulators and partners need proof of who did what, with which
//! permission, in which org, under which key, and that nothing acknowledged
//! was lost or altered. Decision points that buffer in memory and drop under
//! pressure cannot give that proof, so this one is built around three rules.
//!
//! **Durability.** An [`Recorder::append`] returns only after its records
//! are committed (WAL, `synchronous=FULL`: the commit's fsync is done). A
//! dedicated writer thread drains the queue and writes everything waiting in
//! one transaction: *group commit*, one fsync for many callers, which is how
//! the log sustains tens of thousands of records per second on one disk.
//! [`Recorder::submit`] is the hot-path variant (permission checks must stay
//! in microseconds): it validates, encodes and enqueues without waiting. Its
//! trade-off: the record is durable within one group-commit cycle (the fsync
//! already in flight plus the next one, typically a few milliseconds); a
//! crash inside that window can lose records that were never acknowledged to
//! anyone. Acknowledged records are never lost. Use `append` wherever the
//! caller's own action must not proceed without its record.
//!
//! **Ordering and integrity.** The writer assigns per-host sequence numbers
//! (dense, from 1) and chains records (`chain.rs`); the canonical encoding
//! (`record.rs`) is what gets hashed. Every `checkpoint_every_records`
//! records or `checkpoint_interval` (and at shutdown) the writer signs a
//! checkpoint (`checkpoint.rs`) in the same transaction as the records. The
//! head marker is rewritten in every commit so a truncated tail is caught
//! even between checkpoints. `verify.rs` walks all of it and names the first
//! bad record.
//!
//! **No silent loss under pressure.** Unshipped plus queued records are
//! capped. At the cap, policy `block` refuses new records with
//! [`Error::Backpressure`] (callers fail closed); policy `alert` keeps
//! accepting, counting and logging every record over the cap, up to a hard
//! limit after which it refuses too. Nothing is ever dropped after it was
//! accepted.
//!
//! **Recording from a capability**: build an [`Event`] (kind, identity,
//! permission/action, org, kid, target, outcome, reason, attrs) and hand it
//! to `ctx.audit`:
//!
//! ```ignore
//! let event = audit::Event {
//!     kind: "decision".into(),
//!     identity: audit::Identity { user: Some(user_id), roles, session, uid, pid },
//!     permission: Some(permission.into()),
//!     action: Some(action.into()),
//!     org_id: Some(org),
//!     outcome: "deny".into(),
//!     reason: Some("no_grant".into()),
//!     ..Default::default()
//! };
//! // Hot path: microseconds, durable within one group-commit cycle. An error
//! // means the record was refused (backpressure, failing disk): fail closed.
//! ctx.audit.submit(event)?;
//! // Or, where the action must not proceed unrecorded:
//! let (first, last) = ctx.audit.append(vec![event]).await?;
//! ```
//!
//! **Shipping** (`ship.rs`) is at-least-once with an idempotent key (host,
//! seq): a sink skips what it already holds, the shipped position is
//! persisted after the sink confirms, failures retry with exponential
//! backoff, and retention deletes only shipped records, only up to a
//! checkpoint (which anchors the chain for later verification).

mod chain;
mod checkpoint;
mod config;
mod error;
mod metrics;
mod proof;
mod record;
mod ship;
pub mod tools;
mod verify;
mod writer;

pub use chain::{
    inclusion_proof, leaf_hash, tree_root, verify_consistency, verify_inclusion, Frontier, Hash,
    TreeView,
};
pub use checkpoint::{CheckpointSigner, RingSigner};
pub use config::{Config, Policy, RawConfig, SinkConfig};
pub use error::Error;
pub use metrics::Metrics;
pub use proof::{consistency, inclusion, Consistency, Proof};
pub use record::{check_external_kind, Encoded, Event, Identity, Record, RESERVED_KINDS};
pub use ship::{JsonlSink, Shipper, Sink};
pub use verify::{verify, Problem, Report, TrustedKeys};

use crate::clock::SharedClock;
use crate::store::audit::CheckpointRow;
use crate::store::Store;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::oneshot;

/// `agent_meta` key holding the host name the log is recorded under, so an
/// offline verifier knows it even when every record was pruned.
pub const HOST_META_KEY: &str = "audit.host";

/// Acknowledgement of a durable append: first and last seq assigned.
pub type Ack = Result<(u64, u64), Error>;

enum Msg {
    Append {
        events: Vec<Encoded>,
        bytes: u64,
        enqueued: Instant,
        ack: Option<oneshot::Sender<Ack>>,
    },
    /// Everything enqueued before is durable once answered; optionally
    /// forces a checkpoint of the head.
    Sync {
        checkpoint: bool,
        ack: oneshot::Sender<Result<u64, Error>>,
    },
    Stop,
}

/// State shared by the handles, the writer and the shipper.
struct Shared {
    host: String,
    clock: SharedClock,
    config: Config,
    metrics: Metrics,
    head_seq: AtomicU64,
    head_hash: Mutex<Hash>,
    last_checkpoint: Mutex<Option<CheckpointRow>>,
    shipped_seq: AtomicU64,
    /// Bytes of durable records not yet shipped.
    unshipped_bytes: AtomicU64,
    /// Timestamp of the oldest unshipped record (0: none).
    oldest_unshipped_ms: AtomicI64,
    /// Accepted but not yet written.
    queued_records: AtomicU64,
    queued_bytes: AtomicU64,
    /// The last group commit failed; submits are refused until a commit
    /// (an acknowledged append, or the writer's idle probe) succeeds.
    write_failed: AtomicBool,
    stopping: AtomicBool,
    /// Wakes the shipper after a commit (and at shutdown).
    ship_wake: (Mutex<bool>, Condvar),
}

impl Shared {
    fn wake_shipper(&self) {
        let (lock, cvar) = &self.ship_wake;
        if let Ok(mut woken) = lock.lock() {
            *woken = true;
        }
        cvar.notify_all();
    }

    fn unshipped_records(&self) -> u64 {
        self.head_seq
            .load(Ordering::SeqCst)
            .saturating_sub(self.shipped_seq.load(Ordering::SeqCst))
    }
}

/// Audit status for `/v1/status` and `GET /v1/audit/head`.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub host: String,
    pub head_seq: u64,
    /// Lowercase hex chain hash of the head record.
    pub head_hash: String,
    pub shipped_seq: u64,
    pub unshipped_records: u64,
    pub unshipped_bytes: u64,
    pub oldest_unshipped_age_seconds: Option<i64>,
    pub queued_records: u64,
    pub policy: Policy,
    pub over_cap: bool,
    pub writer_healthy: bool,
    pub sink: Option<String>,
    pub checkpoint: Option<CheckpointRow>,
}

/// Handle to the recorder; cheap to clone, shared by every capability.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("host", &self.shared.host)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Recovers the chain state from `store` and starts the writer thread
    /// and, when a sink is configured, the shipper thread.
    pub fn start(
        store: &Store,
        host: &str,
        config: Config,
        signer: Arc<dyn CheckpointSigner>,
        clock: SharedClock,
        metrics: Metrics,
    ) -> Result<Recorder, Error> {
        let sink: Option<Box<dyn Sink>> = match &config.sink {
            SinkConfig::None => None,
            SinkConfig::Jsonl { path } => Some(Box::new(JsonlSink::new(path.clone()))),
        };
        Recorder::start_with_sink(store, host, config, signer, clock, metrics, sink)
    }

    /// As [`Recorder::start`] with an explicit sink (tests, other sinks).
    pub fn start_with_sink(
        store: &Store,
        host: &str,
        config: Config,
        signer: Arc<dyn CheckpointSigner>,
        clock: SharedClock,
        metrics: Metrics,
        sink: Option<Box<dyn Sink>>,
    ) -> Result<Recorder, Error> {
        // One chain, one host name: a renamed machine keeps recording under
        // the name its log started with, or verification would break.
        let host = match store.meta(HOST_META_KEY)? {
            Some(h) => {
                if h != host {
                    tracing::warn!(log_host = %h, hostname = %host, "host name changed; audit records keep the log's original host name");
                }
                h
            }
            None => {
                store.set_meta(HOST_META_KEY, host)?;
                host.to_string()
            }
        };
        let conn = store.audit_conn()?;
        let recovered = writer::recover(&conn)?;
        let sink_name = sink.as_ref().map(|s| s.name().to_string());
        let shipped_seq = match &sink_name {
            Some(name) => conn.shipped(name)?,
            None => 0,
        };
        let backlog = conn.backlog(shipped_seq)?;
        let shared = Arc::new(Shared {
            host,
            clock,
            config,
            metrics,
            head_seq: AtomicU64::new(recovered.seq),
            head_hash: Mutex::new(recovered.hash),
            last_checkpoint: Mutex::new(recovered.checkpoint.clone()),
            shipped_seq: AtomicU64::new(shipped_seq),
            unshipped_bytes: AtomicU64::new(backlog.bytes),
            oldest_unshipped_ms: AtomicI64::new(backlog.oldest_ts_ms.unwrap_or(0)),
            queued_records: AtomicU64::new(0),
            queued_bytes: AtomicU64::new(0),
            write_failed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            ship_wake: (Mutex::new(false), Condvar::new()),
        });
        shared.metrics.head_seq.set(gauge(recovered.seq));
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        let w = writer::Writer::new(conn, rx, shared.clone(), signer, recovered);
        threads.push(
            std::thread::Builder::new()
                .name("audit-writer".into())
                .spawn(move || w.run())
                .map_err(|e| Error::Write(format!("cannot start the audit writer thread: {e}")))?,
        );
        let recorder = Recorder {
            tx,
            shared: shared.clone(),
            threads: Arc::new(Mutex::new(Vec::new())),
        };
        let wal = store.audit_conn()?;
        let wal_shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("audit-wal".into())
                .spawn(move || wal_checkpointer(wal, &wal_shared))
                .map_err(|e| {
                    Error::Write(format!("cannot start the audit checkpointer thread: {e}"))
                })?,
        );
        if let Some(sink) = sink {
            let shipper = Shipper::new(store.audit_conn()?, sink, recorder.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("audit-shipper".into())
                    .spawn(move || shipper.run())
                    .map_err(|e| {
                        Error::Write(format!("cannot start the audit shipper thread: {e}"))
                    })?,
            );
        }
        if let Ok(mut t) = recorder.threads.lock() {
            *t = threads;
        }
        Ok(recorder)
    }

    /// Host name recorded in every record.
    pub fn host(&self) -> &str {
        &self.shared.host
    }

    /// Backpressure and health gate for new records. `acked` appends are
    /// let through while the log is failing (their callers get the commit's
    /// real outcome, and a success clears the failure); fire-and-forget
    /// submits are refused, so hot paths fail closed instead of queueing
    /// records that may never be written.
    fn admit(&self, records: u64, bytes: u64, acked: bool) -> Result<(), Error> {
        let s = &self.shared;
        let c = &s.config;
        if !acked && s.write_failed.load(Ordering::SeqCst) {
            s.metrics
                .rejected
                .with_label_values(&["write_failed"])
                .inc_by(records);
            return Err(Error::Write(
                "the last group commit failed; refusing new records until the log is writable"
                    .into(),
            ));
        }
        let queued = s.queued_records.fetch_add(records, Ordering::SeqCst) + records;
        let queued_bytes = s.queued_bytes.fetch_add(bytes, Ordering::SeqCst) + bytes;
        let unshipped = s.unshipped_records() + queued;
        let unshipped_bytes = s.unshipped_bytes.load(Ordering::SeqCst) + queued_bytes;
        let over_cap =
            unshipped > c.max_unshipped_records || unshipped_bytes > c.max_unshipped_bytes;
        if !over_cap {
            return Ok(());
        }
        let over_hard = unshipped > c.hard_max_records || unshipped_bytes > c.hard_max_bytes;
        let refuse = match c.policy {
            Policy::Block => Some((
                "backpressure",
                format!(
                    "max_unshipped_records={} max_unshipped_bytes={}",
                    c.max_unshipped_records, c.max_unshipped_bytes
                ),
            )),
            Policy::Alert if over_hard => Some((
                "hard_limit",
                format!(
                    "hard_max_records={} hard_max_bytes={}",
                    c.hard_max_records, c.hard_max_bytes
                ),
            )),
            Policy::Alert => None,
        };
        match refuse {
            Some((reason, limit)) => {
                s.queued_records.fetch_sub(records, Ordering::SeqCst);
                s.queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
                s.metrics
                    .rejected
                    .with_label_values(&[reason])
                    .inc_by(records);
                tracing::error!(unshipped, unshipped_bytes, %limit, "audit log at its cap, refusing records");
                Err(Error::Backpressure {
                    unshipped,
                    bytes: unshipped_bytes,
                    limit,
                })
            }
            None => {
                let before = s.metrics.over_cap.get();
                s.metrics.over_cap.inc_by(records);
                // Loud but bounded: once on crossing, then every 1000 records.
                if before == 0 || before / 1000 != (before + records) / 1000 {
                    tracing::error!(
                        unshipped,
                        unshipped_bytes,
                        cap = c.max_unshipped_records,
                        "audit backlog above its cap; the sink is not keeping up (policy alert, still recording)"
                    );
                }
                Ok(())
            }
        }
    }

    fn encode_all(&self, events: Vec<Event>) -> Result<(Vec<Encoded>, u64), Error> {
        let now = self.shared.clock.now_ms();
        let mut bytes = 0u64;
        let mut out = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let enc = event.encode(&self.shared.host, now).map_err(|e| match e {
                Error::InvalidEvent { field, reason } => Error::InvalidEvent {
                    field: format!("events[{i}].{field}"),
                    reason,
                },
                other => other,
            })?;
            bytes += enc.len() as u64;
            out.push(enc);
        }
        Ok((out, bytes))
    }

    fn enqueue(&self, events: Vec<Event>, ack: Option<oneshot::Sender<Ack>>) -> Result<(), Error> {
        if events.is_empty() {
            return Err(Error::invalid("events", "must not be empty"));
        }
        let (encoded, bytes) = match self.encode_all(events) {
            Ok(v) => v,
            Err(e) => {
                self.shared
                    .metrics
                    .rejected
                    .with_label_values(&["invalid"])
                    .inc();
                return Err(e);
            }
        };
        let records = encoded.len() as u64;
        self.admit(records, bytes, ack.is_some())?;
        let msg = Msg::Append {
            events: encoded,
            bytes,
            enqueued: Instant::now(),
            ack,
        };
        self.tx.send(msg).map_err(|_| {
            self.shared
                .queued_records
                .fetch_sub(records, Ordering::SeqCst);
            self.shared.queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
            Error::Stopped
        })
    }

    /// Records `events` atomically (all or none, contiguous seqs) and
    /// returns `(first_seq, last_seq)` once they are durable.
    pub async fn append(&self, events: Vec<Event>) -> Ack {
        let (tx, rx) = oneshot::channel();
        self.enqueue(events, Some(tx))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// [`Recorder::append`] for threads outside the async runtime.
    pub fn append_blocking(&self, events: Vec<Event>) -> Ack {
        let (tx, rx) = oneshot::channel();
        self.enqueue(events, Some(tx))?;
        rx.blocking_recv().map_err(|_| Error::Stopped)?
    }

    /// Enqueues one event without waiting for durability (hot paths). The
    /// record is durable within one group-commit cycle; an error means it
    /// was not accepted and the caller must fail closed.
    pub fn submit(&self, event: Event) -> Result<(), Error> {
        self.enqueue(vec![event], None)
    }

    fn sync_msg(&self, checkpoint: bool) -> Result<oneshot::Receiver<Result<u64, Error>>, Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Sync {
                checkpoint,
                ack: tx,
            })
            .map_err(|_| Error::Stopped)?;
        Ok(rx)
    }

    /// Waits until everything enqueued so far is durable; returns the head.
    pub async fn flush(&self) -> Result<u64, Error> {
        self.sync_msg(false)?.await.map_err(|_| Error::Stopped)?
    }

    /// Makes everything durable and signs a checkpoint of the head now.
    pub async fn checkpoint(&self) -> Result<u64, Error> {
        self.sync_msg(true)?.await.map_err(|_| Error::Stopped)?
    }

    /// Blocking [`Recorder::checkpoint`].
    pub fn checkpoint_blocking(&self) -> Result<u64, Error> {
        self.sync_msg(true)?
            .blocking_recv()
            .map_err(|_| Error::Stopped)?
    }

    /// Drains the queue, signs a final checkpoint, stops the threads and
    /// waits for them. Blocking: call from a blocking context.
    pub fn shutdown(&self) -> Result<(), Error> {
        let result = self.checkpoint_blocking().map(|_| ());
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The writer may already be gone; stopping twice is harmless.
        let _ = self.tx.send(Msg::Stop);
        self.shared.wake_shipper();
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        for t in threads {
            if t.join().is_err() {
                tracing::error!("an audit thread panicked during shutdown");
            }
        }
        result
    }

    /// Current status (head, backlog, last checkpoint).
    pub fn status(&self) -> Status {
        let s = &self.shared;
        let c = &s.config;
        let head_hash = s
            .head_hash
            .lock()
            .map(|h| hex::encode(*h))
            .unwrap_or_default();
        let checkpoint = s.last_checkpoint.lock().ok().and_then(|c| c.clone());
        let unshipped_records = s.unshipped_records();
        let unshipped_bytes = s.unshipped_bytes.load(Ordering::SeqCst);
        let oldest = s.oldest_unshipped_ms.load(Ordering::SeqCst);
        let oldest_unshipped_age_seconds = (unshipped_records > 0 && oldest > 0)
            .then(|| (s.clock.now_ms() - oldest).max(0) / 1000);
        let queued_records = s.queued_records.load(Ordering::SeqCst);
        Status {
            host: s.host.clone(),
            head_seq: s.head_seq.load(Ordering::SeqCst),
            head_hash,
            shipped_seq: s.shipped_seq.load(Ordering::SeqCst),
            unshipped_records,
            unshipped_bytes,
            oldest_unshipped_age_seconds,
            queued_records,
            policy: c.policy,
            over_cap: unshipped_records + queued_records > c.max_unshipped_records
                || unshipped_bytes > c.max_unshipped_bytes,
            writer_healthy: !s.write_failed.load(Ordering::SeqCst),
            sink: match &c.sink {
                SinkConfig::None => None,
                SinkConfig::Jsonl { path } => Some(format!("jsonl:{}", path.display())),
            },
            checkpoint,
        }
    }

    /// Refreshes the backlog gauges (called by the shipper and on scrape).
    pub fn update_gauges(&self) {
        let st = self.status();
        let m = &self.shared.metrics;
        m.head_seq.set(gauge(st.head_seq));
        m.unshipped_records.set(gauge(st.unshipped_records));
        m.unshipped_bytes.set(gauge(st.unshipped_bytes));
        m.oldest_unshipped_age_seconds
            .set(st.oldest_unshipped_age_seconds.unwrap_or(0));
    }
}

/// Copies the WAL into the database every 100 ms, off the writer thread, so
/// a group commit never pays for a checkpoint (which would otherwise land on
/// whichever commit crosses SQLite's autocheckpoint threshold, a latency
/// spike of tens of milliseconds). PASSIVE: it never blocks the writer.
fn wal_checkpointer(conn: crate::store::audit::AuditConn, shared: &Shared) {
    let (lock, cvar) = &shared.ship_wake;
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = conn.wal_checkpoint() {
            tracing::warn!(error = %e, "audit WAL checkpoint failed; will retry");
        }
        // Sleep 100 ms (commits notify this condvar too; only shutdown
        // cuts the sleep short).
        let deadline = Instant::now() + std::time::Duration::from_millis(100);
        let Ok(mut guard) = lock.lock() else { return };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            guard = match cvar.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(_) => return,
            };
        }
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
