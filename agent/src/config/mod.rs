//! Configuration: TOML in, typed config out, every problem reported at once.
//!
//! Each capability owns its section (`server::Config`, `caller::Config`,
//! `telemetry::LogConfig`, ...) as a raw serde struct plus a typed struct
//! built from it. This module only stitches the sections together, applies the
//! environment overrides, and turns unknown keys into errors. Unknown keys are
//! collected with `serde_ignored` rather than `deny_unknown_fields` so that a
//! file with three typos reports all three in one go.
//!
//! Without `--config` or `WARDEN_CONFIG` the agent runs on the embedded
//! development default (`config/warden.dev.toml`): socket and state under
//! `./var/`, file policy source, no PostgreSQL.

mod env;
mod problems;

pub use env::{Env, TEST_CLOCK};
pub use problems::Problems;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The development default, compiled in so `warden serve` works from a clean
/// clone with no file arguments.
pub const EMBEDDED_DEV: &str = include_str!("../../../config/warden.dev.toml");

/// Where the config text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl Source {
    /// `--config` if given, else `WARDEN_CONFIG`, else the embedded default.
    pub fn resolve(flag: Option<&Path>, env: &Env) -> Source {
        match (flag, env.get(env::CONFIG)) {
            (Some(p), _) => Source::File(p.to_path_buf()),
            (None, Some(p)) => Source::File(PathBuf::from(p)),
            (None, None) => Source::Embedded,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("<embedded config/warden.dev.toml>"),
        }
    }
}

/// Why the config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {source_name} is invalid:\n{problems}")]
    Invalid {
        source_name: String,
        problems: Problems,
    },
}

/// Production refuses unsafe conveniences (generated keys, missing KEK);
/// development allows them with loud warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Production,
    Development,
}

/// The agent's typed configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub mode: Mode,
    pub server: crate::server::Config,
    pub state: StateConfig,
    pub log: crate::telemetry::LogConfig,
    pub callers: crate::caller::Config,
    pub audit: crate::audit::Config,
    pub keys: crate::keys::Config,
    pub tokens: crate::tokens::Config,
    pub policy: crate::sync::Config,
    /// Where this config was read from; kept so SIGHUP can re-read it.
    #[serde(skip)]
    pub source: Source,
}

/// Where the agent keeps its local state.
#[derive(Debug, Clone, Serialize)]
pub struct StateConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConfig {
    mode: Option<String>,
    server: crate::server::RawConfig,
    state: RawState,
    log: crate::telemetry::RawLogConfig,
    callers: Vec<crate::caller::RawRule>,
    audit: crate::audit::RawConfig,
    keys: crate::keys::RawConfig,
    tokens: crate::tokens::RawConfig,
    policy: crate::sync::RawConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawState {
    dir: Option<PathBuf>,
}

impl Config {
    /// Reads and validates the config from `source`, then applies `env`.
    pub fn load(source: &Source, env: &Env) -> Result<Config, Error> {
        let text = match source {
            Source::File(path) => std::fs::read_to_string(path).map_err(|e| Error::Read {
                path: path.clone(),
                source: e,
            })?,
            Source::Embedded => EMBEDDED_DEV.to_string(),
        };
        Config::parse(&text, source.clone(), env)
    }

    /// Validates config text; every problem is reported together.
    pub fn parse(text: &str, source: Source, env: &Env) -> Result<Config, Error> {
        let mut problems = Problems::default();
        let mut unknown = Vec::new();
        let de = toml::Deserializer::new(text);
        let raw: Option<RawConfig> =
            match serde_ignored::deserialize(de, |path| unknown.push(path.to_string())) {
                Ok(raw) => Some(raw),
                Err(e) => {
                    problems.add("toml", e.to_string().trim_end());
                    None
                }
            };
        for key in unknown {
            problems.add(&key, "unknown option");
        }
        let config = raw.and_then(|raw| Config::build(raw, source.clone(), env, &mut problems));
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(Error::Invalid {
                source_name: source.to_string(),
                problems,
            }),
        }
    }

    fn build(raw: RawConfig, source: Source, env: &Env, p: &mut Problems) -> Option<Config> {
        let mode = match raw.mode.as_deref() {
            None | Some("production") => Some(Mode::Production),
            Some("development") => Some(Mode::Development),
            Some(other) => {
                p.add(
                    "mode",
                    format!("{other:?} is not one of \"production\", \"development\""),
                );
                None
            }
        };
        let mut server_raw = raw.server;
        if let Some(socket) = env.get(env::SOCKET) {
            server_raw.socket = Some(PathBuf::from(socket));
        }
        let mut log_raw = raw.log;
        if let Some(level) = env.get(env::LOG) {
            log_raw.level = Some(level.to_string());
        }
        let state_dir = match env.get(env::STATE_DIR) {
            Some(dir) => Some(PathBuf::from(dir)),
            None => raw.state.dir,
        };
        if state_dir.is_none() {
            p.add("state.dir", "is required (or set WARDEN_STATE_DIR)");
        }
        let server = crate::server::Config::from_raw(server_raw, p);
        let log = crate::telemetry::LogConfig::from_raw(log_raw, p);
        let callers = crate::caller::Config::from_raw(raw.callers, p);
        let audit = raw
            .audit
            .into_config(state_dir.as_deref().unwrap_or_else(|| Path::new(".")), p);
        let tokens = crate::tokens::Config::from_raw(raw.tokens, p);
        let default_grace = tokens.as_ref().map_or_else(
            || crate::tokens::Config::default().key_grace_ms(),
            |t| t.key_grace_ms(),
        );
        let keys = crate::keys::Config::from_raw(raw.keys, default_grace, p);
        let policy = crate::sync::Config::from_raw(raw.policy, p);
        Some(Config {
            mode: mode?,
            server: server?,
            state: StateConfig { dir: state_dir? },
            log: log?,
            callers: callers?,
            audit: audit?,
            keys: keys?,
            tokens: tokens?,
            policy: policy?,
            source,
        })
    }

    /// The effective config as TOML, for `warden config check`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Serialises a duration in the same human form the config accepts.
pub(crate) fn ser_duration<S: serde::Serializer>(
    d: &std::time::Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[cfg(test)]
mod tests;
