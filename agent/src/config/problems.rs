//! Collects every problem in a config so the operator sees them all at once
//! instead of fixing one, restarting, and meeting the next.

use std::fmt;

/// All problems found while turning raw config into typed config.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems {
    items: Vec<String>,
}

impl Problems {
    /// Records a problem with the option at `path` (e.g. `server.idle_timeout`).
    pub fn add(&mut self, path: &str, message: impl fmt::Display) {
        self.items.push(format!("{path}: {message}"));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// Parses a human duration (`250ms`, `5s`, `10m`) at `path`.
    pub fn duration(&mut self, path: &str, text: &str) -> Option<std::time::Duration> {
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.add(path, "must be greater than zero");
                None
            }
            Err(e) => {
                self.add(
                    path,
                    format!("{text:?} is not a duration ({e}); use e.g. \"5s\""),
                );
                None
            }
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}
