//! Rust client for the Warden agent.
