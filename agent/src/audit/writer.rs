//! The writer thread: group commit, sequence numbers, chain and checkpoints.
//!
//! It is the only code that appends, so sequence assignment and chaining need
//! no locks: the thread owns the head. It blocks for the first message, then
//! takes whatever else is already queued (up to `max_batch` records) and
//! commits all of it in one transaction. While one fsync runs, new callers
//! queue up and form the next batch, so batch size grows with load on its
//! own and no timer delays a lone caller.

use super::chain::{chain_hash, leaf_hash, to_hash, Frontier, Hash, GENESIS};
use super::checkpoint;
use super::{Ack, Error, Msg, Shared};
use crate::store::audit::{AuditConn, CheckpointRow, NewAuditRow};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// Chain state recovered from the store at start.
#[derive(Debug, Clone)]
pub(super) struct Recovered {
    pub seq: u64,
    pub hash: Hash,
    pub frontier: Frontier,
    pub checkpoint: Option<CheckpointRow>,
}

fn corrupt(msg: String) -> Error {
    Error::Write(format!(
        "{msg}; refusing to append on top of it (run `warden audit verify` and restore the state database)"
    ))
}

/// Rebuilds head and Merkle frontier: from the latest checkpoint's frontier
/// plus the records after it. Refuses a log whose tail was cut off, because
/// appending would reuse sequence numbers and erase the evidence.
pub(super) fn recover(conn: &AuditConn) -> Result<Recovered, Error> {
    let pruned = conn.pruned_through()?;
    let checkpoint = conn.latest_checkpoint()?;
    let last = conn.last_row()?;
    // The head marker is rewritten by every commit.
    let head_marker = conn.head()?;
    let (mut frontier, start) = match &checkpoint {
        Some(cp) => {
            let f = Frontier::from_bytes(cp.seq, &cp.frontier).ok_or_else(|| {
                corrupt(format!(
                    "checkpoint {} has a malformed Merkle frontier",
                    cp.seq
                ))
            })?;
            (f, cp.seq + 1)
        }
        None if pruned > 0 => {
            return Err(corrupt(format!(
                "records through seq {pruned} were pruned but no checkpoint anchors them"
            )))
        }
        None => (Frontier::new(), 1),
    };
    let last_seq = last.as_ref().map_or(pruned, |r| r.seq);
    if let Some((marked, _)) = &head_marker {
        if *marked > last_seq {
            return Err(corrupt(format!(
                "audit log truncated: the head marker says seq {marked} but the last record is seq {last_seq}"
            )));
        }
    }
    if let Some(cp) = &checkpoint {
        if cp.seq > last_seq {
            return Err(corrupt(format!(
                "audit log truncated: checkpoint covers seq {} but the last record is seq {last_seq}",
                cp.seq
            )));
        }
    }
    let mut seq = start - 1;
    let mut hash = match &checkpoint {
        Some(cp) => to_hash(&cp.head_hash)
            .ok_or_else(|| corrupt(format!("checkpoint {} has a malformed head hash", cp.seq)))?,
        None => GENESIS,
    };
    loop {
        let rows = conn.range(seq + 1, 10_000)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if row.seq != seq + 1 {
                return Err(corrupt(format!("audit record {} is missing", seq + 1)));
            }
            let leaf = leaf_hash(row.record.as_bytes());
            frontier.push(leaf);
            hash = chain_hash(&hash, &leaf);
            seq = row.seq;
        }
    }
    if let Some(stored) = last.as_ref().and_then(|r| to_hash(&r.hash)) {
        if seq > 0 && stored != hash {
            return Err(corrupt(format!(
                "audit chain does not match the stored hash of the head record {seq}"
            )));
        }
    }
    Ok(Recovered {
        seq,
        hash,
        frontier,
        checkpoint,
    })
}

pub(super) struct Writer {
    conn: AuditConn,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    signer: Arc<dyn super::CheckpointSigner>,
    seq: u64,
    hash: Hash,
    frontier: Frontier,
    checkpoint_seq: u64,
    checkpoint_ms: i64,
}

/// How often a failed commit is retried before callers get the error.
const RETRIES: [u64; 3] = [10, 50, 250];

