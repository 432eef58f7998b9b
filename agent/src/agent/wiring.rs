//! Adapters that connect one capability to another (the key ring signs
//! audit checkpoints, the policy snapshot is the token service's directory,
//! role changes revoke sessions), kept here so capabilities never import
//! each other.

use super::*;
use crate::audit::{Event, Identity, Recorder};
use std::collections::BTreeMap;

pub(super) struct TokenParts {
    pub(super) keys: Arc<KeyRing>,
    pub(super) tokens: Arc<Tokens>,
    pub(super) kek_source: KekSource,
}

/// Opens the key ring (refusing to start without a KEK in production), makes
/// sure every built-in purpose can sign, and builds the token service.
pub(super) fn build_tokens(
    config: &Config,
    store: Store,
    clock: SharedClock,
    env: &Env,
    policy: Arc<PolicySource>,
    audit: Recorder,
) -> Result<TokenParts, Error> {
    let production = config.mode == crate::config::Mode::Production;
    let (kek, kek_source) = crate::keys::Kek::resolve(
        config.keys.kek_file.as_deref(),
        &|k| env.get(k).map(str::to_string),
        production,
        &config.state.dir,
    )?;
    let keys = Arc::new(KeyRing::open(
        store.clone(),
        clock.clone(),
        kek,
        config.keys.clone(),
        Arc::new(AuditKeyEvents(audit.clone())),
    )?);
    let alg = config.keys.token_algorithm;
    keys.ensure(&Purpose::jwt(), alg)?;
    keys.ensure(&Purpose::task(), alg)?;
    keys.ensure(&Purpose::audit(), crate::keys::Algorithm::EdDSA)?;
    let directory = Arc::new(PolicyDirectory(policy.clone()));
    let tokens = Arc::new(Tokens::new(
        config.tokens.clone(),
        keys.clone(),
        store,
        clock,
        directory,
        Arc::new(AuditTokenEvents(audit)),
    )?);
    Ok(TokenParts {
        keys,
        tokens,
        kek_source,
    })
}

/// Signs audit checkpoints with the key ring's active `audit` key (Ed25519).
/// The ring is built after the recorder, so it is set once built; a
/// checkpoint due before that fails to sign and is retried at the next
/// commit (no records are appended before the socket serves anyway).
pub(super) struct KeyRingCheckpointSigner(pub(super) Arc<std::sync::OnceLock<Arc<KeyRing>>>);

impl KeyRingCheckpointSigner {
    fn key(&self) -> Result<crate::keys::Signer, crate::audit::Error> {
        let ring = self
            .0
            .get()
            .ok_or_else(|| crate::audit::Error::Signing("the key ring is not ready".into()))?;
        ring.signer(&Purpose::audit())
            .map_err(|e| crate::audit::Error::Signing(e.to_string()))
    }
}

