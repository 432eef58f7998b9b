//! Adapters that connect one capability to another (the key ring signs
//! audit checkpoints, the policy snapshot is the token service's directory,
//! role changes revoke sessions), kept here so capabilities never import
//! each other.

use super::*;

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
        Arc::new(LogKeyEvents),
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
        Arc::new(LogTokenEvents),
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

/// Key and token events go to the log until the audit log is wired in.
pub(super) struct LogKeyEvents;

impl crate::keys::EventSink for LogKeyEvents {
    fn key_event(&self, e: &crate::keys::KeyEvent) {
        tracing::info!(target: "warden::audit", action = e.action, kid = %e.kid, purpose = %e.purpose, "key event");
    }
}

pub(super) struct LogTokenEvents;

impl crate::tokens::EventSink for LogTokenEvents {
    fn token_event(&self, e: &crate::tokens::TokenEvent) {
        if e.kind == "refresh_reused" {
            tracing::warn!(target: "warden::audit", kind = e.kind, user_id = %e.user_id, session_id = ?e.session_id, reason = %e.reason, "token event: suspicious");
        } else {
            tracing::info!(target: "warden::audit", kind = e.kind, user_id = %e.user_id, session_id = ?e.session_id, reason = %e.reason, count = e.count, "token event");
        }
    }
}
