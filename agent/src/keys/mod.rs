//! The key ring: every signing and MAC key the agent holds, their life cycle
//! and their protection at rest.
//!
//! Why one ring for every purpose (`jwt`, `task`, `audit`, `webhook:<name>`,
//! `outbound:<name>`): rotation, sealing, retirement and age reporting are the
//! same problem everywhere, and auditors want one answer to "which key signed
//! this, and when was it replaced".
//!
//! Life cycle: `pending` (published in the JWKS, not yet signing) → `active`
//! (the one signer of its purpose) → `retiring` (verify-only for a grace
//! period so tokens in flight stay valid) → `retired` (gone from the JWKS,
//! private half wiped). Transitions that are due by time are applied lazily
//! (on the next signer lookup) and by [`KeyRing::advance`]; readers compare
//! against the clock so a due transition is honoured even before it is
//! written. Private keys are sealed with AES-256-GCM under the KEK
//! ([`kek`]), with the kid, purpose and algorithm as associated data so a
//! sealed blob cannot be moved to another key's row.

mod config;
mod error;
pub mod kek;
mod material;
mod metrics;
mod rotation;

use material::load_entry;

pub(crate) use config::{duration_ms, ser_ms};
pub use config::{Config, RawConfig, DAY_MS};
pub use error::Error;
pub use kek::{Kek, KekSource};
pub use metrics::KeyMetrics;

use crate::clock::SharedClock;
use crate::store::{KeyRow, Store};
use arc_swap::ArcSwap;
use kek::{random_bytes, SecretBytes};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Signature algorithms the ring can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Algorithm {
    EdDSA,
    ES256,
    HS256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::HS256 => "HS256",
        }
    }

    pub fn parse(s: &str) -> Result<Algorithm, Error> {
        match s {
            "EdDSA" => Ok(Algorithm::EdDSA),
            "ES256" => Ok(Algorithm::ES256),
            "HS256" => Ok(Algorithm::HS256),
            other => Err(Error::BadAlgorithm(other.to_string())),
        }
    }

    /// Whether the key has a public half that may be published.
    pub fn is_asymmetric(self) -> bool {
        !matches!(self, Algorithm::HS256)
    }
}

/// Where a key is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Pending,
    Active,
    Retiring,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Option<KeyState> {
        Some(match s {
            "pending" => KeyState::Pending,
            "active" => KeyState::Active,
            "retiring" => KeyState::Retiring,
            "retired" => KeyState::Retired,
            _ => return None,
        })
    }
}

/// What a key is for. Keys never cross purposes: a task key cannot sign an
/// access token, a webhook secret cannot sign an audit checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Purpose(String);

impl Purpose {
    pub const JWT: &'static str = "jwt";
    pub const TASK: &'static str = "task";
    pub const AUDIT: &'static str = "audit";

    pub fn jwt() -> Purpose {
        Purpose(Self::JWT.to_string())
    }

    pub fn task() -> Purpose {
        Purpose(Self::TASK.to_string())
    }

    pub fn audit() -> Purpose {
        Purpose(Self::AUDIT.to_string())
    }

