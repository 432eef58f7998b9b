//! `keys`: the persisted key ring. Rows are opaque to the store: private
//! material arrives already sealed by the key ring, so nothing here ever sees
//! a plaintext key.

use super::{Error, Store};
use rusqlite::Row;

/// One stored key, as the key ring persists it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub kid: String,
    pub purpose: String,
    pub alg: String,
    pub state: String,
    pub public_key: Vec<u8>,
    /// Nonce and AEAD ciphertext of the private key; `None` once retired.
    pub sealed_private: Option<Vec<u8>>,
    pub created_at: i64,
    pub activate_at: Option<i64>,
    pub activated_at: Option<i64>,
    pub retire_at: Option<i64>,
    pub retired_at: Option<i64>,
}

// Sealed bytes are not secret, but they are noise in logs.
impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        kid: r.get(0)?,
        purpose: r.get(1)?,
        alg: r.get(2)?,
        state: r.get(3)?,
        public_key: r.get(4)?,
        sealed_private: r.get(5)?,
        created_at: r.get(6)?,
        activate_at: r.get(7)?,
        activated_at: r.get(8)?,
        retire_at: r.get(9)?,
        retired_at: r.get(10)?,
    })
}

impl Store {
    /// Every key, oldest first.
    pub fn keys_all(&self) -> Result<Vec<KeyRow>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT kid, purpose, alg, state, public_key, sealed_private, created_at,
                    activate_at, activated_at, retire_at, retired_at
             FROM keys ORDER BY created_at, kid",
        )?;
        let rows = stmt.query_map([], key_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Inserts or replaces the given keys in one transaction, so a rotation
    /// (new key active, old key retiring) is never half-applied.
    pub fn keys_save(&self, rows: &[KeyRow]) -> Result<(), Error> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO keys (kid, purpose, alg, state, public_key, sealed_private,
                                   created_at, activate_at, activated_at, retire_at, retired_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(kid) DO UPDATE SET
                    state = excluded.state, sealed_private = excluded.sealed_private,
                    activate_at = excluded.activate_at, activated_at = excluded.activated_at,
                    retire_at = excluded.retire_at, retired_at = excluded.retired_at",
            )?;
            for k in rows {
                stmt.execute(rusqlite::params![
                    k.kid,
                    k.purpose,
                    k.alg,
                    k.state,
                    k.public_key,
                    k.sealed_private,
                    k.created_at,
                    k.activate_at,
                    k.activated_at,
                    k.retire_at,
                    k.retired_at
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
