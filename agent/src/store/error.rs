use std::path::{Path, PathBuf};

/// What went wrong with the local store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("state directory {path} is not usable (it must exist or be creatable, and be writable): {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state database {path} does not exist")]
    Missing { path: PathBuf },
    #[error("state database {path} is corrupt or not a SQLite database ({detail}); restore it from backup or move it aside")]
    Corrupt { path: PathBuf, detail: String },
    #[error("state database {path} was written by a newer warden; refusing to downgrade it")]
    TooNew { path: PathBuf },
    #[error("schema migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored data is invalid: {0}")]
    Invalid(String),
    #[error("database task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn open(path: &Path, source: rusqlite::Error) -> Error {
        // SQLITE_NOTADB surfaces on open or on the first statement.
        if let rusqlite::Error::SqliteFailure(e, _) = &source {
            if e.code == rusqlite::ErrorCode::NotADatabase {
                return Error::Corrupt {
                    path: path.to_path_buf(),
                    detail: source.to_string(),
                };
            }
        }
        Error::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}
