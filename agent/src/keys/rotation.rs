//! The key life cycle: rotate (a pending key published at once, active after
//! the propagation delay), roll back while the previous key is in grace,
//! retire, and the timed transitions `advance` applies. Every change is
//! committed to the store before the in-memory ring is swapped.

use super::*;

impl KeyRing {
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

    pub(super) fn rotate_locked(
        &self,
        purpose: &Purpose,
        alg: Option<Algorithm>,
    ) -> Result<String, Error> {
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

    pub(super) fn advance_locked(&self) -> Result<bool, Error> {
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
}

pub(super) fn retire_row(row: &mut KeyRow, now: i64) {
    row.state = KeyState::Retired.as_str().to_string();
    row.retired_at = Some(now);
    row.sealed_private = None;
}
