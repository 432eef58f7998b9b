//! Hashing: the per-record chain and the RFC 6962 Merkle tree.
//!
//! Two structures over the same leaves, for two different questions:
//! - the **chain** `h(n) = SHA-256(h(n-1) || leaf(n))`, `h(0)` = 32 zero
//!   bytes, makes every record commit to all its predecessors, so a verifier
//!   walking the log names the *first* record that was edited, removed or
//!   moved;
//! - the **Merkle tree** (RFC 6962: `leaf = SHA-256(0x00 || record)`,
//!   `node = SHA-256(0x01 || left || right)`) gives checkpoints a root from
//!   which one record's inclusion can be proven with log(n) hashes, without
//!   handing over the whole log.
//!
//! The writer keeps only the tree's compact range ([`Frontier`]: one root per
//! perfect subtree, log(n) hashes) so appends stay O(log n).

use ring::digest::{Context, SHA256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// Chain hash before the first record.
pub const GENESIS: Hash = [0u8; 32];

fn finish(ctx: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// RFC 6962 leaf hash of a record's canonical bytes.
pub fn leaf_hash(record: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(record);
    finish(ctx)
}

/// RFC 6962 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    finish(ctx)
}

/// Chain hash of a record given its predecessor's chain hash.
pub fn chain_hash(prev: &Hash, leaf: &Hash) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(prev);
    ctx.update(leaf);
    finish(ctx)
}

/// Converts a stored hash column back into a [`Hash`].
pub fn to_hash(bytes: &[u8]) -> Option<Hash> {
    <[u8; 32]>::try_from(bytes).ok()
}

/// RFC 6962 compact range: roots of the perfect subtrees covering leaves
/// `0..size`, largest (leftmost) first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.nodes.push(leaf);
        let mut s = self.size;
        while s & 1 == 1 {
            // Two nodes always exist here: one per set low bit plus the push.
            if let (Some(right), Some(left)) = (self.nodes.pop(), self.nodes.pop()) {
                self.nodes.push(node_hash(&left, &right));
            }
            s >>= 1;
        }
        self.size += 1;
    }

    /// The Merkle tree hash (MTH) of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        match iter.next() {
            None => {
                let ctx = Context::new(&SHA256);
                finish(ctx)
            }
            Some(last) => iter.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }

    /// Serialised nodes (32 bytes each), for storing with a checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.nodes.concat()
    }

    /// Rebuilds a frontier of `size` leaves from [`Frontier::to_bytes`].
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Option<Frontier> {
        if bytes.len() % 32 != 0 || bytes.len() / 32 != size.count_ones() as usize {
            return None;
        }
        let nodes = bytes.chunks_exact(32).filter_map(to_hash).collect();
        Some(Frontier { size, nodes })
    }
}

/// Largest power of two strictly less than `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// Merkle tree hash of a slice of leaf hashes (RFC 6962 MTH).
pub fn tree_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Frontier::new().root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&tree_root(&leaves[..k]), &tree_root(&leaves[k..]))
        }
    }
}

/// RFC 6962 audit path for leaf `index` in the tree over `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    path(leaves, index, &mut proof);
    Some(proof)
}

fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(&leaves[..k], m, out);
        out.push(tree_root(&leaves[k..]));
    } else {
        path(&leaves[k..], m - k, out);
        out.push(tree_root(&leaves[..k]));
    }
}

/// Verifies an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && &r == root
}

/// The leaf hashes a proof can draw on: a pruned prefix known only by its
/// compact range (the frontier stored with the checkpoint retention stopped
/// at) followed by the retained leaves. Any proof about a retained leaf needs
/// of the prefix only whole frontier nodes, so pruning never costs proofs
/// about what is still stored.
#[derive(Debug)]
pub struct TreeView<'a> {
    prefix: Vec<(u64, u64, Hash)>,
    prefix_size: u64,
    leaves: &'a [Hash],
}

