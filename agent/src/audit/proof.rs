//! Inclusion proofs: show that one record is in the log a signed checkpoint
//! commits to, with log(n) hashes instead of the whole log.
//!
//! The proof is against the latest checkpoint's Merkle root, so a partner or
//! regulator holding only that (signed) checkpoint can check a record handed
//! to them (`verify_inclusion` with RFC 9162's algorithm). Building one reads
//! the retained records up to the checkpoint; it is an investigation tool,
//! not a hot path.

use super::chain::{leaf_hash, Frontier, Hash, TreeView};
use super::Error;
use crate::store::audit::CheckpointRow;
use crate::store::Store;

/// One record's inclusion proof.
#[derive(Debug, Clone)]
pub struct Proof {
    pub seq: u64,
    /// The record's canonical bytes.
    pub record: String,
    pub leaf_hash: Hash,
    /// Leaves in the tree (= the checkpoint's seq); the record is leaf
    /// `seq - 1`.
    pub tree_size: u64,
    pub path: Vec<Hash>,
    pub checkpoint: CheckpointRow,
}

/// Builds the inclusion proof of record `seq` against the latest checkpoint.
pub fn inclusion(store: &Store, seq: u64) -> Result<Proof, Error> {
    let unavailable = |why: String| Error::Proof(why);
    let cp = store
        .audit_latest_checkpoint()?
        .ok_or_else(|| unavailable("no checkpoint has been signed yet".into()))?;
    if seq == 0 || seq > cp.seq {
        return Err(unavailable(format!(
            "record {seq} is not covered by the latest checkpoint (seq {})",
            cp.seq
        )));
    }
    let pruned = store.audit_pruned_through()?;
    if seq <= pruned {
        return Err(unavailable(format!(
            "record {seq} was pruned after shipping (records through {pruned})"
        )));
    }
    let prefix = if pruned == 0 {
        Frontier::new()
    } else {
        let anchor = store
            .audit_checkpoints()?
            .into_iter()
            .find(|c| c.seq == pruned)
            .ok_or_else(|| {
                unavailable(format!("no checkpoint anchors the pruned prefix {pruned}"))
            })?;
        Frontier::from_bytes(anchor.seq, &anchor.frontier)
            .ok_or_else(|| unavailable(format!("checkpoint {pruned} has a malformed frontier")))?
    };
    let mut leaves: Vec<Hash> = Vec::new();
    let mut record = None;
    let mut next = pruned + 1;
    while next <= cp.seq {
        let want = usize::try_from(cp.seq - next + 1)
            .unwrap_or(usize::MAX)
            .min(10_000);
        let rows = store.audit_range(next, want)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if row.seq != next {
                return Err(unavailable(format!(
                    "record {next} is missing; run `warden audit verify`"
                )));
            }
            leaves.push(leaf_hash(row.record.as_bytes()));
            if row.seq == seq {
                record = Some(row.record);
            }
            next += 1;
        }
    }
    let view = TreeView::new(&prefix, &leaves);
    if view
        .root(cp.seq)
        .is_none_or(|r| r[..] != cp.merkle_root[..])
    {
        return Err(unavailable(
            "the stored records do not match the checkpoint's Merkle root; run `warden audit verify`"
                .into(),
        ));
    }
    let path = view
        .inclusion_proof(seq - 1, cp.seq)
        .ok_or_else(|| unavailable(format!("cannot build the proof of record {seq}")))?;
    let record = record.ok_or_else(|| unavailable(format!("record {seq} is missing")))?;
    Ok(Proof {
        seq,
        leaf_hash: leaf_hash(record.as_bytes()),
        record,
        tree_size: cp.seq,
        path,
        checkpoint: cp,
    })
}
