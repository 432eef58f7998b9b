//! Offline verification of the local log: chain, checkpoints, truncation.
//!
//! Walks the records in seq order from the retention boundary (or `--from`),
//! recomputing every chain hash and the Merkle frontier, and checks each
//! signed checkpoint on the way. It stops at the first problem and names the
//! record, because the first bad record is where an investigation starts.
//! Read-only: it works on a copy or on the live file (WAL readers do not
//! block the writer).

use super::chain::{chain_hash, leaf_hash, to_hash, Frontier, Hash, GENESIS};
use super::checkpoint::signature_valid;
use super::record::Record;
use super::Error;
use crate::store::audit::CheckpointRow;
use crate::store::Store;
use std::collections::HashMap;

/// Public keys the verifier trusts, by kid (from the key ring / JWKS). When
/// empty, each checkpoint is checked against the key stored with it, which
/// catches edits but not an attacker who re-signs with a key of their own.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(pub HashMap<String, Vec<u8>>);

/// The first thing wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("record {seq} is missing (the next stored record is {found}): deleted or reordered")]
    Missing { seq: u64, found: u64 },
    #[error("record {seq} is not a valid canonical record: {detail}")]
    Malformed { seq: u64, detail: String },
    #[error("record {seq} holds the content of record {claims}: records were reordered or moved")]
    Moved { seq: u64, claims: u64 },
    #[error("record {seq} names host {found:?}, expected {expected:?}")]
    WrongHost {
        seq: u64,
        found: String,
        expected: String,
    },
    /// Content and chain hash disagree: the record was edited (or its
    /// predecessor was edited and its stored hash rewritten to match).
    #[error("record {seq} was altered: its content does not match its chain hash")]
    Altered { seq: u64 },
    #[error("checkpoint at seq {seq}: {detail}")]
    BadCheckpoint { seq: u64, detail: String },
    #[error("log truncated: the last record is {last}, but {evidence} covers record {expected}")]
    Truncated {
        last: u64,
        expected: u64,
        evidence: String,
    },
    #[error("records through {seq} were pruned, but no valid checkpoint anchors seq {seq}")]
    Unanchored { seq: u64 },
    #[error("verification cannot start at {seq}: record {prev} is not stored")]
    BadStart { seq: u64, prev: u64 },
}

impl Problem {
    /// The record (or checkpoint) seq the problem is about.
    pub fn seq(&self) -> u64 {
        match self {
            Problem::Missing { seq, .. }
            | Problem::Malformed { seq, .. }
            | Problem::Moved { seq, .. }
            | Problem::WrongHost { seq, .. }
            | Problem::Altered { seq }
            | Problem::BadCheckpoint { seq, .. }
            | Problem::Unanchored { seq }
            | Problem::BadStart { seq, .. } => *seq,
            Problem::Truncated { last, .. } => last + 1,
        }
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub host: Option<String>,
    /// First and last record verified (0 when none).
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
    pub checkpoints: u64,
    /// Records after the last valid checkpoint: chained but not yet signed.
    pub unsigned_tail: u64,
    pub problem: Option<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

struct Walk<'a> {
    host: Option<String>,
    trusted: &'a TrustedKeys,
    hash: Hash,
    frontier: Option<Frontier>,
    report: Report,
}

impl Walk<'_> {
    fn check_checkpoint(&self, cp: &CheckpointRow) -> Result<(), Problem> {
        let bad = |detail: &str| Problem::BadCheckpoint {
            seq: cp.seq,
            detail: detail.to_string(),
        };
        let host = self.host.as_deref().unwrap_or_default();
        if !signature_valid(host, cp) {
            return Err(bad(
                "signature does not verify (checkpoint edited or forged)",
            ));
        }
        if let Some(key) = self.trusted.0.get(&cp.kid) {
            if key != &cp.public_key {
                return Err(bad(&format!(
                    "signed with a key that is not the trusted key {}",
                    cp.kid
                )));
            }
        } else if !self.trusted.0.is_empty() {
            return Err(bad(&format!("signed by unknown kid {}", cp.kid)));
        }
        if cp.head_hash != self.hash {
            return Err(bad(
                "chain hash differs from the signed head: a record up to here was altered",
            ));
        }
        if let Some(f) = &self.frontier {
            if cp.merkle_root != f.root() {
                return Err(bad("Merkle root differs from the signed root"));
            }
        }
        Ok(())
    }
}

