//! `policy_cache`: the last registry source that validated.
//!
//! Stored as the source files rather than a compiled form so a newer binary
//! recompiles it with its own rules and the version hash stays the same.

use super::{Error, Store};
use crate::policy::SourceFile;
use rusqlite::OptionalExtension;

/// The cached registry source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPolicy {
    pub version: String,
    pub saved_at_ms: i64,
    pub files: Vec<SourceFile>,
}

impl Store {
    /// Replaces the cached registry source in one transaction.
    pub fn save_policy(
        &self,
        version: &str,
        files: &[SourceFile],
        saved_at_ms: i64,
    ) -> Result<(), Error> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM policy_cache_file", [])?;
        {
            let mut insert =
                tx.prepare("INSERT INTO policy_cache_file(name, text) VALUES (?1, ?2)")?;
            for f in files {
                insert.execute([&f.name, &f.text])?;
            }
        }
        tx.execute(
            "INSERT INTO policy_cache(id, version, saved_at_ms) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET version = excluded.version,
                                           saved_at_ms = excluded.saved_at_ms",
            rusqlite::params![version, saved_at_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The cached registry source, if any was ever saved.
    pub fn cached_policy(&self) -> Result<Option<CachedPolicy>, Error> {
        let conn = self.conn();
        let head: Option<(String, i64)> = conn
            .query_row(
                "SELECT version, saved_at_ms FROM policy_cache WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((version, saved_at_ms)) = head else {
            return Ok(None);
        };
        let mut stmt = conn.prepare("SELECT name, text FROM policy_cache_file ORDER BY name")?;
        let files = stmt
            .query_map([], |r| {
                Ok(SourceFile {
                    name: r.get(0)?,
                    text: r.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(CachedPolicy {
            version,
            saved_at_ms,
            files,
        }))
    }
}
