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
mod metrics;

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

    /// Starts a rotation: a new key, published at once, signing after the
    /// propagation delay. `alg` defaults to the current signer's algorithm.
    pub fn rotate(&self, purpose: &Purpose, alg: Option<Algorithm>) -> Result<KeyInfo, Error> {
        let kid = {
            let _g = self.lock();
            self.rotate_locked(purpose, alg)?
        };
        self.advance()?;
        self.info(&kid)
    }

    fn rotate_locked(&self, purpose: &Purpose, alg: Option<Algorithm>) -> Result<String, Error> {
        let snap = self.snap.load_full();
        if let Some(p) = snap
            .entries
            .iter()
            .find(|k| &k.0.purpose == purpose && k.0.state == KeyState::Pending)
        {
            return Err(Error::RotationPending {
                purpose: purpose.to_string(),
                kid: p.kid().to_string(),
            });
        }
        let current = snap
            .entries
            .iter()
            .find(|k| &k.0.purpose == purpose && k.0.state == KeyState::Active);
        let alg = alg.or_else(|| current.map(|k| k.0.alg)).unwrap_or(
            if matches!(purpose.as_str(), Purpose::JWT | Purpose::TASK) {
                self.cfg.token_algorithm
            } else {
                Algorithm::EdDSA
            },
        );
        if !self.permits(purpose, alg) {
            return Err(Error::AlgorithmNotAllowed {
                alg: alg.as_str(),
                purpose: purpose.to_string(),
            });
        }
        let now = self.now();
        let row = if current.is_some() {
            let at = now.saturating_add(self.cfg.propagation_delay_ms.max(0));
            self.new_key_row(purpose, alg, KeyState::Pending, now, Some(at))?
        } else {
            self.new_key_row(purpose, alg, KeyState::Active, now, None)?
        };
        let kid = row.kid.clone();
        self.commit(&snap, vec![row])?;
        self.emit("rotated", &kid, purpose, now);
        Ok(kid)
    }

    /// Undoes the last rotation of `purpose`: cancels a pending key, or
    /// re-activates the previous key while it is still in its grace period
    /// (the current key becomes verify-only).
    pub fn rollback(&self, purpose: &Purpose) -> Result<KeyInfo, Error> {
        let _g = self.lock();
        let snap = self.snap.load_full();
        let now = self.now();
        let of_purpose = |s: KeyState| {
            snap.entries
                .iter()
                .filter(move |k| &k.0.purpose == purpose && k.0.state == s)
        };
        if let Some(p) = of_purpose(KeyState::Pending).next() {
            let mut row = p.0.row.clone();
            retire_row(&mut row, now);
            let kid = row.kid.clone();
            self.commit(&snap, vec![row])?;
            self.emit("cancelled", &kid, purpose, now);
            drop(_g);
            return self.info(&kid);
        }
        let previous = of_purpose(KeyState::Retiring)
            .filter(|k| k.verifies_at(now))
            .max_by_key(|k| (k.0.row.activated_at, k.0.row.created_at))
            .ok_or_else(|| Error::NothingToRollBack(purpose.to_string()))?;
        let mut changed = Vec::new();
        for cur in of_purpose(KeyState::Active) {
            let mut row = cur.0.row.clone();
            row.state = KeyState::Retiring.as_str().to_string();
            row.retire_at = Some(now.saturating_add(self.cfg.grace_ms));
            changed.push(row);
        }
        let mut prev = previous.0.row.clone();
        prev.state = KeyState::Active.as_str().to_string();
        prev.retire_at = None;
        prev.activated_at = Some(now);
        let kid = prev.kid.clone();
        changed.push(prev);
        self.commit(&snap, changed)?;
        self.emit("rolled_back", &kid, purpose, now);
        drop(_g);
        self.info(&kid)
    }

    /// Retires a key at once: it leaves the JWKS, tokens it signed stop
    /// verifying, and its private half is wiped. The active key cannot be
    /// retired (rotate first), so a purpose is never left without a signer.
    pub fn retire(&self, kid: &str) -> Result<KeyInfo, Error> {
        let _g = self.lock();
        let snap = self.snap.load_full();
        let key = snap
            .by_kid
            .get(kid)
            .ok_or_else(|| Error::UnknownKey(kid.chars().take(80).collect()))?;
        match key.0.state {
            KeyState::Active => return Err(Error::RetireActive(kid.to_string())),
            KeyState::Retired => {}
            KeyState::Pending | KeyState::Retiring => {
                let now = self.now();
                let mut row = key.0.row.clone();
                retire_row(&mut row, now);
                let purpose = key.0.purpose.clone();
                self.commit(&snap, vec![row])?;
                self.emit("retired", kid, &purpose, now);
            }
        }
        drop(_g);
        self.info(kid)
    }

    /// Applies every transition due by now: pending keys whose propagation
    /// delay passed become active (their predecessor starts its grace),
    /// retiring keys past grace retire, and (when configured) keys past the
    /// rotation period rotate. Returns whether anything changed.
    pub fn advance(&self) -> Result<bool, Error> {
        let _g = self.lock();
        let mut any = false;
        // An automatic rotation with no propagation delay is itself due at
        // once; a few rounds settle everything.
        for _ in 0..4 {
            if !self.advance_locked()? {
                break;
            }
            any = true;
        }
        Ok(any)
    }

    fn advance_locked(&self) -> Result<bool, Error> {
        let snap = self.snap.load_full();
        let now = self.now();
        if now < snap.next_due {
            return Ok(false);
        }
        let mut changed: Vec<KeyRow> = Vec::new();
        let mut events = Vec::new();
        for k in &snap.entries {
            let e = &k.0;
            match e.state {
                KeyState::Pending if e.row.activate_at.is_some_and(|t| t <= now) => {
                    for old in snap
                        .entries
                        .iter()
                        .filter(|o| o.0.purpose == e.purpose && o.0.state == KeyState::Active)
                    {
                        let mut row = old.0.row.clone();
                        row.state = KeyState::Retiring.as_str().to_string();
                        row.retire_at = Some(now.saturating_add(self.cfg.grace_ms));
                        events.push(("retiring", row.kid.clone(), old.0.purpose.clone()));
                        changed.push(row);
                    }
                    let mut row = e.row.clone();
                    row.state = KeyState::Active.as_str().to_string();
                    row.activated_at = Some(now);
                    events.push(("activated", row.kid.clone(), e.purpose.clone()));
                    changed.push(row);
                }
                KeyState::Retiring if e.row.retire_at.is_some_and(|t| t <= now) => {
                    let mut row = e.row.clone();
                    retire_row(&mut row, now);
                    events.push(("retired", row.kid.clone(), e.purpose.clone()));
                    changed.push(row);
                }
                _ => {}
            }
        }
        if !changed.is_empty() {
            self.commit(&snap, changed)?;
        }
        for (action, kid, purpose) in &events {
            self.emit(action, kid, purpose, now);
        }
        if self.cfg.auto_rotate {
            let snap = self.snap.load_full();
            let due: Vec<Purpose> = snap
                .entries
                .iter()
                .filter(|k| info_of(&k.0, now, self.cfg.rotation_period_ms).rotation_due)
                .filter(|k| {
                    !snap
                        .entries
                        .iter()
                        .any(|p| p.0.purpose == k.0.purpose && p.0.state == KeyState::Pending)
                })
                .map(|k| k.0.purpose.clone())
                .collect();
            for purpose in &due {
                let kid = self.rotate_locked(purpose, None)?;
                tracing::info!(%purpose, %kid, "key older than the rotation policy; rotated automatically");
            }
            return Ok(!events.is_empty() || !due.is_empty());
        }
        Ok(!events.is_empty())
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

    fn new_key_row(
        &self,
        purpose: &Purpose,
        alg: Algorithm,
        state: KeyState,
        now: i64,
        activate_at: Option<i64>,
    ) -> Result<KeyRow, Error> {
        let kid = format!(
            "{}-{}",
            purpose.as_str().replace(':', "-"),
            hex::encode(random_bytes::<8>()?)
        );
        let rng = SystemRandom::new();
        let (private, public) = match alg {
            Algorithm::EdDSA => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| Error::Crypto)?;
                let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| Error::Crypto)?;
                (
                    SecretBytes::new(doc.as_ref().to_vec()),
                    pair.public_key().as_ref().to_vec(),
                )
            }
            Algorithm::ES256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| Error::Crypto)?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                        .map_err(|_| Error::Crypto)?;
                (
                    SecretBytes::new(doc.as_ref().to_vec()),
                    pair.public_key().as_ref().to_vec(),
                )
            }
            Algorithm::HS256 => (SecretBytes::new(random_bytes::<32>()?.to_vec()), Vec::new()),
        };
        let sealed = self
            .kek
            .seal(&aad(&kid, purpose.as_str(), alg.as_str()), private.expose())?;
        Ok(KeyRow {
            kid,
            purpose: purpose.as_str().to_string(),
            alg: alg.as_str().to_string(),
            state: state.as_str().to_string(),
            public_key: public,
            sealed_private: Some(sealed),
            created_at: now,
            activate_at,
            activated_at: (state == KeyState::Active).then_some(now),
            retire_at: None,
            retired_at: None,
        })
    }
}

