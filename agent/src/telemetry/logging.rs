use crate::config::Problems;
use serde::{Deserialize, Serialize};
use tracing_subscriber::{fmt, prelude::*, reload, EnvFilter, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawLogConfig {
    pub(crate) format: Option<String>,
    pub(crate) level: Option<String>,
}

/// The `[log]` section.
#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter: `info`, `warn,warden=debug`, ...
    pub level: String,
}

impl LogConfig {
    pub(crate) fn from_raw(raw: RawLogConfig, p: &mut Problems) -> Option<LogConfig> {
        let format = match raw.format.as_deref() {
            None | Some("human") => Some(LogFormat::Human),
            Some("json") => Some(LogFormat::Json),
            Some(other) => {
                p.add(
                    "log.format",
                    format!("{other:?} is not one of \"human\", \"json\""),
                );
                None
            }
        };
        let level = raw.level.unwrap_or_else(|| "info".to_string());
        if let Err(e) = EnvFilter::try_new(&level) {
            p.add("log.level", format!("{level:?} is not a valid filter: {e}"));
            return None;
        }
        Some(LogConfig {
            format: format?,
            level,
        })
    }
}

/// Lets SIGHUP change the log filter of the running agent.
#[derive(Clone)]
pub struct LogHandle {
    filter: Option<reload::Handle<EnvFilter, Registry>>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").finish_non_exhaustive()
    }
}

impl LogHandle {
    /// A handle that changes nothing, for in-process use without logging.
    pub fn detached() -> LogHandle {
        LogHandle { filter: None }
    }

    /// Applies a new filter; invalid filters were rejected by config checks.
    pub fn set_level(&self, level: &str) {
        if let (Some(handle), Ok(filter)) = (&self.filter, EnvFilter::try_new(level)) {
            if let Err(e) = handle.reload(filter) {
                tracing::warn!(error = %e, "cannot change log level");
            }
        }
    }
}

/// Installs the global subscriber writing to stderr (journald captures it).
pub fn init(config: &LogConfig) -> LogHandle {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = Registry::default().with(filter);
    let installed = match config.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Human => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    match installed {
        Ok(()) => LogHandle {
            filter: Some(handle),
        },
        Err(_) => LogHandle::detached(),
    }
}