    /// Parses `jwt`, `task`, `audit`, `webhook:<name>` or `outbound:<name>`
    /// (name: 1-64 of `a-z 0-9 _ -`).
    pub fn parse(s: &str) -> Result<Purpose, Error> {
        let ok = match s {
            Self::JWT | Self::TASK | Self::AUDIT => true,
            _ => match s.split_once(':') {
                Some(("webhook" | "outbound", name)) => {
                    !name.is_empty()
                        && name.len() <= 64
                        && name
                            .bytes()
                            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
                }
                _ => false,
            },
        };
        if ok {
            Ok(Purpose(s.to_string()))
        } else {
            Err(Error::BadPurpose(s.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn allows(&self, alg: Algorithm) -> bool {
        match self.0.as_str() {
            // Checkpoints are verified offline by third parties: public key only.
            Self::AUDIT => alg == Algorithm::EdDSA,
            _ => true,
        }
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Public facts about one key (for `warden keys list`, status, metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub purpose: Purpose,
    pub alg: Algorithm,
    pub state: KeyState,
    pub created_at_ms: i64,
    pub activate_at_ms: Option<i64>,
    pub activated_at_ms: Option<i64>,
    pub retire_at_ms: Option<i64>,
    pub retired_at_ms: Option<i64>,
    pub age_days: i64,
    /// Older than the rotation policy while still signing.
    pub rotation_due: bool,
}

/// A life-cycle event, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyEvent {
    /// `created`, `rotated`, `activated`, `retiring`, `retired`, `rolled_back`, `cancelled`.
    pub action: &'static str,
    pub kid: String,
    pub purpose: Purpose,
    pub at_ms: i64,
}

/// Receives key life-cycle events (the audit log, wired by the agent).
pub trait EventSink: Send + Sync {
    fn key_event(&self, event: &KeyEvent);
}

/// Discards events (tests, offline tools).
#[derive(Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn key_event(&self, _event: &KeyEvent) {}
}

enum Material {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
    Hmac(ring::hmac::Key, SecretBytes),
}

#[derive(Clone)]
struct Entry {
    row: KeyRow,
    purpose: Purpose,
    alg: Algorithm,
    state: KeyState,
    /// `None` once retired (wiped).
    material: Option<Arc<Material>>,
    decoding: Option<jsonwebtoken::DecodingKey>,
}

/// A shareable handle on one key: signs (if it still may) and verifies.
#[derive(Clone)]
pub struct KeyHandle(Arc<Entry>);

/// What the audit log (and anything else that signs) asks the ring for.
pub type Signer = KeyHandle;

impl KeyHandle {
    pub fn kid(&self) -> &str {
        &self.0.row.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.0.alg
    }

    pub fn purpose(&self) -> &Purpose {
        &self.0.purpose
    }

    pub fn state(&self) -> KeyState {
        self.0.state
    }

    /// Public key bytes: raw 32 bytes for Ed25519, uncompressed SEC1 point
    /// for P-256, empty for HMAC keys.
    pub fn public_key(&self) -> &[u8] {
        &self.0.row.public_key
    }

    /// Signs `msg` (Ed25519 / ES256 fixed r||s / HMAC-SHA256).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        match self.0.material.as_deref() {
            Some(Material::Ed25519(pair)) => Ok(pair.sign(msg).as_ref().to_vec()),
            Some(Material::P256(pair)) => pair
                .sign(&SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Crypto),
            Some(Material::Hmac(key, _)) => Ok(ring::hmac::sign(key, msg).as_ref().to_vec()),
            None => Err(Error::NoActiveKey(self.0.purpose.to_string())),
        }
    }

    /// Verifies a signature made by [`KeyHandle::sign`]; constant time for HMAC.
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};
        match (self.0.alg, self.0.material.as_deref()) {
            (Algorithm::EdDSA, _) => UnparsedPublicKey::new(&ED25519, self.public_key())
                .verify(msg, signature)
                .is_ok(),
            (Algorithm::ES256, _) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.public_key())
                    .verify(msg, signature)
                    .is_ok()
            }
            (Algorithm::HS256, Some(Material::Hmac(key, _))) => {
                ring::hmac::verify(key, msg, signature).is_ok()
            }
            (Algorithm::HS256, _) => false,
        }
    }

    /// The key as `jsonwebtoken` wants it for verification.
    pub fn decoding_key(&self) -> Option<&jsonwebtoken::DecodingKey> {
        self.0.decoding.as_ref()
    }

    /// Public facts.
    pub fn info(&self, now_ms: i64, rotation_period_ms: i64) -> KeyInfo {
        info_of(&self.0, now_ms, rotation_period_ms)
    }

    /// Whether the key may verify at `now_ms` (published and not past its grace).
    pub fn verifies_at(&self, now_ms: i64) -> bool {
        match self.0.state {
            KeyState::Pending | KeyState::Active => true,
            KeyState::Retiring => self.0.row.retire_at.is_some_and(|t| now_ms < t),
            KeyState::Retired => false,
        }
    }
}

