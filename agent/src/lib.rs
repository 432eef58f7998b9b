//! Warden: a per-host security sidecar for the ERP.
//!
//! The agent answers permission checks, issues and verifies tokens, and
//! records a tamper-evident audit trail over a local Unix socket. It is a
//! library so the `warden` binary stays thin and tests can start the whole
//! agent in-process; see `ARCHITECTURE.md` for the map.
#![forbid(unsafe_code)]

pub mod clock;
pub mod policy;
pub mod store;
