//! Shipping durable records to a sink, at least once, never duplicated.
//!
//! Order of operations per shipment: read the next records after the shipped
//! position, hand them to the sink, and only after the sink says they are
//! durable persist the new position. A crash between the two re-sends the
//! same records; the sink's idempotency key (host, seq) makes that a no-op.
//! Failures retry with exponential backoff (`retry_min` doubling up to
//! `retry_max`); the backlog stays visible in status and metrics meanwhile,
//! and backpressure (see `mod.rs`) takes over if it keeps growing.

use super::{Error, Recorder};
use crate::store::audit::{AuditConn, AuditRow};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A destination for shipped records (JSON Lines now; PostgreSQL later).
///
/// Contract: `ship` receives records in increasing seq order and returns Ok
/// only once all of them are durable in the sink. It must be idempotent by
/// (host, seq): records the sink already holds are skipped, never stored
/// twice.
pub trait Sink: Send {
    /// Stable name; the shipped position is persisted under it.
    fn name(&self) -> &str;
    fn ship(&mut self, host: &str, records: &[AuditRow]) -> Result<(), Error>;
}

/// Appends one JSON object per record to a file, fsynced per shipment:
/// `{"hash":"<hex chain hash>","host":"...","record":<canonical record>,"seq":N}`.
/// The canonical record is embedded byte for byte, so a collector can
/// re-verify the chain. One file per host.
pub struct JsonlSink {
    name: String,
    path: PathBuf,
    file: Option<File>,
    /// Highest seq already in the file (the idempotency key's high water).
    high_water: u64,
}

impl JsonlSink {
    pub fn new(path: PathBuf) -> JsonlSink {
        JsonlSink {
            name: "jsonl".to_string(),
            path,
            file: None,
            high_water: 0,
        }
    }

    fn err(&self, reason: impl std::fmt::Display) -> Error {
        Error::Sink {
            sink: format!("jsonl:{}", self.path.display()),
            reason: reason.to_string(),
        }
    }

    /// Opens the file, cuts off a torn last line left by a crash, and reads
    /// the highest seq already delivered.
    fn open(&mut self) -> Result<(), Error> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| self.err(e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.err(e))?;
        let len = file.metadata().map_err(|e| self.err(e))?.len();
        let tail_len = len.min(256 * 1024);
        file.seek(SeekFrom::Start(len - tail_len))
            .map_err(|e| self.err(e))?;
        let mut tail = Vec::with_capacity(usize::try_from(tail_len).unwrap_or(0));
        file.read_to_end(&mut tail).map_err(|e| self.err(e))?;
        let complete = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < tail.len() {
            let keep = len - (tail.len() - complete) as u64;
            tracing::warn!(path = %self.path.display(), cut = tail.len() - complete, "cutting a torn last line from the audit sink file");
            file.set_len(keep).map_err(|e| self.err(e))?;
            file.sync_all().map_err(|e| self.err(e))?;
        }
        self.high_water = tail[..complete]
            .split(|b| *b == b'\n')
            .rev()
            .find(|l| !l.is_empty())
            .and_then(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
            .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        self.file = Some(file);
        Ok(())
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn ship(&mut self, host: &str, records: &[AuditRow]) -> Result<(), Error> {
        if self.file.is_none() {
            self.open()?;
        }
        let mut buf = Vec::new();
        for r in records.iter().filter(|r| r.seq > self.high_water) {
            buf.extend_from_slice(b"{\"hash\":\"");
            buf.extend_from_slice(hex::encode(&r.hash).as_bytes());
            buf.extend_from_slice(b"\",\"host\":");
            buf.extend_from_slice(
                serde_json::to_string(host)
                    .map_err(|e| self.err(e))?
                    .as_bytes(),
            );
            buf.extend_from_slice(b",\"record\":");
            buf.extend_from_slice(r.record.as_bytes());
            buf.extend_from_slice(format!(",\"seq\":{}}}\n", r.seq).as_bytes());
        }
        let Some(last) = records.last() else {
            return Ok(());
        };
        if buf.is_empty() {
            return Ok(());
        }
        let written = match self.file.as_mut() {
            Some(f) => f.write_all(&buf).and_then(|()| f.sync_data()),
            None => Err(std::io::Error::other("sink file not open")),
        };
        if let Err(e) = written {
            // Reopen next time: that repairs a torn line and re-reads the
            // high water, so the retry neither loses nor duplicates.
            self.file = None;
            return Err(self.err(e));
        }
        self.high_water = self.high_water.max(last.seq);
        Ok(())
    }
}

/// Moves records from the log to a sink; runs on its own thread.
pub struct Shipper {
    conn: AuditConn,
    sink: Box<dyn Sink>,
    recorder: Recorder,
    backoff: Duration,
    last_prune_ms: i64,
}

impl Shipper {
    pub fn new(conn: AuditConn, sink: Box<dyn Sink>, recorder: Recorder) -> Shipper {
        let backoff = recorder.shared.config.retry_min;
        Shipper {
            conn,
            sink,
            recorder,
            backoff,
            last_prune_ms: 0,
        }
    }