/// Verifies the log in `store`. `from` starts at a later record, trusting
/// the stored hash of its predecessor (faster; Merkle roots are then not
/// checked). Errors are for an unreadable store; problems with the log are
/// in the report.
pub fn verify(store: &Store, from: Option<u64>, trusted: &TrustedKeys) -> Result<Report, Error> {
    let pruned = store.audit_pruned_through()?;
    let checkpoints = store.audit_checkpoints()?;
    let head_marker = store.audit_head()?;
    let host = match store.meta(super::HOST_META_KEY)? {
        Some(h) => Some(h),
        None => store
            .audit_range(0, 1)?
            .first()
            .and_then(|r| Record::decode(&r.record).ok())
            .map(|r| r.host),
    };
    let start = from.unwrap_or(1).max(pruned + 1);
    let mut walk = Walk {
        host,
        trusted,
        hash: GENESIS,
        frontier: Some(Frontier::new()),
        report: Report::default(),
    };
    walk.report.host = walk.host.clone();
    if let Some(problem) = start_state(store, &mut walk, &checkpoints, pruned, start)? {
        walk.report.problem = Some(problem);
        return Ok(walk.report);
    }
    let mut cps = checkpoints.iter().filter(|c| c.seq >= start).peekable();
    let mut expected = start;
    let mut last_signed = start - 1;
    'pages: loop {
        let rows = store.audit_range(expected, 10_000)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if row.seq != expected {
                walk.report.problem = Some(Problem::Missing {
                    seq: expected,
                    found: row.seq,
                });
                break 'pages;
            }
            let rec = match Record::decode(&row.record) {
                Ok(r) => r,
                Err(e) => {
                    walk.report.problem = Some(Problem::Malformed {
                        seq: row.seq,
                        detail: e.to_string(),
                    });
                    break 'pages;
                }
            };
            if rec.seq != row.seq {
                walk.report.problem = Some(Problem::Moved {
                    seq: row.seq,
                    claims: rec.seq,
                });
                break 'pages;
            }
            match &walk.host {
                Some(h) if h != &rec.host => {
                    walk.report.problem = Some(Problem::WrongHost {
                        seq: row.seq,
                        found: rec.host,
                        expected: h.clone(),
                    });
                    break 'pages;
                }
                Some(_) => {}
                None => {
                    walk.host = Some(rec.host.clone());
                    walk.report.host = Some(rec.host);
                }
            }
            let leaf = leaf_hash(row.record.as_bytes());
            let hash = chain_hash(&walk.hash, &leaf);
            if row.hash != hash {
                walk.report.problem = Some(Problem::Altered { seq: row.seq });
                break 'pages;
            }
            walk.hash = hash;
            if let Some(f) = walk.frontier.as_mut() {
                f.push(leaf);
            }
            if walk.report.first_seq == 0 {
                walk.report.first_seq = row.seq;
            }
            walk.report.last_seq = row.seq;
            walk.report.records += 1;
            while let Some(cp) = cps.next_if(|c| c.seq == row.seq) {
                if let Err(p) = walk.check_checkpoint(cp) {
                    walk.report.problem = Some(p);
                    break 'pages;
                }
                walk.report.checkpoints += 1;
                last_signed = cp.seq;
            }
            if let Some(cp) = cps.peek() {
                if cp.seq < row.seq {
                    // A checkpoint for a seq that has no record.
                    walk.report.problem = Some(Problem::Missing {
                        seq: cp.seq,
                        found: row.seq,
                    });
                    break 'pages;
                }
            }
            expected += 1;
        }
    }
    if walk.report.problem.is_none() {
        let last = expected - 1;
        if let Some(cp) = cps.next() {
            walk.report.problem = Some(Problem::Truncated {
                last,
                expected: cp.seq,
                evidence: format!("the signed checkpoint at seq {}", cp.seq),
            });
        } else if let Some((marked, marked_hash)) = &head_marker {
            if *marked > last {
                walk.report.problem = Some(Problem::Truncated {
                    last,
                    expected: *marked,
                    evidence: "the head marker".to_string(),
                });
            } else if *marked == last && last >= start && marked_hash != &walk.hash {
                walk.report.problem = Some(Problem::Altered { seq: last });
            }
        }
        walk.report.unsigned_tail = last.saturating_sub(last_signed.max(start - 1));
    }
    Ok(walk.report)
}

/// Sets the chain state just before `start`; a problem if it cannot be
/// established.
fn start_state(
    store: &Store,
    walk: &mut Walk<'_>,
    checkpoints: &[CheckpointRow],
    pruned: u64,
    start: u64,
) -> Result<Option<Problem>, Error> {
    if start == pruned + 1 {
        if pruned == 0 {
            return Ok(None);
        }
        let Some(cp) = checkpoints.iter().find(|c| c.seq == pruned) else {
            return Ok(Some(Problem::Unanchored { seq: pruned }));
        };
        let (Some(hash), Some(frontier)) = (
            to_hash(&cp.head_hash),
            Frontier::from_bytes(cp.seq, &cp.frontier),
        ) else {
            return Ok(Some(Problem::Unanchored { seq: pruned }));
        };
        walk.hash = hash;
        walk.frontier = Some(frontier);
        if let Err(p) = walk.check_checkpoint(cp) {
            return Ok(Some(p));
        }
        return Ok(None);
    }
    let prev = start - 1;
    let rows = store.audit_range(prev, 1)?;
    match rows
        .first()
        .filter(|r| r.seq == prev)
        .and_then(|r| to_hash(&r.hash))
    {
        Some(hash) => {
            walk.hash = hash;
            walk.frontier = None;
            Ok(None)
        }
        None => Ok(Some(Problem::BadStart { seq: start, prev })),
    }
}
