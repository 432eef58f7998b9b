//! Merkle proofs over the log, against signed checkpoints.
//!
//! An *inclusion* proof shows that one record is in the log a checkpoint
//! commits to, with log(n) hashes instead of the whole log; a *consistency*
//! proof shows that a later checkpoint's log extends an earlier one's (no
//! record was rewritten or removed in between). A partner or regulator who
//! kept the signed checkpoints can check both with RFC 9162's algorithms
//! (`verify_inclusion`, `verify_consistency`). Building a proof reads the
//! retained records up to the checkpoint: an investigation tool, not a hot
//! path.

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

/// A consistency proof between two checkpoints.
#[derive(Debug, Clone)]
pub struct Consistency {
    pub from: CheckpointRow,
    pub to: CheckpointRow,
    pub path: Vec<Hash>,
}

fn unavailable(why: String) -> Error {
    Error::Proof(why)
}

/// The leaves known up to `upto`: the pruned prefix's frontier and the
/// retained leaf hashes, plus the canonical bytes of record `want`.
struct Loaded {
    pruned: u64,
    prefix: Frontier,
    leaves: Vec<Hash>,
    record: Option<String>,
}

fn load(
    store: &Store,
    checkpoints: &[CheckpointRow],
    upto: u64,
    want: u64,
) -> Result<Loaded, Error> {
    let pruned = store.audit_pruned_through()?;
    let prefix = if pruned == 0 {
        Frontier::new()
    } else {
        let anchor = checkpoints
            .iter()
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
    while next <= upto {
        let page = usize::try_from(upto - next + 1)
            .unwrap_or(usize::MAX)
            .min(10_000);
        let rows = store.audit_range(next, page)?;
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
            if row.seq == want {
                record = Some(row.record);
            }
            next += 1;
        }
    }
    Ok(Loaded {
        pruned,
        prefix,
        leaves,
        record,
    })
}

fn check_root(view: &TreeView<'_>, cp: &CheckpointRow) -> Result<(), Error> {
    if view
        .root(cp.seq)
        .is_none_or(|r| r[..] != cp.merkle_root[..])
    {
        return Err(unavailable(format!(
            "the stored records do not match checkpoint {}'s Merkle root; run `warden audit verify`",
            cp.seq
        )));
    }
    Ok(())
}

/// Builds the inclusion proof of record `seq` against the latest checkpoint.
pub fn inclusion(store: &Store, seq: u64) -> Result<Proof, Error> {
    let checkpoints = store.audit_checkpoints()?;
    let cp = checkpoints
        .last()
        .cloned()
        .ok_or_else(|| unavailable("no checkpoint has been signed yet".into()))?;
    if seq == 0 || seq > cp.seq {
        return Err(unavailable(format!(
            "record {seq} is not covered by the latest checkpoint (seq {})",
            cp.seq
        )));
    }
    let loaded = load(store, &checkpoints, cp.seq, seq)?;
    if seq <= loaded.pruned {
        return Err(unavailable(format!(
            "record {seq} was pruned after shipping (records through {})",
            loaded.pruned
        )));
    }
    let view = TreeView::new(&loaded.prefix, &loaded.leaves);
    check_root(&view, &cp)?;
    let path = view
        .inclusion_proof(seq - 1, cp.seq)
        .ok_or_else(|| unavailable(format!("cannot build the proof of record {seq}")))?;
    let record = loaded
        .record
        .ok_or_else(|| unavailable(format!("record {seq} is missing")))?;
    Ok(Proof {
        seq,
        leaf_hash: leaf_hash(record.as_bytes()),
        record,
        tree_size: cp.seq,
        path,
        checkpoint: cp,
    })
}

/// Builds the consistency proof between the checkpoints at `from` and `to`.
pub fn consistency(store: &Store, from: u64, to: u64) -> Result<Consistency, Error> {
    let checkpoints = store.audit_checkpoints()?;
    let find = |seq: u64| {
        checkpoints
            .iter()
            .find(|c| c.seq == seq)
            .cloned()
            .ok_or_else(|| unavailable(format!("there is no checkpoint at seq {seq}")))
    };
    if from == 0 || from > to {
        return Err(unavailable(format!(
            "need two checkpoints with 0 < from <= to, got {from} and {to}"
        )));
    }
    let (first, second) = (find(from)?, find(to)?);
    let loaded = load(store, &checkpoints, to, 0)?;
    let view = TreeView::new(&loaded.prefix, &loaded.leaves);
    check_root(&view, &second)?;
    let path = view.consistency_proof(from, to).ok_or_else(|| {
        unavailable(format!(
            "checkpoint {from} lies in the pruned prefix (records through {})",
            loaded.pruned
        ))
    })?;
    Ok(Consistency {
        from: first,
        to: second,
        path,
    })
}
