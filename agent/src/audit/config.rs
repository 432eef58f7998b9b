//! The `[audit]` config section.
//!
//! Parsed in one step from a raw serde struct into typed values, reporting
//! every problem at once (unknown keys are reported by `config`, which reads
//! every section through `serde_ignored`).

use crate::config::Problems;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What happens when the unshipped backlog reaches its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Refuse new records (callers fail closed) until the sink catches up.
    Block,
    /// Keep accepting up to the hard limit, alerting loudly (log + metric).
    Alert,
}

/// Where shipped records go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkConfig {
    /// No sink: records stay local; the backlog grows until the cap.
    None,
    /// Append JSON Lines to a file (for log collectors).
    Jsonl { path: PathBuf },
}

/// Typed audit configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Most records written in one transaction (one fsync).
    pub max_batch: usize,
    /// Sign a checkpoint after this many records...
    pub checkpoint_every_records: u64,
    /// ...or after this long, whichever comes first (if anything changed).
    #[serde(serialize_with = "crate::config::ser_duration")]
    pub checkpoint_interval: Duration,
    pub policy: Policy,
    /// Cap on unshipped (and queued) records before the policy applies.
    pub max_unshipped_records: u64,
    pub max_unshipped_bytes: u64,
    /// Policy `alert` only: above this, records are refused anyway, so the
    /// disk never fills.
    pub hard_max_records: u64,
    pub hard_max_bytes: u64,
    pub sink: SinkConfig,
    /// Records per shipment.
    pub ship_batch: usize,
    #[serde(serialize_with = "crate::config::ser_duration")]
    pub retry_min: Duration,
    #[serde(serialize_with = "crate::config::ser_duration")]
    pub retry_max: Duration,
    /// Delete shipped records older than this (None: keep forever).
    #[serde(serialize_with = "ser_keep")]
    pub keep_shipped: Option<Duration>,
}

fn ser_keep<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => crate::config::ser_duration(d, s),
        None => s.serialize_str("forever"),
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_batch: 4096,
            checkpoint_every_records: 10_000,
            checkpoint_interval: Duration::from_secs(10),
            policy: Policy::Block,
            max_unshipped_records: 1_000_000,
            max_unshipped_bytes: 1 << 30,
            hard_max_records: 10_000_000,
            hard_max_bytes: 8 << 30,
            sink: SinkConfig::None,
            ship_batch: 1000,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            keep_shipped: None,
        }
    }
}

