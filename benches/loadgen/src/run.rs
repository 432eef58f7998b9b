//! The generator: N keep-alive connections, each sending the fixed request
//! back to back for a warm-up period and then for the measured duration.
//!
//! Each connection keeps its own histogram so the hot loop shares nothing;
//! they are merged once at the end. A connection that breaks is counted and
//! re-opened, so a server that closes connections shows up as errors and
//! reconnects rather than ending the run early. Every wait is bounded by
//! the per-request timeout and the run's end, so a run always stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::report::{Counts, Report};
use crate::request::RequestSpec;

/// Highest latency the histogram tracks; slower answers are clamped to it
/// (and would already have hit the request timeout).
const MAX_TRACKED: Duration = Duration::from_secs(60);

/// Pause before re-connecting after a failed connect, so a dead socket does
/// not turn the run into a busy loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub socket: PathBuf,
    pub request: RequestSpec,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Per-request limit; a request slower than this counts as an error and
    /// its connection is re-opened.
    pub timeout: Duration,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connections must be at least 1")]
    NoConnections,
    #[error("duration must be greater than zero")]
    ZeroDuration,
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: String,
        source: std::io::Error,
    },
    #[error("http handshake with {socket} failed: {source}")]
    Handshake {
        socket: String,
        source: hyper::Error,
    },
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    // 3 significant figures over 1 ns .. 60 s; fixed bounds mean `record`
    // never allocates or fails in the hot loop.
    let max = u64::try_from(MAX_TRACKED.as_nanos()).unwrap_or(u64::MAX);
    match Histogram::new_with_bounds(1, max, 3) {
        Ok(h) => h,
        // The bounds above are constants that hdrhistogram accepts.
        Err(e) => unreachable!("constant histogram bounds rejected: {e}"),
    }
}

/// Runs the load and returns the merged report. Fails before generating any
/// load if the socket cannot be reached, so a typo is not a report full of
/// errors.
pub async fn run(cfg: RunConfig) -> Result<Report, Error> {
    if cfg.connections == 0 {
        return Err(Error::NoConnections);
    }
    if cfg.duration.is_zero() {
        return Err(Error::ZeroDuration);
    }
    probe(&cfg.socket).await?;

    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let cfg = Arc::new(cfg);
    let mut tasks = Vec::with_capacity(cfg.connections);
    for _ in 0..cfg.connections {
        tasks.push(tokio::spawn(connection(
            Arc::clone(&cfg),
            measure_from,
            end,
        )));
    }
    let mut total = Counts::default();
    for task in tasks {
        match task.await {
            Ok(counts) => total.merge(&counts),
            Err(e) => total.error(true, format!("connection task failed: {e}")),
        }
    }
    let elapsed = Instant::now().saturating_duration_since(measure_from);
    Ok(Report::new(&cfg, elapsed.max(cfg.duration), total))
}

/// One connect and handshake up front, to fail fast on a wrong socket.
async fn probe(socket: &std::path::Path) -> Result<(), Error> {
    let name = || socket.display().to_string();
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| Error::Connect {
            socket: name(),
            source,
        })?;
    let (_sender, conn) =
        http1::handshake::<_, http_body_util::Full<bytes::Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|source| Error::Handshake {
                socket: name(),
                source,
            })?;
    drop(conn);
    Ok(())
}

async fn connection(cfg: Arc<RunConfig>, measure_from: Instant, end: Instant) -> Counts {
    let mut stats = Counts::default();
    let mut first = true;
    while Instant::now() < end {
        if !first {
            stats.reconnects += 1;
        }
        first = false;
        let stream =
            match tokio::time::timeout_at(end.into(), UnixStream::connect(&cfg.socket)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    stats.error(Instant::now() >= measure_from, format!("connect: {e}"));
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
                Err(_) => break,
            };
        let (mut sender, conn) = match http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => {
                stats.error(Instant::now() >= measure_from, format!("handshake: {e}"));
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        // The connection future drives the socket; it ends when the sender is
        // dropped or the peer closes.
        let driver = tokio::spawn(conn);
        send_loop(&cfg, &mut sender, &mut stats, measure_from, end).await;
        drop(sender);
        driver.abort();
    }
    stats
}

/// Sends requests on one open connection until the run ends or the
/// connection fails.
async fn send_loop(
    cfg: &RunConfig,
    sender: &mut http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    stats: &mut Counts,
    measure_from: Instant,
    end: Instant,
) {
    loop {
        let started = Instant::now();
        if started >= end {
            return;
        }
        let measured = started >= measure_from;
        let deadline = started + cfg.timeout;
        let outcome = tokio::time::timeout_at(deadline.into(), async {
            sender.ready().await?;
            let resp = sender.send_request(cfg.request.build()).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        })
        .await;
        let took = started.elapsed();
        match outcome {
            Ok(Ok(status)) => {
                if measured {
                    stats.requests += 1;
                    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
                    stats.histogram.saturating_record(ns);
                    *stats.statuses.entry(status.as_u16()).or_default() += 1;
                    if !status.is_success() {
                        stats.non_2xx += 1;
                    }
                }
            }
            Ok(Err(e)) => {
                stats.error(measured, format!("request: {e}"));
                return;
            }
            Err(_) => {
                stats.error(
                    measured,
                    format!("request timed out after {:?}", cfg.timeout),
                );
                return;
            }
        }
    }
}

/// Parses `5s`, `500ms`, `2m` or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (use e.g. 5s, 500ms, 1m)"))?;
    if !value.is_finite() || value < 0.0 || value * scale > 3_600.0 {
        return Err(format!("duration {text:?} must be between 0 and 1 hour"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}
