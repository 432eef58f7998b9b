//! The socket server: accepts connections on the Unix socket and hands each
//! request to the API, within limits that a slow or idle client cannot
//! exhaust.
//!
//! Limits, and why:
//! - `max_connections`: every connection costs a task and buffers; at the cap
//!   new connections are closed at once (and counted) rather than queued
//!   without bound.
//! - `header_read_timeout`: a client dribbling its headers (slowloris) is cut
//!   off; hyper enforces it.
//! - `body_read_timeout` and `max_body_bytes`: enforced by the API while it
//!   reads a body (408 / 413).
//! - `idle_timeout`: a keep-alive connection with no request in flight is
//!   closed after this long.
//!
//! Shutdown stops accepting, lets in-flight requests finish (up to
//! `shutdown_grace`), and closes idle keep-alive connections at once.

mod conn;
mod socket;

pub use socket::{bind, remove_socket_file, BoundSocket, Error as SocketError};

use crate::api::Api;
use crate::config::Problems;
use crate::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::task::JoinSet;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub(crate) socket: Option<PathBuf>,
    socket_mode: Option<String>,
    socket_group: Option<String>,
    max_body_bytes: Option<u64>,
    max_connections: Option<u32>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    shutdown_grace: Option<String>,
    worker_threads: Option<usize>,
}

/// The `[server]` section.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub socket: PathBuf,
    /// Octal permission bits of the socket file; 0660 lets the agent's group in.
    #[serde(serialize_with = "ser_mode")]
    pub socket_mode: u32,
    /// Group owning the socket file; `None` keeps the agent's primary group.
    pub socket_group: Option<String>,
    pub max_body_bytes: u64,
    pub max_connections: u32,
    #[serde(serialize_with = "crate::config::ser_duration")]
    pub header_read_timeout: Duration,
    #[serde(serialize_with = "crate::config::ser_duration")]
    pub body_read_timeout: Duration,
    #[serde(serialize_with = "crate::config::ser_duration")]
    pub idle_timeout: Duration,
    #[serde(serialize_with = "crate::config::ser_duration")]
    pub shutdown_grace: Duration,
    /// Async worker threads. One is the default: a check is microseconds of
    /// CPU, so one worker serves ~100k requests/s, and every extra worker
    /// adds cross-thread wake-ups to each request's latency (measured: p50
    /// 31 µs with one worker, 47 µs with two, at one connection). Database
    /// work runs on separate blocking threads either way.
    pub worker_threads: usize,
}

fn ser_mode<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

impl Config {
    pub(crate) fn from_raw(raw: RawConfig, p: &mut Problems) -> Option<Config> {
        let socket = raw.socket;
        match &socket {
            None => p.add("server.socket", "is required (or set WARDEN_SOCKET)"),
            // sockaddr_un holds 108 bytes including the terminating NUL.
            Some(path) if path.as_os_str().len() > 107 => p.add(
                "server.socket",
                format!(
                    "{} is longer than the 107 bytes a Unix socket path may have",
                    path.display()
                ),
            ),
            Some(_) => {}
        }
        let mode_text = raw.socket_mode.unwrap_or_else(|| "0660".to_string());
        let socket_mode = match u32::from_str_radix(mode_text.trim_start_matches("0o"), 8) {
            Ok(m) if m <= 0o777 => Some(m),
            _ => {
                p.add(
                    "server.socket_mode",
                    format!("{mode_text:?} is not an octal mode such as \"0660\""),
                );
                None
            }
        };
        let max_body_bytes = raw.max_body_bytes.unwrap_or(1024 * 1024);
        if max_body_bytes == 0 {
            p.add("server.max_body_bytes", "must be greater than zero");
        }
        let max_connections = raw.max_connections.unwrap_or(1024);
        if max_connections == 0 {
            p.add("server.max_connections", "must be greater than zero");
        }
        let d = |p: &mut Problems, key: &str, v: Option<String>, default: &str| {
            p.duration(&format!("server.{key}"), v.as_deref().unwrap_or(default))
        };
        let header_read_timeout = d(p, "header_read_timeout", raw.header_read_timeout, "5s");
        let body_read_timeout = d(p, "body_read_timeout", raw.body_read_timeout, "10s");
        let idle_timeout = d(p, "idle_timeout", raw.idle_timeout, "60s");
        let shutdown_grace = d(p, "shutdown_grace", raw.shutdown_grace, "10s");
        let worker_threads = raw.worker_threads.unwrap_or(1);
        if !(1..=64).contains(&worker_threads) {
            p.add("server.worker_threads", "must be between 1 and 64");
        }
        Some(Config {
            socket: socket?,
            socket_mode: socket_mode?,
            socket_group: raw.socket_group,
            max_body_bytes,
            max_connections,
            header_read_timeout: header_read_timeout?,
            body_read_timeout: body_read_timeout?,
            idle_timeout: idle_timeout?,
            shutdown_grace: shutdown_grace?,
            worker_threads,
        })
    }
}

/// Serves `listener` until `shutdown` fires, then drains in-flight requests
/// for up to the configured grace period. Returns whether the drain finished
/// in time.
pub async fn serve(listener: UnixListener, api: Arc<Api>, shutdown: Shutdown) -> bool {
    let config = api.server_config().clone();
    let mut tasks = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            biased;
            () = stop.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Reap finished connection tasks so the set stays small.
                    while tasks.try_join_next().is_some() {}
                    if tasks.len() >= config.max_connections as usize {
                        api.metrics().connections_rejected.inc();
                        tracing::warn!(max = config.max_connections, "connection limit reached; closing new connection");
                        drop(stream);
                        continue;
                    }
                    tasks.spawn(conn::serve(stream, api.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            remaining = tasks.len(),
            "shutdown grace period ended with requests still in flight"
        );
        tasks.abort_all();
    }
    drained
}