impl<'a> TreeView<'a> {
    /// `leaves[i]` is leaf `prefix.size() + i`.
    pub fn new(prefix: &Frontier, leaves: &'a [Hash]) -> TreeView<'a> {
        let mut start = 0u64;
        let mut nodes = Vec::with_capacity(prefix.nodes.len());
        let mut bits = (0..64u32).rev().filter(|b| prefix.size >> b & 1 == 1);
        for node in &prefix.nodes {
            if let Some(bit) = bits.next() {
                let len = 1u64 << bit;
                nodes.push((start, len, *node));
                start += len;
            }
        }
        TreeView {
            prefix: nodes,
            prefix_size: prefix.size,
            leaves,
        }
    }

    /// Leaves covered.
    pub fn size(&self) -> u64 {
        self.prefix_size + self.leaves.len() as u64
    }

    /// MTH of leaves `a..b`, if computable from what is known.
    fn range(&self, a: u64, b: u64) -> Option<Hash> {
        if a >= b || b > self.size() {
            return None;
        }
        let p = self.prefix_size;
        if b <= p {
            return self
                .prefix
                .iter()
                .find(|(start, len, _)| *start == a && *len == b - a)
                .map(|(_, _, h)| *h);
        }
        if a >= p {
            let lo = usize::try_from(a - p).ok()?;
            let hi = usize::try_from(b - p).ok()?;
            return Some(tree_root(self.leaves.get(lo..hi)?));
        }
        let k = split(usize::try_from(b - a).ok()?) as u64;
        Some(node_hash(&self.range(a, a + k)?, &self.range(a + k, b)?))
    }

    /// MTH of the first `n` leaves.
    pub fn root(&self, n: u64) -> Option<Hash> {
        if n == 0 {
            return Some(Frontier::new().root());
        }
        self.range(0, n)
    }

    /// RFC 6962 audit path of leaf `m` in the tree of the first `n` leaves;
    /// None when `m` was pruned or is out of range.
    pub fn inclusion_proof(&self, m: u64, n: u64) -> Option<Vec<Hash>> {
        if m >= n || n > self.size() || m < self.prefix_size {
            return None;
        }
        let mut out = Vec::new();
        self.path(m, 0, n, &mut out)?;
        Some(out)
    }

    /// RFC 6962 consistency proof between the trees of the first `m` and
    /// the first `n` leaves (0 < m <= n).
    pub fn consistency_proof(&self, m: u64, n: u64) -> Option<Vec<Hash>> {
        if m == 0 || m > n || n > self.size() {
            return None;
        }
        let mut out = Vec::new();
        self.subproof(m, 0, n, true, &mut out)?;
        Some(out)
    }

    fn subproof(&self, m: u64, a: u64, b: u64, whole: bool, out: &mut Vec<Hash>) -> Option<()> {
        let n = b - a;
        if m == n {
            if !whole {
                out.push(self.range(a, b)?);
            }
            return Some(());
        }
        let k = split(usize::try_from(n).ok()?) as u64;
        if m <= k {
            self.subproof(m, a, a + k, whole, out)?;
            out.push(self.range(a + k, b)?);
        } else {
            self.subproof(m - k, a + k, b, false, out)?;
            out.push(self.range(a, a + k)?);
        }
        Some(())
    }

    fn path(&self, m: u64, a: u64, b: u64, out: &mut Vec<Hash>) -> Option<()> {
        if b - a <= 1 {
            return Some(());
        }
        let k = split(usize::try_from(b - a).ok()?) as u64;
        if m < a + k {
            self.path(m, a, a + k, out)?;
            out.push(self.range(a + k, b)?);
        } else {
            self.path(m, a + k, b, out)?;
            out.push(self.range(a, a + k)?);
        }
        Some(())
    }
}

/// Verifies a consistency proof (RFC 9162 section 2.1.4.2): the tree of
/// `first` leaves with root `first_root` is a prefix of the tree of `second`
/// leaves with root `second_root`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let Some((head, rest)) = path.split_first() else {
        return false;
    };
    let (mut fr, mut sr) = (*head, *head);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    &fr == first_root && &sr == second_root && snode == 0
}
