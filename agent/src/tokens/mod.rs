//! Tokens: short-lived JWT access tokens, task tokens, rotating refresh
//! tokens, and the session state that can kill all of them at once.
//!
//! Why this shape: a stolen password or token must not quietly keep working.
//! Access tokens live minutes and name the key that signed them; refresh
//! tokens are single-use, so a thief and the victim racing on one token
//! betray the theft (the family dies); every token carries its session id and
//! the user's epoch, checked on every verification (cached or not) so
//! revoking a session, or all of a user's sessions, takes effect at once.
//!
//! Design:
//! - Verification never touches the database: revoked sessions and user
//!   epochs are mirrored in memory (loaded at start, updated on write).
//! - Refresh rotation is one store transaction under one lock, so concurrent
//!   refreshes produce exactly one rotation; the loser within the reuse grace
//!   gets the winner's answer, later it trips reuse detection.
//! - Refresh tokens are 256-bit random strings stored only as SHA-256 (they
//!   carry full entropy, so a plain hash is enough and lookups need no
//!   secret comparison).

mod cache;
mod config;
mod error;
pub mod jwt;
mod refresh;
mod revoke;
mod task;
mod verify;

pub use config::{Config, RawConfig};
pub use error::{Error, Invalid};

use crate::clock::SharedClock;
use crate::keys::{KeyRing, Purpose};
use crate::store::{RefreshOutcome, SessionRow, Store};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cache::{Cached, VerifiedCache};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// Looks up a user's roles in an org (the policy directory, wired by the
/// agent; a fake in tests).
pub trait Directory: Send + Sync {
    /// Roles of `user_id` in `org_id`, or `None` when the user is unknown there.
    fn roles_of(&self, user_id: &str, org_id: &str) -> Option<Vec<String>>;
}

/// A directory held in memory; for tests and tools.
#[derive(Debug, Default)]
pub struct StaticDirectory {
    users: RwLock<HashMap<(String, String), Vec<String>>>,
}

impl StaticDirectory {
    pub fn set(&self, user_id: &str, org_id: &str, roles: &[&str]) {
        self.users
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (user_id.to_string(), org_id.to_string()),
                roles.iter().map(|r| r.to_string()).collect(),
            );
    }

    pub fn remove(&self, user_id: &str, org_id: &str) {
        self.users
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(user_id.to_string(), org_id.to_string()));
    }
}

impl Directory for StaticDirectory {
    fn roles_of(&self, user_id: &str, org_id: &str) -> Option<Vec<String>> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(user_id.to_string(), org_id.to_string()))
            .cloned()
    }
}

/// `typ` claim: what a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Access,
    Task,
}

/// Claims of access and task tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub org: String,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub amr: Vec<String>,
    pub auth_time: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub typ: TokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The user's revocation epoch when issued; stale epochs are revoked.
    pub ep: i64,
}

impl Claims {
    /// Whether the login used a second factor (for MFA step-up decisions):
    /// any `amr` beyond a password or PIN (RFC 8176).
    pub fn mfa(&self) -> bool {
        self.amr
            .iter()
            .any(|m| !matches!(m.as_str(), "pwd" | "pin" | "kba" | "user"))
    }
}

/// An opaque refresh token. Never Debug, never Serialize, never logged.
#[derive(Clone)]
pub struct RefreshToken(String);

impl RefreshToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Prefix of refresh tokens, so scanners and humans recognise a leaked one.
pub const REFRESH_PREFIX: &str = "wrt_";

/// What issue and refresh hand back.
#[derive(Clone)]
pub struct Issued {
    pub access_token: String,
    /// Seconds.
    pub expires_in: i64,
    pub refresh_token: RefreshToken,
    /// Seconds until the refresh token dies unused (idle or absolute).
    pub refresh_expires_in: i64,
    pub session_id: String,
}

/// A login.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub user_id: String,
    pub org_id: String,
    pub amr: Vec<String>,
    pub device_id: Option<String>,
}