impl Writer {
    pub(super) fn new(
        conn: AuditConn,
        rx: Receiver<Msg>,
        shared: Arc<Shared>,
        signer: Arc<dyn super::CheckpointSigner>,
        recovered: Recovered,
    ) -> Writer {
        let (checkpoint_seq, checkpoint_ms) = recovered
            .checkpoint
            .as_ref()
            .map_or((0, shared.clock.now_ms()), |c| (c.seq, c.signed_at_ms));
        Writer {
            conn,
            rx,
            signer,
            seq: recovered.seq,
            hash: recovered.hash,
            frontier: recovered.frontier,
            checkpoint_seq,
            checkpoint_ms,
            shared,
        }
    }

    /// A small real write (and fsync) outside the log: clears the failure
    /// flag once the database is writable again.
    fn probe(&mut self) {
        match self.conn.probe(self.shared.clock.now_ms()) {
            Ok(()) => {
                tracing::info!("audit log is writable again");
                self.shared.write_failed.store(false, Ordering::SeqCst);
            }
            Err(e) => tracing::error!(error = %e, "audit log is still not writable"),
        }
    }

    fn interval_ms(&self) -> i64 {
        i64::try_from(self.shared.config.checkpoint_interval.as_millis()).unwrap_or(i64::MAX)
    }

    pub(super) fn run(mut self) {
        let max_batch = self.shared.config.max_batch;
        loop {
            let failed = self.shared.write_failed.load(Ordering::SeqCst);
            // While failing, probe the disk every second so the recorder
            // recovers even if only submits (which are refused) arrive.
            let max_wait = if failed { 1000 } else { 60_000 };
            let wait = Duration::from_millis(self.interval_ms().clamp(10, max_wait).unsigned_abs());
            let first = match self.rx.recv_timeout(wait) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    if failed {
                        self.probe();
                    }
                    self.commit(Vec::new(), false);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut stop = matches!(first, Msg::Stop);
            let mut records = count(&first);
            let mut batch = vec![first];
            while records < max_batch && !stop {
                match self.rx.try_recv() {
                    Ok(msg) => {
                        stop = matches!(msg, Msg::Stop);
                        records += count(&msg);
                        batch.push(msg);
                    }
                    Err(_) => break,
                }
            }
            let force = batch.iter().any(|m| {
                matches!(
                    m,
                    Msg::Sync {
                        checkpoint: true,
                        ..
                    }
                )
            });
            self.commit(batch, force);
            if stop {
                break;
            }
        }
        // Answer anything that raced with the stop.
        while let Ok(msg) = self.rx.try_recv() {
            reply_stopped(msg);
        }
    }