fn retire_row(row: &mut KeyRow, now: i64) {
    row.state = KeyState::Retired.as_str().to_string();
    row.retired_at = Some(now);
    row.sealed_private = None;
}

fn load_entry(kek: &Kek, row: KeyRow) -> Result<Entry, Error> {
    let kid = row.kid.clone();
    let alg = Algorithm::parse(&row.alg).map_err(|_| corrupt(&kid, "unknown algorithm"))?;
    let state = KeyState::parse(&row.state).ok_or_else(|| corrupt(&kid, "unknown state"))?;
    let purpose = Purpose::parse(&row.purpose).map_err(|_| corrupt(&kid, "unknown purpose"))?;
    let material = match (&row.sealed_private, state) {
        (_, KeyState::Retired) | (None, _) => None,
        (Some(sealed), _) => {
            let private = kek
                .open(&aad(&kid, &row.purpose, &row.alg), sealed)
                .ok_or_else(|| Error::Unseal { kid: kid.clone() })?;
            Some(Arc::new(material_of(&kid, alg, private, &row.public_key)?))
        }
    };
    if material.is_none() && state != KeyState::Retired {
        return Err(corrupt(&kid, "live key without private material"));
    }
    let decoding = match alg {
        Algorithm::EdDSA if row.public_key.len() == 32 => {
            Some(jsonwebtoken::DecodingKey::from_ed_der(&row.public_key))
        }
        Algorithm::ES256 if row.public_key.len() == 65 => {
            Some(jsonwebtoken::DecodingKey::from_ec_der(&row.public_key))
        }
        Algorithm::HS256 => match material.as_deref() {
            Some(Material::Hmac(_, secret)) => {
                jsonwebtoken::DecodingKey::from_secret(secret.expose()).ok()
            }
            _ => None,
        },
        _ => return Err(corrupt(&kid, "public key has the wrong length")),
    };
    Ok(Entry {
        row,
        purpose,
        alg,
        state,
        material,
        decoding,
    })
}

fn material_of(
    kid: &str,
    alg: Algorithm,
    private: SecretBytes,
    public: &[u8],
) -> Result<Material, Error> {
    let rng = SystemRandom::new();
    let m = match alg {
        Algorithm::EdDSA => Material::Ed25519(
            Ed25519KeyPair::from_pkcs8(private.expose())
                .map_err(|_| corrupt(kid, "not an Ed25519 PKCS#8 key"))?,
        ),
        Algorithm::ES256 => Material::P256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, private.expose(), &rng)
                .map_err(|_| corrupt(kid, "not a P-256 PKCS#8 key"))?,
        ),
        Algorithm::HS256 => {
            if private.expose().len() < 32 {
                return Err(corrupt(kid, "HMAC secret shorter than 256 bits"));
            }
            Material::Hmac(
                ring::hmac::Key::new(ring::hmac::HMAC_SHA256, private.expose()),
                private,
            )
        }
    };
    let derived: &[u8] = match &m {
        Material::Ed25519(p) => p.public_key().as_ref(),
        Material::P256(p) => p.public_key().as_ref(),
        Material::Hmac(..) => &[],
    };
    if derived != public {
        return Err(corrupt(kid, "public key does not match the private key"));
    }
    Ok(m)
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
