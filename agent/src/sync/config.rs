use crate::config::Problems;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Where the permission registry comes from (`[policy]`).
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Directory of registry files (`*.toml`, recursively; `tests/` holds
    /// policy test cases and is not part of the registry).
    pub dir: PathBuf,
    /// Watch `dir` and reload on change.
    pub watch: bool,
    /// Quiet period after the last file event before reloading: editors and
    /// deploy tools write several files; reload once, after the last one.
    #[serde(serialize_with = "crate::config::ser_duration")]
    pub debounce: Duration,
}

/// Default debounce: long enough to coalesce an editor's write-rename-chmod,
/// short enough that a change is served well within a second.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(150);

/// Default registry directory of a packaged install.
pub const DEFAULT_DIR: &str = "/etc/warden/policies";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    dir: Option<PathBuf>,
    watch: Option<bool>,
    debounce: Option<String>,
}

impl Config {
    pub(crate) fn from_raw(raw: RawConfig, p: &mut Problems) -> Option<Config> {
        let dir = raw.dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        if dir.as_os_str().is_empty() {
            p.add("policy.dir", "must not be empty");
        }
        let debounce = match raw.debounce.as_deref() {
            None => Some(DEFAULT_DEBOUNCE),
            Some(text) => p.duration("policy.debounce", text),
        };
        Some(Config {
            dir,
            watch: raw.watch.unwrap_or(true),
            debounce: debounce?,
        })
    }
}
