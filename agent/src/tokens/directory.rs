//! A users file as the directory, for hosts (and tests) that run the token
//! service without the policy directory. When the policy engine is wired in,
//! its snapshot answers `roles_of` instead.
//!
//! Format (TOML):
//! ```toml
//! [[users]]
//! id = "alice"
//! org = "acme"
//! roles = ["inventory_supervisor"]
//! ```

use super::{Directory, Error};
use arc_swap::ArcSwap;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

type Table = HashMap<(String, String), Vec<String>>;

/// The directory read from a users file; reloadable.
#[derive(Debug)]
pub struct FileDirectory {
    path: PathBuf,
    users: ArcSwap<Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    users: Vec<User>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    id: String,
    org: String,
    roles: Vec<String>,
}

fn read(path: &Path) -> Result<Table, Error> {
    let bad = |m: String| Error::Directory(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file: File = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut out = Table::new();
    for u in file.users {
        if out.insert((u.id.clone(), u.org.clone()), u.roles).is_some() {
            return Err(bad(format!(
                "user {} is listed twice in org {}",
                u.id, u.org
            )));
        }
    }
    Ok(out)
}

impl FileDirectory {
    pub fn load(path: &Path) -> Result<FileDirectory, Error> {
        Ok(FileDirectory {
            path: path.to_path_buf(),
            users: ArcSwap::from_pointee(read(path)?),
        })
    }

    /// Re-reads the file; on error the previous contents stay in force.
    pub fn reload(&self) -> Result<(), Error> {
        self.users.store(std::sync::Arc::new(read(&self.path)?));
        Ok(())
    }
}

impl Directory for FileDirectory {
    fn roles_of(&self, user_id: &str, org_id: &str) -> Option<Vec<String>> {
        self.users
            .load()
            .get(&(user_id.to_string(), org_id.to_string()))
            .cloned()
    }
}