/// `[audit]` as written in TOML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub max_batch: Option<usize>,
    pub checkpoint_every_records: Option<u64>,
    pub checkpoint_interval: Option<String>,
    #[serde(default)]
    pub backpressure: RawBackpressure,
    #[serde(default)]
    pub sink: RawSink,
    #[serde(default)]
    pub retention: RawRetention,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawBackpressure {
    pub policy: Option<Policy>,
    pub max_unshipped_records: Option<u64>,
    pub max_unshipped_bytes: Option<u64>,
    pub hard_max_records: Option<u64>,
    pub hard_max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawSink {
    /// `jsonl` (default) or `none`.
    pub kind: Option<String>,
    /// JSON Lines file; relative paths are under the state directory.
    pub path: Option<PathBuf>,
    pub batch: Option<usize>,
    pub retry_min: Option<String>,
    pub retry_max: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawRetention {
    /// A duration (`7d`) or `forever` (default).
    pub keep_shipped: Option<String>,
}

fn duration(
    field: &str,
    raw: &Option<String>,
    default: Duration,
    problems: &mut Problems,
) -> Duration {
    match raw {
        None => default,
        Some(s) => problems
            .duration(&format!("audit.{field}"), s)
            .unwrap_or(default),
    }
}

fn positive<T: Copy + PartialOrd + Default + std::fmt::Display>(
    field: &str,
    raw: Option<T>,
    default: T,
    problems: &mut Problems,
) -> T {
    match raw {
        Some(v) if v <= T::default() => {
            problems.add(
                &format!("audit.{field}"),
                format!("must be greater than zero, got {v}"),
            );
            default
        }
        Some(v) => v,
        None => default,
    }
}

impl RawConfig {
    /// Turns the raw section into a typed [`Config`]; relative paths resolve
    /// under `state_dir`. Every problem is added to `problems`.
    pub fn into_config(self, state_dir: &Path, problems: &mut Problems) -> Option<Config> {
        let d = Config::default();
        let before = problems.items().len();
        let max_batch = positive("max_batch", self.max_batch, d.max_batch, problems);
        let checkpoint_every_records = positive(
            "checkpoint_every_records",
            self.checkpoint_every_records,
            d.checkpoint_every_records,
            problems,
        );
        let checkpoint_interval = duration(
            "checkpoint_interval",
            &self.checkpoint_interval,
            d.checkpoint_interval,
            problems,
        );
        let bp = self.backpressure;
        let policy = bp.policy.unwrap_or(d.policy);
        let max_unshipped_records = positive(
            "backpressure.max_unshipped_records",
            bp.max_unshipped_records,
            d.max_unshipped_records,
            problems,
        );
        let max_unshipped_bytes = positive(
            "backpressure.max_unshipped_bytes",
            bp.max_unshipped_bytes,
            d.max_unshipped_bytes,
            problems,
        );
        let hard_max_records = positive(
            "backpressure.hard_max_records",
            bp.hard_max_records,
            d.hard_max_records.max(max_unshipped_records),
            problems,
        );
        let hard_max_bytes = positive(
            "backpressure.hard_max_bytes",
            bp.hard_max_bytes,
            d.hard_max_bytes.max(max_unshipped_bytes),
            problems,
        );
        if hard_max_records < max_unshipped_records || hard_max_bytes < max_unshipped_bytes {
            problems.add(
                "audit.backpressure",
                "hard_max_* must be at least the matching max_unshipped_*",
            );
        }
        let sink = match self.sink.kind.as_deref().unwrap_or("jsonl") {
            "none" => {
                if self.sink.path.is_some() {
                    problems.add("audit.sink.path", "not used with kind = \"none\"");
                }
                SinkConfig::None
            }
            "jsonl" => {
                let path = self
                    .sink
                    .path
                    .unwrap_or_else(|| PathBuf::from("audit-shipped.jsonl"));
                SinkConfig::Jsonl {
                    path: if path.is_absolute() {
                        path
                    } else {
                        state_dir.join(path)
                    },
                }
            }
            other => {
                problems.add(
                    "audit.sink.kind",
                    format!("unknown sink {other:?} (expected \"jsonl\" or \"none\")"),
                );
                SinkConfig::None
            }
        };
        let ship_batch = positive("sink.batch", self.sink.batch, d.ship_batch, problems);
        let retry_min = duration(
            "sink.retry_min",
            &self.sink.retry_min,
            d.retry_min,
            problems,
        );
        let retry_max = duration(
            "sink.retry_max",
            &self.sink.retry_max,
            d.retry_max,
            problems,
        );
        if retry_max < retry_min {
            problems.add("audit.sink.retry_max", "must be at least retry_min");
        }
        let keep_shipped = match self.retention.keep_shipped.as_deref() {
            None | Some("forever") => None,
            Some(_) => Some(duration(
                "retention.keep_shipped",
                &self.retention.keep_shipped,
                Duration::from_secs(7 * 86_400),
                problems,
            )),
        };
        if problems.items().len() > before {
            return None;
        }
        Some(Config {
            max_batch,
            checkpoint_every_records,
            checkpoint_interval,
            policy,
            max_unshipped_records,
            max_unshipped_bytes,
            hard_max_records,
            hard_max_bytes,
            sink,
            ship_batch,
            retry_min,
            retry_max,
            keep_shipped,
        })
    }
}