/// Who a task token acts for.
#[derive(Clone)]
pub enum TaskSubject {
    User {
        user_id: String,
        org_id: String,
    },
    /// An access token; the task token inherits its session.
    Token(String),
}

/// A task token (a bearer credential: no Debug).
#[derive(Clone)]
pub struct TaskToken {
    pub token: String,
    pub expires_in: i64,
}

/// A token-related security event, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenEvent {
    /// `issued`, `refreshed`, `session_revoked`, `user_sessions_revoked`,
    /// `refresh_reused`.
    pub kind: &'static str,
    pub user_id: String,
    pub org_id: Option<String>,
    pub session_id: Option<String>,
    pub reason: String,
    pub count: usize,
    /// The key that signed the access token (`issued`, `refreshed`).
    pub kid: Option<String>,
}

impl TokenEvent {
    /// An event about one session (issue, refresh, reuse).
    fn for_session(
        kind: &'static str,
        s: &SessionRow,
        reason: &str,
        kid: Option<String>,
    ) -> TokenEvent {
        TokenEvent {
            kind,
            user_id: s.user_id.clone(),
            org_id: Some(s.org_id.clone()),
            session_id: Some(s.id.clone()),
            reason: reason.to_string(),
            count: 1,
            kid,
        }
    }
}

/// Receives token events (the audit log, wired by the agent).
pub trait EventSink: Send + Sync {
    fn token_event(&self, event: &TokenEvent);
}

/// Discards events.
#[derive(Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn token_event(&self, _event: &TokenEvent) {}
}

/// Token metrics; registered with the agent's registry by [`Tokens::register`].
#[derive(Clone)]
pub struct Stats {
    events: prometheus::IntCounterVec,
    verifications: prometheus::IntCounterVec,
    rejected: prometheus::IntCounterVec,
    pub issued: prometheus::IntCounter,
    pub refreshed: prometheus::IntCounter,
    pub refresh_reused: prometheus::IntCounter,
    pub verified_cache_hits: prometheus::IntCounter,
    pub verified_signature_checks: prometheus::IntCounter,
}

impl Stats {
    fn new() -> Result<Stats, prometheus::Error> {
        use prometheus::{IntCounterVec, Opts};
        let events = IntCounterVec::new(
            Opts::new(
                "warden_token_events_total",
                "Token life-cycle events: issued, refreshed, refresh_reused (suspicious)",
            ),
            &["event"],
        )?;
        let verifications = IntCounterVec::new(
            Opts::new(
                "warden_token_verifications_total",
                "Token verifications that passed the signature stage, by path (cache or signature)",
            ),
            &["path"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "warden_token_rejected_total",
                "Tokens that failed verification, by reason",
            ),
            &["reason"],
        )?;
        Ok(Stats {
            issued: events.with_label_values(&["issued"]),
            refreshed: events.with_label_values(&["refreshed"]),
            refresh_reused: events.with_label_values(&["refresh_reused"]),
            verified_cache_hits: verifications.with_label_values(&["cache"]),
            verified_signature_checks: verifications.with_label_values(&["signature"]),
            events,
            verifications,
            rejected,
        })
    }
}

#[derive(Default)]
struct Revocations {
    sessions: HashSet<String>,
    epochs: HashMap<String, i64>,
}

struct GraceEntry {
    deadline_ms: i64,
    issued: Issued,
}

/// The token service.
pub struct Tokens {
    cfg: Config,
    keys: Arc<KeyRing>,
    store: Store,
    clock: SharedClock,
    directory: Arc<dyn Directory>,
    events: Arc<dyn EventSink>,
    revocations: RwLock<Revocations>,
    cache: VerifiedCache,
    /// Old refresh-token hash -> the answer it got, for the reuse grace.
    grace: Mutex<HashMap<[u8; 32], GraceEntry>>,
    /// Serialises refresh so "rotate, then remember the answer" is atomic.
    refresh_lock: Mutex<()>,
    pub stats: Stats,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.cfg.issuer)
            .finish_non_exhaustive()
    }
}

