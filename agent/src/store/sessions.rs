//! `sessions`, `refresh_tokens`, `user_epochs`: login sessions and their
//! refresh-token families.
//!
//! Design: a refresh rotation is one `BEGIN IMMEDIATE` transaction that reads
//! the presented token, decides, and writes the successor, so two concurrent
//! refreshes of one token can never both rotate (the second sees the first's
//! `superseded_at`). Tokens are looked up by SHA-256 hash; the plaintext never
//! reaches this module.
//!
//! Durability: creating a session (a login) commits with
//! `synchronous=NORMAL`: in WAL mode it survives a process crash, and a power
//! loss can lose only the last logins, which costs those users a new login and
//! never weakens a security property; it keeps the fsync off the login path.
//! Rotations and revocations commit with the store's `synchronous=FULL`, so a
//! revocation or a superseded refresh token is never forgotten.

use super::{Error, Store};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

/// A stored session (one login, one refresh-token family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    /// JSON array of role names at issue time.
    pub roles: String,
    /// JSON array of authentication methods.
    pub amr: String,
    pub device_id: Option<String>,
    pub epoch: i64,
    pub auth_time: i64,
    pub created_at: i64,
    pub absolute_expires_at: i64,
    pub last_refresh_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

/// What a refresh attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current; it is now superseded by the successor.
    Rotated(SessionRow),
    /// The token had already been rotated at `superseded_at`.
    Superseded {
        session: SessionRow,
        superseded_at: i64,
    },
    /// The session was revoked.
    Revoked(SessionRow),
    /// The token passed its idle lifetime or the session its absolute one.
    Expired(SessionRow),
    /// No such token.
    Unknown,
}

const SESSION_COLS: &str = "s.id, s.user_id, s.org_id, s.roles, s.amr, s.device_id, s.epoch,
    s.auth_time, s.created_at, s.absolute_expires_at, s.last_refresh_at, s.revoked_at,
    s.revoked_reason";

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        org_id: r.get(2)?,
        roles: r.get(3)?,
        amr: r.get(4)?,
        device_id: r.get(5)?,
        epoch: r.get(6)?,
        auth_time: r.get(7)?,
        created_at: r.get(8)?,
        absolute_expires_at: r.get(9)?,
        last_refresh_at: r.get(10)?,
        revoked_at: r.get(11)?,
        revoked_reason: r.get(12)?,
    })
}

impl Store {
    /// Creates a session and its first refresh token in one transaction.
    /// The session takes the user's current epoch (read in the same
    /// transaction, so a concurrent "revoke all" either sees this session or
    /// precedes it); `s.epoch` is ignored and the epoch used is returned.
    pub fn session_create(&self, s: &SessionRow, refresh_hash: &[u8]) -> Result<i64, Error> {
        let mut conn = self.conn();
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = session_insert(&mut conn, s, refresh_hash);
        // Restore the store-wide setting whatever happened.
        conn.pragma_update(None, "synchronous", "FULL")?;
        result
    }

