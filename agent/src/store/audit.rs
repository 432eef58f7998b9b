//! Audit log tables: append, read, checkpoints, shipping position, retention.
//!
//! The recorder's writer thread and the shipper each hold a dedicated
//! [`AuditConn`] so a group commit (one transaction, one fsync) never waits on
//! the shared connection other capabilities use, and readers (status, API)
//! never wait on an fsync: WAL lets readers and the one writer proceed
//! together. Rows are never updated; retention deletes a shipped prefix.

use super::{configure, Error, Store};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

/// One stored audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: u64,
    pub ts_ms: i64,
    /// Canonical encoding; exactly the bytes the chain hashes.
    pub record: String,
    pub hash: Vec<u8>,
}

/// One stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub seq: u64,
    pub head_hash: Vec<u8>,
    pub merkle_root: Vec<u8>,
    pub frontier: Vec<u8>,
    pub signed_at_ms: i64,
    pub kid: String,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Unshipped backlog as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub records: u64,
    pub bytes: u64,
    pub oldest_ts_ms: Option<i64>,
}

/// A dedicated connection for the audit writer or shipper.
pub struct AuditConn {
    conn: Connection,
}

impl std::fmt::Debug for AuditConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditConn").finish_non_exhaustive()
    }
}

fn to_i64(v: u64) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Error::Invalid(format!("sequence number {v} out of range")))
}

fn to_u64(v: i64) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::Invalid(format!("negative sequence number {v}")))
}

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64, String, Vec<u8>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn rows_from(raw: Vec<(i64, i64, String, Vec<u8>)>) -> Result<Vec<AuditRow>, Error> {
    raw.into_iter()
        .map(|(seq, ts_ms, record, hash)| {
            Ok(AuditRow {
                seq: to_u64(seq)?,
                ts_ms,
                record,
                hash,
            })
        })
        .collect()
}

fn range(conn: &Connection, from_seq: u64, limit: usize) -> Result<Vec<AuditRow>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, ts_ms, record, hash FROM audit_log WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let raw = stmt
        .query_map(params![to_i64(from_seq)?, limit], row_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows_from(raw)
}

fn since(
    conn: &Connection,
    ts_ms: i64,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<AuditRow>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, ts_ms, record, hash FROM audit_log
         WHERE seq > ?2 AND ts_ms >= ?1 ORDER BY seq LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let raw = stmt
        .query_map(params![ts_ms, to_i64(after_seq)?, limit], row_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows_from(raw)
}

fn head(conn: &Connection) -> Result<Option<(u64, Vec<u8>)>, Error> {
    let found: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    found.map(|(s, h)| Ok((to_u64(s)?, h))).transpose()
}

fn last_row(conn: &Connection) -> Result<Option<AuditRow>, Error> {
    let raw: Option<(i64, i64, String, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, ts_ms, record, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            row_from,
        )
        .optional()?;
    Ok(rows_from(raw.into_iter().collect())?.pop())
}

fn checkpoint_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointRaw> {
    Ok(CheckpointRaw {
        seq: r.get(0)?,
        head_hash: r.get(1)?,
        merkle_root: r.get(2)?,
        frontier: r.get(3)?,
        signed_at_ms: r.get(4)?,
        kid: r.get(5)?,
        public_key: r.get(6)?,
        signature: r.get(7)?,
    })
}

struct CheckpointRaw {
    seq: i64,
    head_hash: Vec<u8>,
    merkle_root: Vec<u8>,
    frontier: Vec<u8>,
    signed_at_ms: i64,
    kid: String,
    public_key: Vec<u8>,
    signature: Vec<u8>,
}

impl CheckpointRaw {
    fn into_row(self) -> Result<CheckpointRow, Error> {
        Ok(CheckpointRow {
            seq: to_u64(self.seq)?,
            head_hash: self.head_hash,
            merkle_root: self.merkle_root,
            frontier: self.frontier,
            signed_at_ms: self.signed_at_ms,
            kid: self.kid,
            public_key: self.public_key,
            signature: self.signature,
        })
    }
}

const CHECKPOINT_COLUMNS: &str =
    "seq, head_hash, merkle_root, frontier, signed_at_ms, kid, public_key, signature";

fn latest_checkpoint(conn: &Connection) -> Result<Option<CheckpointRow>, Error> {
    let sql =
        format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoint ORDER BY seq DESC LIMIT 1");
    conn.query_row(&sql, [], checkpoint_from)
        .optional()?
        .map(CheckpointRaw::into_row)
        .transpose()
}

fn checkpoints(conn: &Connection) -> Result<Vec<CheckpointRow>, Error> {
    let sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoint ORDER BY seq");
    let mut stmt = conn.prepare(&sql)?;
    let raw = stmt
        .query_map([], checkpoint_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(CheckpointRaw::into_row).collect()
}

fn shipped(conn: &Connection, sink: &str) -> Result<u64, Error> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT shipped_seq FROM audit_shipped WHERE sink = ?1",
            [sink],
            |r| r.get(0),
        )
        .optional()?;
    to_u64(seq.unwrap_or(0))
}

