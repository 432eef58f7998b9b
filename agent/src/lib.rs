//! Warden: a per-host security sidecar for the ERP.
//!
//! The agent answers permission checks, issues and verifies tokens, and
//! records a tamper-evident audit trail over a local Unix socket. It is a
//! library so the `warden` binary stays thin and tests can start the whole
//! agent in-process; see `ARCHITECTURE.md` for the map.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod audit;
pub mod caller;
pub mod cli;
pub mod clock;
pub mod config;
pub mod keys;
pub mod policy;
pub mod random;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tokens;

pub use agent::run;