    /// Looks up one session.
    pub fn session(&self, id: &str) -> Result<Option<SessionRow>, Error> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions s WHERE s.id = ?1");
        Ok(self.conn().query_row(&sql, [id], session_row).optional()?)
    }

    /// Rotates the refresh token `hash` to `successor` if it is current,
    /// unexpired (`idle_ms` since it was issued, the session's absolute
    /// lifetime) and its session is live; otherwise reports why not.
    pub fn refresh_rotate(
        &self,
        hash: &[u8],
        successor: &[u8],
        now: i64,
        idle_ms: i64,
    ) -> Result<RefreshOutcome, Error> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!(
            "SELECT {SESSION_COLS}, t.created_at, t.superseded_at
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.hash = ?1"
        );
        let found = tx
            .query_row(&sql, [hash], |r| {
                Ok((
                    session_row(r)?,
                    r.get::<_, i64>(13)?,
                    r.get::<_, Option<i64>>(14)?,
                ))
            })
            .optional()?;
        let Some((session, token_created, superseded_at)) = found else {
            return Ok(RefreshOutcome::Unknown);
        };
        if session.revoked_at.is_some() {
            return Ok(RefreshOutcome::Revoked(session));
        }
        if let Some(superseded_at) = superseded_at {
            return Ok(RefreshOutcome::Superseded {
                session,
                superseded_at,
            });
        }
        if now >= session.absolute_expires_at || now >= token_created.saturating_add(idle_ms) {
            return Ok(RefreshOutcome::Expired(session));
        }
        tx.execute(
            "UPDATE refresh_tokens SET superseded_at = ?2, successor = ?3 WHERE hash = ?1",
            params![hash, now, successor],
        )?;
        tx.execute(
            "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)",
            params![successor, session.id, now],
        )?;
        tx.execute(
            "UPDATE sessions SET last_refresh_at = ?2 WHERE id = ?1",
            params![session.id, now],
        )?;
        tx.commit()?;
        let mut session = session;
        session.last_refresh_at = now;
        Ok(RefreshOutcome::Rotated(session))
    }

    /// Revokes one session; returns it if it was live until now.
    pub fn session_revoke(
        &self,
        id: &str,
        reason: &str,
        now: i64,
    ) -> Result<Option<SessionRow>, Error> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
             WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now, reason],
        )?;
        let row = if changed == 1 {
            let sql = format!("SELECT {SESSION_COLS} FROM sessions s WHERE s.id = ?1");
            tx.query_row(&sql, [id], session_row).optional()?
        } else {
            None
        };
        tx.commit()?;
        Ok(row)
    }

    /// Bumps the user's epoch (killing every access token issued under the old
    /// one) and revokes all their live sessions, atomically. Returns the new
    /// epoch and the ids of the sessions revoked now.
    pub fn sessions_revoke_user(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<(i64, Vec<String>), Error> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let epoch: i64 = tx.query_row(
            "INSERT INTO user_epochs (user_id, epoch) VALUES (?1, 1)
             ON CONFLICT(user_id) DO UPDATE SET epoch = epoch + 1
             RETURNING epoch",
            [user_id],
            |r| r.get(0),
        )?;
        let ids = {
            let mut stmt = tx.prepare(
                "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                 WHERE user_id = ?1 AND revoked_at IS NULL RETURNING id",
            )?;
            let rows = stmt.query_map(params![user_id, now, reason], |r| r.get(0))?;
            rows.collect::<Result<Vec<String>, _>>()?
        };
        tx.commit()?;
        Ok((epoch, ids))
    }

    /// Current epoch of every user that has one (users never revoked are at 0).
    pub fn user_epochs(&self) -> Result<Vec<(String, i64)>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT user_id, epoch FROM user_epochs")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Ids of revoked sessions that ended after `since` (their access tokens
    /// may still be presented).
    pub fn sessions_revoked_since(&self, since: i64) -> Result<Vec<String>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id FROM sessions WHERE revoked_at IS NOT NULL AND absolute_expires_at > ?1",
        )?;
        let rows = stmt.query_map([since], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Live (unrevoked, unexpired) sessions.
    pub fn sessions_live(&self, now: i64) -> Result<Vec<SessionRow>, Error> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions s
             WHERE s.revoked_at IS NULL AND s.absolute_expires_at > ?1"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([now], session_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes sessions (and their refresh tokens) that ended before
    /// `before`; returns their ids.
    pub fn sessions_prune(&self, before: i64) -> Result<Vec<String>, Error> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("DELETE FROM sessions WHERE absolute_expires_at < ?1 RETURNING id")?;
        let rows = stmt.query_map([before], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }
}

fn session_insert(
    conn: &mut rusqlite::Connection,
    s: &SessionRow,
    refresh_hash: &[u8],
) -> Result<i64, Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let epoch: i64 = tx
        .query_row(
            "SELECT epoch FROM user_epochs WHERE user_id = ?1",
            [&s.user_id],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    tx.execute(
        "INSERT INTO sessions (id, user_id, org_id, roles, amr, device_id, epoch, auth_time,
                               created_at, absolute_expires_at, last_refresh_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            s.id,
            s.user_id,
            s.org_id,
            s.roles,
            s.amr,
            s.device_id,
            epoch,
            s.auth_time,
            s.created_at,
            s.absolute_expires_at,
            s.last_refresh_at
        ],
    )?;
    tx.execute(
        "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)",
        params![refresh_hash, s.id, s.created_at],
    )?;
    tx.commit()?;
    Ok(epoch)
}