fn random_hex<const N: usize>() -> Result<String, Error> {
    Ok(hex::encode(crate::keys::kek::random_bytes::<N>()?))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Checks an identifier from a request: 1-128 printable characters.
fn check_id(field: &'static str, v: &str) -> Result<(), Error> {
    if v.is_empty() || v.len() > 128 {
        return Err(Error::input(field, "must be 1-128 characters"));
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::input(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// Authentication method references we accept (RFC 8176).
const AMR_VALUES: &[&str] = &[
    "pwd", "otp", "mfa", "hwk", "swk", "sms", "tel", "pin", "fpt", "face", "iris", "retina", "vbm",
    "kba", "sc", "geo", "rba", "pop", "wia", "user", "mca",
];

fn parse_refresh(token: &str) -> Option<[u8; 32]> {
    let body = token.strip_prefix(REFRESH_PREFIX)?;
    if body.len() != 43 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
    (bytes.len() == 32).then(|| sha256(&bytes))
}

fn new_refresh() -> Result<(RefreshToken, [u8; 32]), Error> {
    let bytes = crate::keys::kek::random_bytes::<32>()?;
    let token = format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    Ok((RefreshToken(token), sha256(&bytes)))
}

fn same_roles(a: &[String], b: &[String]) -> bool {
    let a: HashSet<&String> = a.iter().collect();
    let b: HashSet<&String> = b.iter().collect();
    a == b
}

impl Tokens {
    /// Builds the service, loading revocation state from the store.
    pub fn new(
        cfg: Config,
        keys: Arc<KeyRing>,
        store: Store,
        clock: SharedClock,
        directory: Arc<dyn Directory>,
        events: Arc<dyn EventSink>,
    ) -> Result<Tokens, Error> {
        let now = clock.now_ms();
        let mut rev = Revocations::default();
        // An access token may outlive its session's end by one lifetime.
        let since = now.saturating_sub(cfg.key_grace_ms());
        rev.sessions = store.sessions_revoked_since(since)?.into_iter().collect();
        rev.epochs = store.user_epochs()?.into_iter().collect();
        Ok(Tokens {
            cache: VerifiedCache::new(cfg.cache_capacity),
            cfg,
            keys,
            store,
            clock,
            directory,
            events,
            revocations: RwLock::new(rev),
            grace: Mutex::new(HashMap::new()),
            refresh_lock: Mutex::new(()),
            stats: Stats::new().map_err(|e| Error::Encode(e.to_string()))?,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// Registers the token metrics with `registry`.
    pub fn register(&self, registry: &prometheus::Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.stats.events.clone()))?;
        registry.register(Box::new(self.stats.verifications.clone()))?;
        registry.register(Box::new(self.stats.rejected.clone()))?;
        Ok(())
    }

    /// Logs a user in: creates a session (refresh-token family) and returns
    /// an access token and its first refresh token. Blocking (one store
    /// transaction).
    pub fn issue(&self, req: &IssueRequest) -> Result<Issued, Error> {
        check_id("user_id", &req.user_id)?;
        check_id("org_id", &req.org_id)?;
        if let Some(d) = &req.device_id {
            check_id("device_id", d)?;
        }
        if req.amr.is_empty() || req.amr.len() > 8 {
            return Err(Error::input("amr", "must list 1-8 authentication methods"));
        }
        if let Some(bad) = req.amr.iter().find(|m| !AMR_VALUES.contains(&m.as_str())) {
            return Err(Error::input(
                "amr",
                format!(
                    "unknown method {:?}",
                    bad.chars().take(16).collect::<String>()
                ),
            ));
        }
        let roles = self
            .directory
            .roles_of(&req.user_id, &req.org_id)
            .ok_or(Error::UnknownSubject)?;
        let now = self.clock.now_ms();
        let (refresh, hash) = new_refresh()?;
        let mut session = SessionRow {
            id: format!("s_{}", random_hex::<16>()?),
            user_id: req.user_id.clone(),
            org_id: req.org_id.clone(),
            roles: serde_json::to_string(&roles).map_err(|e| Error::Encode(e.to_string()))?,
            amr: serde_json::to_string(&req.amr).map_err(|e| Error::Encode(e.to_string()))?,
            device_id: req.device_id.clone(),
            epoch: 0,
            auth_time: now.div_euclid(1000),
            created_at: now,
            absolute_expires_at: now.saturating_add(self.cfg.refresh_absolute_ms),
            last_refresh_at: now,
            revoked_at: None,
            revoked_reason: None,
        };
        session.epoch = self.store.session_create(&session, &hash)?;
        let (access, kid) = self.sign_access(&session, roles, req.amr.clone(), now)?;
        self.stats.issued.inc();
        self.events.token_event(&TokenEvent::for_session(
            "issued",
            &session,
            &req.amr.join(","),
            Some(kid),
        ));
        Ok(Issued {
            access_token: access,
            expires_in: self.cfg.access_ttl_ms / 1000,
            refresh_token: refresh,
            refresh_expires_in: self.refresh_expires_in(&session, now),
            session_id: session.id,
        })
    }

    pub(super) fn refresh_expires_in(&self, s: &SessionRow, now: i64) -> i64 {
        let idle_end = now.saturating_add(self.cfg.refresh_idle_ms);
        (idle_end.min(s.absolute_expires_at) - now).max(0) / 1000
    }

    pub(super) fn sign_access(
        &self,
        s: &SessionRow,
        roles: Vec<String>,
        amr: Vec<String>,
        now: i64,
    ) -> Result<(String, String), Error> {
        let key = self.keys.signer(&Purpose::jwt())?;
        let iat = now.div_euclid(1000);
        let claims = Claims {
            iss: self.cfg.issuer.clone(),
            sub: s.user_id.clone(),
            org: s.org_id.clone(),
            roles,
            sid: Some(s.id.clone()),
            amr,
            auth_time: s.auth_time,
            iat,
            exp: iat + self.cfg.access_ttl_ms / 1000,
            jti: random_hex::<16>()?,
            typ: TokenType::Access,
            aud: None,
            ep: s.epoch,
        };
        Ok((jwt::encode(&key, &claims)?, key.kid().to_string()))
    }

    /// Entries in the verified-token cache.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// The RFC 7517 key set of every key that may verify an access or task
    /// token now (pending keys included, so verifiers learn them before they
    /// sign).
    pub fn jwks(&self) -> Jwks {
        let keys = self
            .keys
            .published(&[Purpose::JWT, Purpose::TASK])
            .into_iter()
            .filter_map(|k| Jwk::of(&k))
            .collect();
        Jwks { keys }
    }
}
/// An RFC 7517 JWK set.
#[derive(Debug, Clone, Serialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One public key (RFC 7517 / RFC 8037 for OKP).
#[derive(Debug, Clone, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

impl Jwk {
    fn of(k: &crate::keys::KeyHandle) -> Option<Jwk> {
        use crate::keys::Algorithm;
        let pk = k.public_key();
        let (kty, crv, x, y) = match k.alg() {
            Algorithm::EdDSA if pk.len() == 32 => {
                ("OKP", "Ed25519", URL_SAFE_NO_PAD.encode(pk), None)
            }
            Algorithm::ES256 if pk.len() == 65 => (
                "EC",
                "P-256",
                URL_SAFE_NO_PAD.encode(&pk[1..33]),
                Some(URL_SAFE_NO_PAD.encode(&pk[33..65])),
            ),
            _ => return None,
        };
        Some(Jwk {
            kty,
            crv,
            x,
            y,
            kid: k.kid().to_string(),
            alg: k.alg().as_str(),
            use_: "sig",
        })
    }
}

#[cfg(test)]
mod tests;
