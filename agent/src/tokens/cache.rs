//! Tokens whose signature was already checked.
//!
//! An Ed25519 verification costs ~40 µs; a web worker presents the same
//! access token on every request of a page. The cache remembers only that
//! the signature of this exact token string is good (and the claims it
//! carries); expiry, audience, key retirement and revocation are checked on
//! every hit, so revocation is still honoured at once.
//!
//! Entries are keyed by the SHA-256 of the token, not the token: the map's
//! key comparison is not constant-time, and comparing digests leaks nothing
//! about a valid token; it also bounds an entry's size.

use super::Claims;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Clone)]
pub(crate) struct Cached {
    pub claims: Arc<Claims>,
    pub kid: Arc<str>,
}

pub(crate) struct VerifiedCache {
    map: RwLock<HashMap<[u8; 32], Cached>>,
    capacity: usize,
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> VerifiedCache {
        VerifiedCache {
            map: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<Cached> {
        // A poisoned lock only means another thread panicked mid-insert of a
        // plain map; the map is still a valid map.
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(digest).cloned()
    }

    /// Remembers `token`; when full, drops what expired before `now_s`, and
    /// if that is not enough, everything (a flood of distinct tokens must not
    /// grow memory without bound).
    pub fn insert(&self, digest: [u8; 32], cached: Cached, now_s: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity {
            map.retain(|_, c| c.claims.exp >= now_s);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(digest, cached);
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}
