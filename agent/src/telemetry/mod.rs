//! Logs and metrics: how operators see what the agent is doing.
//!
//! Logs are structured `tracing` events (human or JSON lines) whose level can
//! change on SIGHUP without a restart. Metrics live in one Prometheus registry
//! owned by [`Metrics`]; capabilities register their own metrics there and
//! every name starts with `warden_` (listed in `docs/telemetry.md`). Secrets
//! never reach either: types holding them do not implement `Debug`.

mod logging;
mod metrics;

pub use logging::{init as init_logging, LogConfig, LogFormat, LogHandle, RawLogConfig};
pub use metrics::{Metrics, RouteMetrics};