fn info_of(e: &Entry, now_ms: i64, rotation_period_ms: i64) -> KeyInfo {
    let age_ms = now_ms.saturating_sub(e.row.created_at).max(0);
    KeyInfo {
        kid: e.row.kid.clone(),
        purpose: e.purpose.clone(),
        alg: e.alg,
        state: e.state,
        created_at_ms: e.row.created_at,
        activate_at_ms: e.row.activate_at,
        activated_at_ms: e.row.activated_at,
        retire_at_ms: e.row.retire_at,
        retired_at_ms: e.row.retired_at,
        age_days: age_ms / DAY_MS,
        rotation_due: e.state == KeyState::Active && age_ms >= rotation_period_ms,
    }
}

struct Snapshot {
    entries: Vec<KeyHandle>,
    by_kid: HashMap<String, KeyHandle>,
    /// Earliest time a stored transition (or auto-rotation) falls due.
    next_due: i64,
}

/// The key ring. Reads are lock-free snapshots; changes are serialised and
/// written to the store before they become visible.
pub struct KeyRing {
    store: Store,
    clock: SharedClock,
    kek: Kek,
    cfg: Config,
    snap: ArcSwap<Snapshot>,
    write: Mutex<()>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.snap.load().entries.len())
            .finish_non_exhaustive()
    }
}

fn aad(kid: &str, purpose: &str, alg: &str) -> Vec<u8> {
    format!("warden-key-v1|{kid}|{purpose}|{alg}").into_bytes()
}

fn corrupt(kid: &str, reason: &str) -> Error {
    Error::Corrupt {
        kid: kid.to_string(),
        reason: reason.to_string(),
    }
}

