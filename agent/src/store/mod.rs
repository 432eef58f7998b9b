//! The local store: one SQLite file in the state directory.
//!
//! Why SQLite: the agent must keep answering (policies, keys, sessions) when the
//! central store is down, and must never lose an acknowledged audit record, so
//! everything it needs to serve lives in one crash-safe file on the host.
//!
//! Design:
//! - **Durability**: WAL journal with `synchronous=FULL`, so a committed
//!   transaction survives power loss; writers batch work into few transactions
//!   (the audit recorder group-commits) to amortise the fsync.
//! - **Schema**: migrations live in `migrations/sqlite/NN-name/up.sql`, are
//!   embedded at build time and applied at open by `rusqlite_migration`
//!   (tracked in `PRAGMA user_version`). A database newer than this binary is
//!   refused rather than guessed at.
//! - **Integrity**: `PRAGMA quick_check` runs at open; a corrupt file or a file
//!   that is not SQLite is a clear start-up error, never a silent re-create.
//! - **Threads**: rusqlite is blocking. Async code goes through [`Store::run`],
//!   which moves the work to tokio's blocking pool; the async workers never
//!   touch the database. One connection behind a mutex serialises writers,
//!   which SQLite would do anyway.
//! - **Ownership**: only this module writes SQL. Each capability's queries live
//!   in a file of their own here (`meta.rs`, ...), as methods on [`Store`].

pub mod audit;
mod error;
mod keys;
mod meta;
mod sessions;

pub use keys::KeyRow;
pub use sessions::{RefreshOutcome, SessionRow};
mod policy;

pub use error::Error;
pub use policy::CachedPolicy;

use include_dir::{include_dir, Dir};
use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::Migrations;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "warden.db";

static MIGRATIONS_DIR: Dir = include_dir!("$CARGO_MANIFEST_DIR/migrations/sqlite");

static MIGRATIONS: LazyLock<Result<Migrations<'static>, String>> =
    LazyLock::new(|| Migrations::from_directory(&MIGRATIONS_DIR).map_err(|e| e.to_string()));

/// Handle to the local database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database in `state_dir`, checks its
    /// integrity and brings its schema up to date.
    pub fn open(state_dir: &Path) -> Result<Store, Error> {
        ensure_writable_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::open(&path, e))?;
        configure(&conn).map_err(|e| Error::open(&path, e))?;
        integrity_check(&conn, &path)?;
        migrate(&mut conn, &path)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                conn: Mutex::new(conn),
            }),
        })
    }

    /// Opens an existing database read-only, for offline tools (`warden audit
    /// verify`) that must not change what they inspect.
    pub fn open_read_only(state_dir: &Path) -> Result<Store, Error> {
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            return Err(Error::Missing { path });
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::open(&path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| Error::open(&path, e))?;
        integrity_check(&conn, &path)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                conn: Mutex::new(conn),
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs blocking database work on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&Store) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Locks the connection for synchronous work. Only for code already off
    /// the async workers (inside [`Store::run`], a dedicated thread, or tools).
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a panic mid-transaction; SQLite rolled the
        // transaction back, so the connection itself is still consistent.
        self.inner
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Flushes the WAL into the main file; called at shutdown so the state
    /// directory is a single self-contained file between runs.
    pub fn checkpoint(&self) -> Result<(), Error> {
        self.conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(Error::Sql)
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn integrity_check(conn: &Connection, path: &Path) -> Result<(), Error> {
    let result: Result<String, rusqlite::Error> =
        conn.query_row("PRAGMA quick_check", [], |row| row.get(0));
    match result {
        Ok(ok) if ok == "ok" => Ok(()),
        Ok(problem) => Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: problem,
        }),
        Err(e) => Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    let migrations = MIGRATIONS
        .as_ref()
        .map_err(|e| Error::Migration(format!("embedded migrations are invalid: {e}")))?;
    migrations.to_latest(conn).map_err(|e| match e {
        rusqlite_migration::Error::MigrationDefinition(
            rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
        ) => Error::TooNew {
            path: path.to_path_buf(),
        },
        other => Error::Migration(other.to_string()),
    })
}

fn ensure_writable_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::StateDir {
        path: dir.to_path_buf(),
        source: e,
    })?;
    // Probe with a real write: permission bits lie under root, read-only
    // mounts and ACLs.
    let probe = dir.join(".warden-write-probe");
    std::fs::write(&probe, b"probe")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| Error::StateDir {
            path: dir.to_path_buf(),
            source: e,
        })
}

#[cfg(test)]
mod tests;
