//! The one seam through which the agent reads its environment.
//!
//! Tools, tests and systemd units depend on these exact variable names, so
//! they are constants here; tests pass an [`Env`] built from a map instead of
//! mutating the process environment.

use std::collections::HashMap;

/// Path of the config file when `--config` is not given.
pub const CONFIG: &str = "WARDEN_CONFIG";
/// Overrides `server.socket`.
pub const SOCKET: &str = "WARDEN_SOCKET";
/// Overrides `state.dir`.
pub const STATE_DIR: &str = "WARDEN_STATE_DIR";
/// Overrides `log.level` (a tracing filter such as `info` or `warden=debug`).
pub const LOG: &str = "WARDEN_LOG";

/// A snapshot of the environment variables the agent cares about.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Reads the process environment (only `WARDEN_*` and systemd's variables).
    pub fn from_process() -> Env {
        let vars = std::env::vars()
            .filter(|(k, _)| k.starts_with("WARDEN_") || k == "CREDENTIALS_DIRECTORY")
            .collect();
        Env { vars }
    }

    /// Builds an environment from explicit pairs; for tests.
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value; empty values count as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}
