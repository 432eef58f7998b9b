//! Creating the socket file safely.
//!
//! A socket file left behind by a crashed agent must not stop the next start,
//! but a live agent's socket must never be stolen: we remove an existing file
//! only after a connection attempt proves nobody is listening on it.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("another warden agent is already serving {0}; refusing to start a second one")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("cannot create socket directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set owner or mode of {path}: {source}")]
    Permissions {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("socket group {0:?} does not exist on this host")]
    UnknownGroup(String),
}

/// A bound listener that removes its socket file when dropped.
#[derive(Debug)]
pub struct BoundSocket {
    pub listener: UnixListener,
    pub path: PathBuf,
}

impl BoundSocket {
    /// Removes the socket file; called on orderly shutdown.
    pub fn remove_file(&self) {
        remove_socket_file(&self.path);
    }
}

/// Removes a socket file we created, tolerating its absence.
pub fn remove_socket_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove socket file");
        }
    }
}

/// Binds the socket at `path` with `mode` and optional `group`.
pub fn bind(path: &Path, mode: u32, group: Option<&str>) -> Result<BoundSocket, Error> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::Dir {
            path: parent.to_path_buf(),
            source: e,
        })?;
    }
    reclaim_stale(path)?;
    let gid = match group {
        None => None,
        Some(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Some(g.gid.as_raw()),
            _ => return Err(Error::UnknownGroup(name.to_string())),
        },
    };
    let listener = UnixListener::bind(path).map_err(|e| Error::Bind {
        path: path.to_path_buf(),
        source: e,
    })?;
    let bound = BoundSocket {
        listener,
        path: path.to_path_buf(),
    };
    let perms = || -> std::io::Result<()> {
        if let Some(gid) = gid {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    };
    if let Err(e) = perms() {
        bound.remove_file();
        return Err(Error::Permissions {
            path: path.to_path_buf(),
            source: e,
        });
    }
    Ok(bound)
}

fn reclaim_stale(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::Bind {
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(Error::NotASocket(path.to_path_buf()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(Error::InUse(path.to_path_buf())),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused || e.kind() == ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "removing stale socket left by a previous run");
            std::fs::remove_file(path).map_err(|e| Error::Bind {
                path: path.to_path_buf(),
                source: e,
            })
        }
        Err(e) => Err(Error::Bind {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
