//! Refresh-token rotation with reuse detection: one rotation per token under
//! one lock and one store transaction; a concurrent refresh within the reuse
//! grace gets the same successor, a later reuse of a superseded token revokes
//! every session of the user.

use super::*;

impl Tokens {
    /// Trades a refresh token for a new access token and a new refresh
    /// token; the presented one dies. Presenting a dead one again (outside
    /// the reuse grace) revokes every session of the user. Blocking.
    pub fn refresh(&self, token: &str) -> Result<Issued, Error> {
        let hash = parse_refresh(token).ok_or(Error::RefreshInvalid)?;
        let _g = self.refresh_lock.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now_ms();
        {
            let mut grace = self.grace.lock().unwrap_or_else(|p| p.into_inner());
            grace.retain(|_, g| g.deadline_ms > now);
            if let Some(g) = grace.get(&hash) {
                // The session may have been revoked since the first answer.
                let revoked = self
                    .revocations
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .sessions
                    .contains(&g.issued.session_id);
                if revoked {
                    return Err(Error::SessionRevoked);
                }
                return Ok(g.issued.clone());
            }
        }
        let (successor, successor_hash) = new_refresh()?;
        let outcome =
            self.store
                .refresh_rotate(&hash, &successor_hash, now, self.cfg.refresh_idle_ms)?;
        match outcome {
            RefreshOutcome::Unknown => Err(Error::RefreshInvalid),
            RefreshOutcome::Expired(_) => Err(Error::RefreshExpired),
            RefreshOutcome::Revoked(_) => Err(Error::SessionRevoked),
            RefreshOutcome::Superseded { session, .. } => {
                self.stats.refresh_reused.inc();
                tracing::warn!(
                    user_id = %session.user_id,
                    session_id = %session.id,
                    "refresh token reused; revoking every session of the user"
                );
                self.events.token_event(&TokenEvent::for_session(
                    "refresh_reused",
                    &session,
                    "refresh_reused",
                    None,
                ));
                self.revoke_user_at(&session.user_id, "refresh_reused", now)?;
                Err(Error::RefreshReused)
            }
            RefreshOutcome::Rotated(session) => {
                let stored: Vec<String> = serde_json::from_str(&session.roles)
                    .map_err(|e| crate::store::Error::Invalid(e.to_string()))?;
                let amr: Vec<String> = serde_json::from_str(&session.amr)
                    .map_err(|e| crate::store::Error::Invalid(e.to_string()))?;
                let current = self.directory.roles_of(&session.user_id, &session.org_id);
                let roles = match current {
                    Some(r) if same_roles(&r, &stored) => r,
                    _ => {
                        self.revoke_user_at(&session.user_id, "role_change", now)?;
                        return Err(Error::SessionRevoked);
                    }
                };
                let (access, kid) = self.sign_access(&session, roles, amr, now)?;
                self.events.token_event(&TokenEvent::for_session(
                    "refreshed",
                    &session,
                    "rotation",
                    Some(kid),
                ));
                let issued = Issued {
                    access_token: access,
                    expires_in: self.cfg.access_ttl_ms / 1000,
                    refresh_token: successor,
                    refresh_expires_in: self.refresh_expires_in(&session, now),
                    session_id: session.id.clone(),
                };
                if self.cfg.reuse_grace_ms > 0 {
                    self.grace.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        hash,
                        GraceEntry {
                            deadline_ms: now.saturating_add(self.cfg.reuse_grace_ms),
                            issued: issued.clone(),
                        },
                    );
                }
                self.stats.refreshed.inc();
                Ok(issued)
            }
        }
    }
}