    /// Ships the next batch; returns how many records moved.
    pub fn ship_once(&mut self) -> Result<usize, Error> {
        let s = &self.recorder.shared;
        let shipped = s.shipped_seq.load(Ordering::SeqCst);
        let head = s.head_seq.load(Ordering::SeqCst);
        if head <= shipped {
            s.oldest_unshipped_ms.store(0, Ordering::SeqCst);
            return Ok(0);
        }
        let limit = s
            .config
            .ship_batch
            .min(usize::try_from(head - shipped).unwrap_or(usize::MAX));
        let rows = self.conn.range(shipped + 1, limit)?;
        let Some(last) = rows.last() else {
            return Ok(0);
        };
        if rows.first().map(|r| r.seq) != Some(shipped + 1) {
            return Err(Error::Sink {
                sink: self.sink.name().to_string(),
                reason: format!("record {} is missing from the local log", shipped + 1),
            });
        }
        self.sink.ship(&s.host, &rows)?;
        let new_pos = last.seq;
        self.conn
            .set_shipped(self.sink.name(), new_pos, s.clock.now_ms())?;
        let bytes: u64 = rows.iter().map(|r| r.record.len() as u64).sum();
        let _ = s
            .unshipped_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(bytes))
            });
        s.shipped_seq.store(new_pos, Ordering::SeqCst);
        let next_ts = self.conn.ts_of(new_pos + 1)?.unwrap_or(0);
        s.oldest_unshipped_ms.store(next_ts, Ordering::SeqCst);
        s.metrics.shipped.inc_by(rows.len() as u64);
        Ok(rows.len())
    }

    /// Deletes shipped records older than `keep_shipped`, up to the newest
    /// checkpoint at or below the shipped position. Returns rows deleted.
    pub fn prune(&mut self) -> Result<usize, Error> {
        let s = &self.recorder.shared;
        let Some(keep) = s.config.keep_shipped else {
            return Ok(0);
        };
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let before = s.clock.now_ms().saturating_sub(keep_ms);
        let shipped = s.shipped_seq.load(Ordering::SeqCst);
        let Some(anchor) = self.conn.prune_anchor(shipped, before)? else {
            return Ok(0);
        };
        if anchor <= self.conn.pruned_through()? {
            return Ok(0);
        }
        let deleted = self.conn.prune_through(anchor)?;
        s.metrics.pruned.inc_by(deleted as u64);
        tracing::info!(
            through_seq = anchor,
            deleted,
            "pruned shipped audit records"
        );
        Ok(deleted)
    }

    /// The shipper loop: ship while there is work, wait for the writer's
    /// signal otherwise, back off on failure; exits on shutdown after a
    /// last attempt.
    pub fn run(mut self) {
        loop {
            let stopping = self.recorder.shared.stopping.load(Ordering::SeqCst);
            let mut failed = false;
            let wait = match self.ship_once() {
                Ok(n) if n > 0 => {
                    self.backoff = self.recorder.shared.config.retry_min;
                    Duration::ZERO
                }
                Ok(_) => {
                    self.maybe_prune();
                    Duration::from_secs(1)
                }
                Err(e) => {
                    self.recorder.shared.metrics.ship_failures.inc();
                    tracing::warn!(error = %e, retry_in_ms = self.backoff.as_millis() as u64, "audit shipping failed; will retry");
                    let wait = self.backoff;
                    failed = true;
                    self.backoff = (self.backoff * 2).min(self.recorder.shared.config.retry_max);
                    if stopping {
                        break;
                    }
                    wait
                }
            };
            self.recorder.update_gauges();
            if stopping && wait > Duration::ZERO {
                break;
            }
            if wait > Duration::ZERO {
                // After a failure, sit out the whole backoff; otherwise wake
                // as soon as the writer commits.
                self.wait(wait, !failed);
            }
        }
    }

    /// Prunes when idle, at most once a minute (or once per `keep_shipped`
    /// when that is shorter): each prune is a write transaction that makes
    /// the writer wait, so it should delete in bulk, not per record.
    fn maybe_prune(&mut self) {
        let Some(keep) = self.recorder.shared.config.keep_shipped else {
            return;
        };
        let every = i64::try_from(keep.as_millis())
            .unwrap_or(i64::MAX)
            .min(60_000);
        let now = self.recorder.shared.clock.now_ms();
        if now.saturating_sub(self.last_prune_ms) < every {
            return;
        }
        self.last_prune_ms = now;
        if let Err(e) = self.prune() {
            tracing::warn!(error = %e, "audit retention failed; will retry");
        }
    }

    fn wait(&self, timeout: Duration, wake_on_commit: bool) {
        let shared = &self.recorder.shared;
        let (lock, cvar) = &shared.ship_wake;
        let deadline = std::time::Instant::now() + timeout;
        let Ok(mut woken) = lock.lock() else {
            return;
        };
        loop {
            if shared.stopping.load(Ordering::SeqCst) || (wake_on_commit && *woken) {
                break;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            woken = match cvar.wait_timeout(woken, left) {
                Ok((g, _)) => g,
                Err(_) => return,
            };
        }
        *woken = false;
    }
}