impl crate::audit::CheckpointSigner for KeyRingCheckpointSigner {
    fn kid(&self) -> String {
        self.key().map(|k| k.kid().to_string()).unwrap_or_default()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::audit::Error> {
        self.key()?
            .sign(message)
            .map_err(|e| crate::audit::Error::Signing(e.to_string()))
    }

    fn public_key(&self) -> Vec<u8> {
        self.key()
            .map(|k| k.public_key().to_vec())
            .unwrap_or_default()
    }
}

/// The token service's view of the directory: the serving policy snapshot.
/// With no snapshot loaded nobody has roles, so nobody can log in (fail
/// closed).
pub(super) struct PolicyDirectory(Arc<PolicySource>);

impl crate::tokens::Directory for PolicyDirectory {
    fn roles_of(&self, user_id: &str, org_id: &str) -> Option<Vec<String>> {
        let snap = self.0.snapshot()?;
        let roles = snap.roles_of(user_id, org_id)?;
        Some(roles.into_iter().map(str::to_string).collect())
    }
}

/// Sessions carry the roles they were issued with; when a new policy
/// snapshot changes a user's roles, that user's sessions are revoked so the
/// next request re-authenticates under the new roles.
pub(super) fn revoke_on_role_change(policy: &PolicySource, tokens: &Arc<Tokens>) {
    let tokens = Arc::downgrade(tokens);
    policy.on_change(Box::new(move |old, new| {
        let Some(tokens) = tokens.upgrade() else {
            return;
        };
        if crate::policy::changed_users(old, new).is_empty() {
            return;
        }
        match tokens.reconcile_roles() {
            Ok(users) if !users.is_empty() => {
                tracing::info!(?users, "roles changed; sessions revoked")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot revoke sessions after a role change"),
        }
    }));
}

/// Key life-cycle events become audit records (`key.rotated`,
/// `key.activated`, `key.retiring`, `key.retired`, `key.rolled_back`,
/// `key.cancelled`) naming the kid and purpose. The first key of each
/// purpose, created when a new state directory is initialised, is only
/// logged: it precedes every other record of that host and is listed in
/// `/v1/status`.
pub(super) struct AuditKeyEvents(pub(super) Recorder);

impl crate::keys::EventSink for AuditKeyEvents {
    fn key_event(&self, e: &crate::keys::KeyEvent) {
        tracing::info!(action = e.action, kid = %e.kid, purpose = %e.purpose, "key event");
        if e.action == "created" {
            return;
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("purpose".to_string(), e.purpose.to_string().into());
        record(
            &self.0,
            Event {
                kind: format!("key.{}", e.action),
                kid: Some(e.kid.clone()),
                outcome: "success".to_string(),
                attrs,
                ts_ms: Some(e.at_ms),
                ..Event::default()
            },
        );
    }
}

/// Token and session events become audit records (`token.issued`,
/// `token.refreshed`, `token.refresh_reused`, `token.session_revoked`, ...)
/// naming the user, org, session and signing key.
pub(super) struct AuditTokenEvents(pub(super) Recorder);

impl crate::tokens::EventSink for AuditTokenEvents {
    fn token_event(&self, e: &crate::tokens::TokenEvent) {
        if e.kind == "refresh_reused" {
            tracing::warn!(kind = e.kind, user_id = %e.user_id, session_id = ?e.session_id, "refresh token reused: suspicious");
        } else {
            tracing::info!(kind = e.kind, user_id = %e.user_id, session_id = ?e.session_id, reason = %e.reason, count = e.count, "token event");
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("count".to_string(), e.count.into());
        record(
            &self.0,
            Event {
                kind: format!("token.{}", e.kind),
                identity: Identity {
                    user: Some(e.user_id.clone()),
                    session: e.session_id.clone(),
                    ..Identity::default()
                },
                org_id: e.org_id.clone(),
                kid: e.kid.clone(),
                outcome: if e.kind == "refresh_reused" {
                    "denied"
                } else {
                    "success"
                }
                .to_string(),
                reason: Some(e.reason.clone()),
                attrs,
                ..Event::default()
            },
        );
    }
}

/// Submits without waiting: these events happen inside operations that have
/// already taken effect, so a refusal (backpressure) can only be reported.
fn record(recorder: &Recorder, event: Event) {
    let kind = event.kind.clone();
    if let Err(e) = recorder.submit(event) {
        tracing::error!(error = %e, kind, "cannot record an audit event");
    }
}

/// What the audit log keeps of one permission decision.
pub struct DecisionRecord<'a> {
    pub peer: crate::caller::Peer,
    pub request_id: &'a str,
    pub decision_id: &'a str,
    pub user: Option<&'a str>,
    pub roles: &'a [String],
    pub session: Option<&'a str>,
    pub permission: &'a str,
    pub action: &'a str,
    pub org_id: Option<&'a str>,
    pub surface: &'a str,
    pub allow: bool,
    pub enforced: bool,
    pub reason: &'a str,
    pub policy_version: &'a str,
    pub resource: Option<serde_json::Value>,
}

/// Actions whose allows are recorded; denials are always recorded.
const RECORDED_ACTIONS: [&str; 3] = ["write", "approve", "export"];

impl Ctx {
    /// Records a decision when the audit trail wants it: every denial, every
    /// report-mode decision, and every allow of a write, approve or export.
    /// Submitted without waiting (checks stay in microseconds; the record is
    /// durable within one group commit). An error means the recorder refused
    /// it (backpressure) and the caller must fail closed.
    pub fn record_decision(&self, d: &DecisionRecord<'_>) -> Result<(), crate::audit::Error> {
        if d.allow && d.enforced && !RECORDED_ACTIONS.contains(&d.action) {
            return Ok(());
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("surface".to_string(), d.surface.into());
        attrs.insert("decision_id".to_string(), d.decision_id.into());
        attrs.insert("request_id".to_string(), d.request_id.into());
        attrs.insert("policy_version".to_string(), d.policy_version.into());
        attrs.insert("enforced".to_string(), d.enforced.into());
        if let Some(resource) = &d.resource {
            attrs.insert("resource".to_string(), resource.clone());
        }
        self.audit.submit(Event {
            kind: "decision".to_string(),
            identity: Identity {
                user: d.user.map(str::to_string),
                roles: d.roles.to_vec(),
                session: d.session.map(str::to_string),
                uid: Some(d.peer.uid),
                pid: d.peer.pid.and_then(|p| u32::try_from(p).ok()),
            },
            permission: Some(d.permission.to_string()),
            action: Some(d.action.to_string()),
            org_id: d.org_id.map(str::to_string),
            outcome: if d.allow { "allow" } else { "deny" }.to_string(),
            reason: Some(d.reason.to_string()),
            attrs,
            ..Event::default()
        })
    }
}