    /// Writes one batch in one transaction and answers its callers.
    fn commit(&mut self, batch: Vec<Msg>, force_checkpoint: bool) {
        let mut seq = self.seq;
        let mut hash = self.hash;
        let mut frontier = self.frontier.clone();
        let mut records: Vec<(u64, i64, String, Hash)> = Vec::new();
        let mut ranges = Vec::with_capacity(batch.len());
        let mut bytes_total = 0u64;
        for msg in &batch {
            if let Msg::Append { events, bytes, .. } = msg {
                let first = seq + 1;
                for enc in events {
                    seq += 1;
                    let record = enc.with_seq(seq);
                    let leaf = leaf_hash(record.as_bytes());
                    hash = chain_hash(&hash, &leaf);
                    frontier.push(leaf);
                    records.push((seq, enc.ts_ms, record, hash));
                }
                bytes_total += bytes;
                ranges.push((first, seq));
            }
        }
        let now = self.shared.clock.now_ms();
        let due = seq > self.checkpoint_seq
            && (force_checkpoint
                || seq - self.checkpoint_seq >= self.shared.config.checkpoint_every_records
                || now.saturating_sub(self.checkpoint_ms) >= self.interval_ms());
        if records.is_empty() && !due {
            self.answer(batch, &ranges, Ok(()));
            return;
        }
        let cp = if due {
            match checkpoint::sign(
                self.signer.as_ref(),
                &self.shared.host,
                seq,
                &hash,
                &frontier.root(),
                frontier.to_bytes(),
                now,
            ) {
                Ok(cp) => Some(cp),
                Err(e) => {
                    // Records still go in; the next commit retries the checkpoint.
                    tracing::error!(error = %e, "cannot sign an audit checkpoint");
                    None
                }
            }
        } else {
            None
        };
        let rows: Vec<NewAuditRow<'_>> = records
            .iter()
            .map(|(seq, ts_ms, record, hash)| NewAuditRow {
                seq: *seq,
                ts_ms: *ts_ms,
                record,
                hash,
            })
            .collect();
        let mut result = self.conn.append_batch(&rows, cp.as_ref());
        for delay in RETRIES {
            if result.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(delay));
            result = self.conn.append_batch(&rows, cp.as_ref());
        }
        let s = &self.shared;
        let n = records.len() as u64;
        s.queued_records.fetch_sub(n, Ordering::SeqCst);
        s.queued_bytes.fetch_sub(bytes_total, Ordering::SeqCst);
        match result {
            Ok(()) => {
                let first_ts = records.first().map(|r| r.1);
                let stored_bytes: u64 = records.iter().map(|r| r.2.len() as u64).sum();
                self.seq = seq;
                self.hash = hash;
                self.frontier = frontier;
                s.unshipped_bytes.fetch_add(stored_bytes, Ordering::SeqCst);
                s.head_seq.store(seq, Ordering::SeqCst);
                if let Ok(mut h) = s.head_hash.lock() {
                    *h = hash;
                }
                if let Some(ts) = first_ts {
                    let _ = s.oldest_unshipped_ms.compare_exchange(
                        0,
                        ts,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
                if let Some(cp) = cp {
                    self.checkpoint_seq = cp.seq;
                    self.checkpoint_ms = cp.signed_at_ms;
                    s.metrics.checkpoints.inc();
                    if let Ok(mut last) = s.last_checkpoint.lock() {
                        *last = Some(cp);
                    }
                }
                s.write_failed.store(false, Ordering::SeqCst);
                if n > 0 {
                    s.metrics.appended.inc_by(n);
                    s.metrics.commits.inc();
                    s.metrics.batch_size.observe(n as f64);
                    s.metrics.head_seq.set(super::gauge(seq));
                    s.wake_shipper();
                }
                self.answer(batch, &ranges, Ok(()));
            }
            Err(e) => {
                s.write_failed.store(true, Ordering::SeqCst);
                s.metrics.write_failures.inc();
                let unacked = batch
                    .iter()
                    .filter(|m| matches!(m, Msg::Append { ack: None, .. }))
                    .count();
                tracing::error!(error = %e, records = n, submitted_unacknowledged = unacked, "audit group commit failed; nothing in it was acknowledged");
                self.answer(batch, &ranges, Err(e.to_string()));
            }
        }
    }

    fn answer(&self, batch: Vec<Msg>, ranges: &[(u64, u64)], result: Result<(), String>) {
        let mut ranges = ranges.iter();
        for msg in batch {
            match msg {
                Msg::Append { ack, enqueued, .. } => {
                    let range = ranges.next().copied();
                    if let Some(ack) = ack {
                        let reply: Ack = match (&result, range) {
                            (Ok(()), Some(r)) => Ok(r),
                            (Err(e), _) => Err(Error::Write(e.clone())),
                            (Ok(()), None) => Err(Error::Write("internal: no range".into())),
                        };
                        self.shared
                            .metrics
                            .ack_latency
                            .observe(enqueued.elapsed().as_secs_f64());
                        // The caller may have gone away; the record stays.
                        let _ = ack.send(reply);
                    }
                }
                Msg::Sync { ack, .. } => {
                    let reply = match &result {
                        Ok(()) => Ok(self.seq),
                        Err(e) => Err(Error::Write(e.clone())),
                    };
                    let _ = ack.send(reply);
                }
                Msg::Stop => {}
            }
        }
    }
}

fn count(msg: &Msg) -> usize {
    match msg {
        Msg::Append { events, .. } => events.len(),
        _ => 0,
    }
}

fn reply_stopped(msg: Msg) {
    match msg {
        Msg::Append { ack: Some(ack), .. } => {
            let _ = ack.send(Err(Error::Stopped));
        }
        Msg::Sync { ack, .. } => {
            let _ = ack.send(Err(Error::Stopped));
        }
        _ => {}
    }
}
