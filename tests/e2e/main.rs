//! End-to-end tests: each starts the real `warden` binary on a temporary
//! socket and state directory (see `support`) and talks to it as the ERP does.

mod support;

mod acl;
mod audit_api;
mod audit_crash;
mod audit_tamper;
mod audit_wiring;
mod check_tokens;
mod lifecycle;
mod limits;
mod ops;
mod policy_check;
mod policy_cli;
mod policy_reload;
mod sdk_rust;
mod systemd;
mod tokens_flow;
mod tokens_interop;
mod tokens_keys;
mod tokens_support;
mod tokens_time;