impl KeyRing {
    /// Loads (and unseals) every stored key, then applies due transitions.
    /// A KEK that cannot open the stored keys is a start-up error.
    pub fn open(
        store: Store,
        clock: SharedClock,
        kek: Kek,
        cfg: Config,
        events: Arc<dyn EventSink>,
    ) -> Result<KeyRing, Error> {
        let rows = store.keys_all()?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            entries.push(load_entry(&kek, row)?);
        }
        let ring = KeyRing {
            store,
            clock,
            kek,
            snap: ArcSwap::from_pointee(build_snapshot(entries, &cfg)),
            cfg,
            write: Mutex::new(()),
            events,
        };
        ring.advance()?;
        Ok(ring)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Whether `purpose` may use `alg`: audit keys are Ed25519 only, and a
    /// shared-secret (HS256) token key only when `keys.token_algorithm` says
    /// so, since anyone able to verify such a token can also forge one.
    fn permits(&self, purpose: &Purpose, alg: Algorithm) -> bool {
        let token_purpose = matches!(purpose.as_str(), Purpose::JWT | Purpose::TASK);
        if token_purpose && alg == Algorithm::HS256 && self.cfg.token_algorithm != Algorithm::HS256
        {
            return false;
        }
        purpose.allows(alg)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded state lives in the store and the snapshot, both
        // consistent after a panic elsewhere; the lock only orders writers.
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure `purpose` has a key able to sign: creates an active one at
    /// once if there is neither an active nor a pending key.
    pub fn ensure(&self, purpose: &Purpose, alg: Algorithm) -> Result<KeyHandle, Error> {
        if !self.permits(purpose, alg) {
            return Err(Error::AlgorithmNotAllowed {
                alg: alg.as_str(),
                purpose: purpose.to_string(),
            });
        }
        {
            let _g = self.lock();
            let snap = self.snap.load_full();
            let has = snap.entries.iter().any(|k| {
                &k.0.purpose == purpose && matches!(k.0.state, KeyState::Active | KeyState::Pending)
            });
            if !has {
                let now = self.now();
                let row = self.new_key_row(purpose, alg, KeyState::Active, now, None)?;
                self.commit(&snap, vec![row.clone()])?;
                self.emit("created", &row.kid, purpose, now);
            }
        }
        self.signer(purpose)
    }

    /// The key that signs for `purpose` now.
    pub fn signer(&self, purpose: &Purpose) -> Result<Signer, Error> {
        let now = self.now();
        if now >= self.snap.load().next_due {
            self.advance()?;
        }
        self.snap
            .load()
            .entries
            .iter()
            .find(|k| &k.0.purpose == purpose && k.0.state == KeyState::Active)
            .cloned()
            .ok_or_else(|| Error::NoActiveKey(purpose.to_string()))
    }

    /// A key that may verify right now (pending, active, or retiring within
    /// its grace period).
    pub fn verifier(&self, kid: &str) -> Option<KeyHandle> {
        let now = self.now();
        self.snap
            .load()
            .by_kid
            .get(kid)
            .filter(|k| k.verifies_at(now))
            .cloned()
    }

    /// Any key ever held, whatever its state (public half of old audit
    /// checkpoints).
    pub fn key(&self, kid: &str) -> Option<KeyHandle> {
        self.snap.load().by_kid.get(kid).cloned()
    }

    /// Keys that may verify now, of the given purposes, asymmetric only:
    /// what the JWKS publishes.
    pub fn published(&self, purposes: &[&str]) -> Vec<KeyHandle> {
        let now = self.now();
        self.snap
            .load()
            .entries
            .iter()
            .filter(|k| {
                purposes.contains(&k.0.purpose.as_str())
                    && k.0.alg.is_asymmetric()
                    && k.verifies_at(now)
            })
            .cloned()
            .collect()
    }

    /// Every key's public facts.
    pub fn list(&self) -> Vec<KeyInfo> {
        let now = self.now();
        self.snap
            .load()
            .entries
            .iter()
            .map(|k| info_of(&k.0, now, self.cfg.rotation_period_ms))
            .collect()
    }

    fn info(&self, kid: &str) -> Result<KeyInfo, Error> {
        let now = self.now();
        self.snap
            .load()
            .by_kid
            .get(kid)
            .map(|k| info_of(&k.0, now, self.cfg.rotation_period_ms))
            .ok_or_else(|| Error::UnknownKey(kid.to_string()))
    }

    fn emit(&self, action: &'static str, kid: &str, purpose: &Purpose, at_ms: i64) {
        tracing::info!(action, kid, %purpose, "key life-cycle event");
        self.events.key_event(&KeyEvent {
            action,
            kid: kid.to_string(),
            purpose: purpose.clone(),
            at_ms,
        });
    }

    /// Persists `rows` and then publishes a snapshot with them applied.
    fn commit(&self, snap: &Snapshot, rows: Vec<KeyRow>) -> Result<(), Error> {
        self.store.keys_save(&rows)?;
        let mut entries: Vec<Entry> = snap.entries.iter().map(|k| (*k.0).clone()).collect();
        for row in rows {
            match entries.iter_mut().find(|e| e.row.kid == row.kid) {
                Some(e) => {
                    e.state = KeyState::parse(&row.state)
                        .ok_or_else(|| corrupt(&row.kid, "unknown state"))?;
                    if row.sealed_private.is_none() {
                        e.material = None;
                    }
                    e.row = row;
                }
                None => entries.push(load_entry(&self.kek, row)?),
            }
        }
        self.snap
            .store(Arc::new(build_snapshot(entries, &self.cfg)));
        Ok(())
    }
}

fn build_snapshot(entries: Vec<Entry>, cfg: &Config) -> Snapshot {
    let mut next_due = i64::MAX;
    for e in &entries {
        let due = match e.state {
            KeyState::Pending => e.row.activate_at,
            KeyState::Retiring => e.row.retire_at,
            KeyState::Active if cfg.auto_rotate => {
                Some(e.row.created_at.saturating_add(cfg.rotation_period_ms))
            }
            _ => None,
        };
        if let Some(t) = due {
            next_due = next_due.min(t);
        }
    }
    let entries: Vec<KeyHandle> = entries
        .into_iter()
        .map(|e| KeyHandle(Arc::new(e)))
        .collect();
    let by_kid = entries
        .iter()
        .map(|k| (k.kid().to_string(), k.clone()))
        .collect();
    Snapshot {
        entries,
        by_kid,
        next_due,
    }
}

#[cfg(test)]
mod tests;
