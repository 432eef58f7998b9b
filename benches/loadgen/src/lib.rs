//! Load generator and floor server for the Warden agent's Unix socket.
//!
//! Every endpoint the agent grows (health, permission checks, tokens, audit)
//! is judged against the same two numbers: what it costs over the socket, and
//! what the socket plus hyper cost on their own. This crate measures both with
//! one tool so the comparison is honest: the same client, the same keep-alive
//! connections and the same histogram drive the agent and the `floor` server,
//! side by side in one run.
//!
//! The generator is closed-loop (each connection sends its next request when
//! the previous answer is fully read), so it measures service time under a
//! fixed concurrency, not open-loop arrival latency; see `benches/README.md`.
#![forbid(unsafe_code)]

pub mod floor;
pub mod report;
pub mod request;
pub mod run;

pub use report::{Comparison, Counts, Latency, Report};
pub use request::RequestSpec;
pub use run::{run, Error, RunConfig};

#[cfg(test)]
mod tests;
