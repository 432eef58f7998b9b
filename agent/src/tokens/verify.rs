//! Verification of access and task tokens: the signature once per distinct
//! token (then the verified-token cache), and on every call the claims that
//! can change underneath a token: expiry, key state, session revocation and
//! the user's epoch.

use super::*;

impl Tokens {
    /// Verifies an access or task token. `audience`, when given, must equal
    /// the token's `aud` (task tokens: `task:<name>`).
    pub fn verify(&self, token: &str, audience: Option<&str>) -> Result<Arc<Claims>, Invalid> {
        self.verify_as(token, None, audience)
    }

    /// Verifies an access token (never a task token).
    pub fn verify_access(&self, token: &str) -> Result<Arc<Claims>, Invalid> {
        self.verify_as(token, Some(TokenType::Access), None)
    }

    /// Verifies a task token for exactly the task `task`.
    pub fn verify_task(&self, token: &str, task: &str) -> Result<Arc<Claims>, Invalid> {
        let aud = format!("task:{task}");
        self.verify_as(token, Some(TokenType::Task), Some(&aud))
    }

    pub(super) fn verify_as(
        &self,
        token: &str,
        want: Option<TokenType>,
        audience: Option<&str>,
    ) -> Result<Arc<Claims>, Invalid> {
        let r = self.verify_inner(token, want, audience);
        if let Err(reason) = &r {
            self.stats
                .rejected
                .with_label_values(&[reason.code()])
                .inc();
        }
        r
    }

    pub(super) fn verify_inner(
        &self,
        token: &str,
        want: Option<TokenType>,
        audience: Option<&str>,
    ) -> Result<Arc<Claims>, Invalid> {
        if token.len() > jwt::MAX_TOKEN_LEN {
            return Err(Invalid::Malformed);
        }
        let now = self.clock.now_ms();
        let digest = sha256(token.as_bytes());
        if let Some(hit) = self.cache.get(&digest) {
            // The key may have been retired since (rollback, compromise).
            if self.keys.verifier(&hit.kid).is_none() {
                return Err(Invalid::UnknownKid);
            }
            self.stats.verified_cache_hits.inc();
            self.check_claims(&hit.claims, now, want, audience)?;
            return Ok(hit.claims);
        }
        let header = jwt::peek(token)?;
        let key = self.keys.verifier(&header.kid).ok_or(Invalid::UnknownKid)?;
        let typ = match key.purpose().as_str() {
            Purpose::JWT => TokenType::Access,
            Purpose::TASK => TokenType::Task,
            _ => return Err(Invalid::UnknownKid),
        };
        if header.alg != Some(key.alg()) {
            return Err(Invalid::BadAlgorithm);
        }
        self.stats.verified_signature_checks.inc();
        let claims = Arc::new(jwt::verify(token, &key)?);
        // A key signs one kind of token only.
        if claims.typ != typ {
            return Err(Invalid::WrongType);
        }
        self.cache.insert(
            digest,
            Cached {
                claims: Arc::clone(&claims),
                kid: Arc::from(key.kid()),
            },
            now.div_euclid(1000),
        );
        self.check_claims(&claims, now, want, audience)?;
        Ok(claims)
    }

    /// Everything that can change between two presentations of the same
    /// token: time, what the caller expects, and revocation.
    pub(super) fn check_claims(
        &self,
        c: &Claims,
        now_ms: i64,
        want: Option<TokenType>,
        audience: Option<&str>,
    ) -> Result<(), Invalid> {
        if c.iss != self.cfg.issuer {
            return Err(Invalid::WrongIssuer);
        }
        if want.is_some_and(|w| w != c.typ) {
            return Err(Invalid::WrongType);
        }
        let now_s = now_ms.div_euclid(1000);
        let leeway_s = self.cfg.leeway_ms / 1000;
        if now_s > c.exp.saturating_add(leeway_s) {
            return Err(Invalid::Expired);
        }
        if c.iat > now_s.saturating_add(leeway_s) {
            return Err(Invalid::NotYetValid);
        }
        match (audience, c.aud.as_deref()) {
            (Some(want), Some(have)) if want == have => {}
            (Some(_), _) => return Err(Invalid::WrongAudience),
            (None, _) => {}
        }
        if c.typ == TokenType::Access && c.sid.is_none() {
            return Err(Invalid::Malformed);
        }
        let rev = self.revocations.read().unwrap_or_else(|p| p.into_inner());
        if c.sid.as_ref().is_some_and(|s| rev.sessions.contains(s)) {
            return Err(Invalid::Revoked);
        }
        if c.ep < rev.epochs.get(&c.sub).copied().unwrap_or(0) {
            return Err(Invalid::Revoked);
        }
        Ok(())
    }
}
