//! Revocation: one session, every session of a user (epoch bump), sessions
//! whose roles changed, and pruning of sessions that can no longer verify.
//! Every change is written to the store first and then mirrored in memory,
//! where verification reads it.

use super::*;

impl Tokens {
    pub(super) fn epoch_of(&self, user_id: &str) -> i64 {
        self.revocations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .epochs
            .get(user_id)
            .copied()
            .unwrap_or(0)
    }

    /// Revokes one session (its refresh family and every access and task
    /// token carrying its id). Returns how many sessions were live.
    pub fn revoke_session(&self, session_id: &str, reason: &str) -> Result<usize, Error> {
        check_id("session_id", session_id)?;
        check_reason(reason)?;
        let now = self.clock.now_ms();
        let row = self.store.session_revoke(session_id, reason, now)?;
        // Mirror even if it was already revoked: harmless, and self-healing.
        self.revocations
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .sessions
            .insert(session_id.to_string());
        match row {
            Some(s) => {
                self.events.token_event(&TokenEvent {
                    kind: "session_revoked",
                    user_id: s.user_id.clone(),
                    org_id: Some(s.org_id.clone()),
                    session_id: Some(s.id.clone()),
                    reason: reason.to_string(),
                    count: 1,
                    kid: None,
                });
                Ok(1)
            }
            None => Ok(0),
        }
    }

    /// Revokes every session of a user and every token issued to them so far
    /// (password reset, role change, suspicious activity). Returns how many
    /// sessions were live.
    pub fn revoke_user(&self, user_id: &str, reason: &str) -> Result<usize, Error> {
        check_id("user_id", user_id)?;
        check_reason(reason)?;
        self.revoke_user_at(user_id, reason, self.clock.now_ms())
    }

    pub(super) fn revoke_user_at(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<usize, Error> {
        let (epoch, ids) = self.store.sessions_revoke_user(user_id, reason, now)?;
        {
            let mut rev = self.revocations.write().unwrap_or_else(|p| p.into_inner());
            // Two concurrent revocations may land here in either order;
            // the epoch only ever moves forward.
            let current = rev.epochs.entry(user_id.to_string()).or_insert(0);
            *current = (*current).max(epoch);
            rev.sessions.extend(ids.iter().cloned());
        }
        tracing::info!(
            user_id,
            reason,
            sessions = ids.len(),
            "revoked every session of a user"
        );
        self.events.token_event(&TokenEvent {
            kind: "user_sessions_revoked",
            user_id: user_id.to_string(),
            org_id: None,
            session_id: None,
            reason: reason.to_string(),
            count: ids.len(),
            kid: None,
        });
        Ok(ids.len())
    }

    /// Revokes the sessions of every user whose roles changed since login
    /// (call after a policy/directory reload). Returns the users revoked.
    pub fn reconcile_roles(&self) -> Result<Vec<String>, Error> {
        let now = self.clock.now_ms();
        let mut changed: Vec<String> = Vec::new();
        for s in self.store.sessions_live(now)? {
            if changed.contains(&s.user_id) {
                continue;
            }
            let stored: Vec<String> = serde_json::from_str(&s.roles).unwrap_or_default();
            let same = self
                .directory
                .roles_of(&s.user_id, &s.org_id)
                .is_some_and(|r| same_roles(&r, &stored));
            if !same {
                changed.push(s.user_id.clone());
            }
        }
        for user in &changed {
            self.revoke_user_at(user, "role_change", now)?;
        }
        Ok(changed)
    }

    /// Deletes sessions that ended long enough ago that none of their tokens
    /// can still verify, and forgets their revocations. Blocking.
    pub fn prune(&self) -> Result<usize, Error> {
        let before = self.clock.now_ms().saturating_sub(self.cfg.key_grace_ms());
        let gone = self.store.sessions_prune(before)?;
        if !gone.is_empty() {
            let mut rev = self.revocations.write().unwrap_or_else(|p| p.into_inner());
            for id in &gone {
                rev.sessions.remove(id);
            }
        }
        Ok(gone.len())
    }
}

fn check_reason(reason: &str) -> Result<(), Error> {
    if reason.is_empty()
        || reason.len() > 64
        || !reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(Error::input("reason", "must be 1-64 characters of `a-z _`"));
    }
    Ok(())
}