fn pruned_through(conn: &Connection) -> Result<u64, Error> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT through_seq FROM audit_pruned WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    to_u64(seq.unwrap_or(0))
}

fn backlog(conn: &Connection, after_seq: u64) -> Result<Backlog, Error> {
    let (records, bytes, oldest): (i64, i64, Option<i64>) = conn.query_row(
        "SELECT count(*), coalesce(sum(length(record)), 0), min(ts_ms)
         FROM audit_log WHERE seq > ?1",
        [to_i64(after_seq)?],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(Backlog {
        records: to_u64(records)?,
        bytes: to_u64(bytes)?,
        oldest_ts_ms: oldest,
    })
}

fn ts_of(conn: &Connection, seq: u64) -> Result<Option<i64>, Error> {
    Ok(conn
        .query_row(
            "SELECT ts_ms FROM audit_log WHERE seq = ?1",
            [to_i64(seq)?],
            |r| r.get(0),
        )
        .optional()?)
}

impl Store {
    /// Opens a dedicated read-write connection for the audit writer or
    /// shipper, configured like the main one (WAL, `synchronous=FULL`).
    pub fn audit_conn(&self) -> Result<AuditConn, Error> {
        let path = self.path();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::open(path, e))?;
        configure(&conn).map_err(|e| Error::open(path, e))?;
        // The audit checkpointer thread copies the WAL into the database
        // (`wal_checkpoint`) so group commits do not stall on it; this high
        // limit is only the safety net should that thread fall behind.
        conn.pragma_update(None, "wal_autocheckpoint", 65_536)
            .map_err(|e| Error::open(path, e))?;
        Ok(AuditConn { conn })
    }

    /// Records with `seq >= from_seq` in order, at most `limit`.
    pub fn audit_range(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditRow>, Error> {
        range(&self.conn(), from_seq, limit)
    }

    /// Records at or after `ts_ms` with `seq > after_seq`, in seq order.
    pub fn audit_since(
        &self,
        ts_ms: i64,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, Error> {
        since(&self.conn(), ts_ms, after_seq, limit)
    }

    /// The committed head marker (seq, chain hash), if anything was written.
    pub fn audit_head(&self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        head(&self.conn())
    }

    /// The last stored record.
    pub fn audit_last(&self) -> Result<Option<AuditRow>, Error> {
        last_row(&self.conn())
    }

    /// The most recent signed checkpoint.
    pub fn audit_latest_checkpoint(&self) -> Result<Option<CheckpointRow>, Error> {
        latest_checkpoint(&self.conn())
    }

    /// Every stored checkpoint, oldest first.
    pub fn audit_checkpoints(&self) -> Result<Vec<CheckpointRow>, Error> {
        checkpoints(&self.conn())
    }

    /// Seq up to which retention deleted records (0: nothing pruned).
    pub fn audit_pruned_through(&self) -> Result<u64, Error> {
        pruned_through(&self.conn())
    }

    /// Shipped position of `sink`.
    pub fn audit_shipped(&self, sink: &str) -> Result<u64, Error> {
        shipped(&self.conn(), sink)
    }

    /// Starts a read transaction so the following audit reads see one
    /// snapshot even while the agent appends or prunes. Only for a handle
    /// nobody else uses (the offline tools' read-only store): statements of
    /// other callers would land inside it.
    pub fn audit_begin_snapshot(&self) -> Result<(), Error> {
        let conn = self.conn();
        conn.execute_batch("BEGIN DEFERRED")?;
        // The snapshot starts with the first read.
        conn.query_row("SELECT count(*) FROM audit_head", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(())
    }

    /// Ends [`Store::audit_begin_snapshot`].
    pub fn audit_end_snapshot(&self) -> Result<(), Error> {
        self.conn().execute_batch("COMMIT")?;
        Ok(())
    }

    /// Timestamp of the record `seq`, if stored.
    pub fn audit_ts_of(&self, seq: u64) -> Result<Option<i64>, Error> {
        ts_of(&self.conn(), seq)
    }
}

/// A record ready to insert.
#[derive(Debug, Clone)]
pub struct NewAuditRow<'a> {
    pub seq: u64,
    pub ts_ms: i64,
    pub record: &'a str,
    pub hash: &'a [u8],
}

impl AuditConn {
    /// Inserts a batch of records, moves the head marker and optionally
    /// stores a checkpoint, all in one transaction: one fsync on commit.
    pub fn append_batch(
        &mut self,
        rows: &[NewAuditRow<'_>],
        checkpoint: Option<&CheckpointRow>,
    ) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit_log(seq, ts_ms, record, hash) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for row in rows {
                insert.execute(params![to_i64(row.seq)?, row.ts_ms, row.record, row.hash])?;
            }
            if let Some(last) = rows.last() {
                tx.prepare_cached(
                    "INSERT INTO audit_head(id, seq, hash) VALUES (1, ?1, ?2)
                     ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                )?
                .execute(params![to_i64(last.seq)?, last.hash])?;
            }
            if let Some(cp) = checkpoint {
                tx.execute(
                    "INSERT INTO audit_checkpoint(seq, head_hash, merkle_root, frontier,
                         signed_at_ms, kid, public_key, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT(seq) DO NOTHING",
                    params![
                        to_i64(cp.seq)?,
                        cp.head_hash,
                        cp.merkle_root,
                        cp.frontier,
                        cp.signed_at_ms,
                        cp.kid,
                        cp.public_key,
                        cp.signature
                    ],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Copies committed WAL frames into the database without blocking the
    /// writer (`PASSIVE`). Returns (WAL frames, frames checkpointed).
    pub fn wal_checkpoint(&self) -> Result<(i64, i64), Error> {
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })?)
    }

    /// Writes (and fsyncs) a timestamp into `agent_meta`: proves the
    /// database accepts writes again after a failed commit.
    pub fn probe(&self, now_ms: i64) -> Result<(), Error> {
        self.conn.execute(
            "INSERT INTO agent_meta(key, value) VALUES ('audit.write_probe', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [now_ms.to_string()],
        )?;
        Ok(())
    }

    /// Records with `seq >= from_seq` in order, at most `limit`.
    pub fn range(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditRow>, Error> {
        range(&self.conn, from_seq, limit)
    }

    pub fn last_row(&self) -> Result<Option<AuditRow>, Error> {
        last_row(&self.conn)
    }

    pub fn head(&self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        head(&self.conn)
    }

    pub fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, Error> {
        latest_checkpoint(&self.conn)
    }

    pub fn pruned_through(&self) -> Result<u64, Error> {
        pruned_through(&self.conn)
    }

    pub fn shipped(&self, sink: &str) -> Result<u64, Error> {
        shipped(&self.conn, sink)
    }

    pub fn backlog(&self, after_seq: u64) -> Result<Backlog, Error> {
        backlog(&self.conn, after_seq)
    }

    pub fn ts_of(&self, seq: u64) -> Result<Option<i64>, Error> {
        ts_of(&self.conn, seq)
    }

    /// Persists the shipped position of `sink`; it never moves backwards.
    pub fn set_shipped(&self, sink: &str, seq: u64, now_ms: i64) -> Result<(), Error> {
        self.conn.execute(
            "INSERT INTO audit_shipped(sink, shipped_seq, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(sink) DO UPDATE SET
                 shipped_seq = max(shipped_seq, excluded.shipped_seq),
                 updated_ms = excluded.updated_ms",
            params![sink, to_i64(seq)?, now_ms],
        )?;
        Ok(())
    }

    /// The newest checkpoint with `seq <= max_seq` whose record is older than
    /// `before_ts_ms`: the furthest point retention may prune to.
    pub fn prune_anchor(&self, max_seq: u64, before_ts_ms: i64) -> Result<Option<u64>, Error> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT c.seq FROM audit_checkpoint c JOIN audit_log l ON l.seq = c.seq
                 WHERE c.seq <= ?1 AND l.ts_ms < ?2 ORDER BY c.seq DESC LIMIT 1",
                params![to_i64(max_seq)?, before_ts_ms],
                |r| r.get(0),
            )
            .optional()?;
        seq.map(to_u64).transpose()
    }

    /// Deletes records with `seq <= through_seq` (a checkpoint seq) and
    /// remembers the boundary, in one transaction. Returns rows deleted.
    pub fn prune_through(&mut self, through_seq: u64) -> Result<usize, Error> {
        let tx = self.conn.transaction()?;
        let has_checkpoint: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM audit_checkpoint WHERE seq = ?1)",
            [to_i64(through_seq)?],
            |r| r.get(0),
        )?;
        if !has_checkpoint {
            return Err(Error::Invalid(format!(
                "refusing to prune through seq {through_seq}: no checkpoint anchors it"
            )));
        }
        let deleted = tx.execute(
            "DELETE FROM audit_log WHERE seq <= ?1",
            [to_i64(through_seq)?],
        )?;
        tx.execute(
            "INSERT INTO audit_pruned(id, through_seq) VALUES (1, ?1)
             ON CONFLICT(id) DO UPDATE SET through_seq = max(through_seq, excluded.through_seq)",
            [to_i64(through_seq)?],
        )?;
        tx.commit()?;
        Ok(deleted)
    }
}
