//! One connection: peer credentials, HTTP/1.1 keep-alive, header and idle
//! timeouts, graceful close.
//!
//! hyper's own `header_read_timeout` also fires while a keep-alive connection
//! merely waits for its next request, which would make every idle client
//! reconnect after a few seconds. So both clocks are kept here instead: the
//! header clock starts at the first byte of a request (noticed by the
//! [`Tracked`] stream wrapper) and stops when hyper hands us the parsed
//! request; the idle clock runs while no request is in flight and no bytes of
//! a new one have arrived.
//!
//! The clocks are read by a coarse ticker (a quarter of the shorter timeout)
//! rather than by a timer re-armed per request: re-arming costs a lock in
//! tokio's timer wheel on every request, while a tick costs nothing per
//! request. A timeout therefore fires between 1x and 1.25x its setting.

use crate::api::{Api, OpCache};
use crate::caller::Peer;
use crate::shutdown::Shutdown;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::time::{Duration, Instant};

/// Marks "no request bytes pending" in [`Activity::head_started_ms`].
const NO_HEAD: u64 = u64::MAX;

/// Tracks whether the connection is busy, since when it has been idle, and
/// since when a request head has been arriving.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    last_done_ms: AtomicU64,
    head_started_ms: AtomicU64,
}

/// What the connection is doing, for the timeout watcher.
enum Phase {
    /// Waiting for the first byte of a request since this instant.
    Idle(Instant),
    /// Receiving a request head since this instant.
    Head(Instant),
    /// A request is being handled.
    Busy,
}

impl Activity {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn phase(&self) -> Phase {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Phase::Busy;
        }
        let head = self.head_started_ms.load(Ordering::Acquire);
        if head != NO_HEAD {
            return Phase::Head(self.start + Duration::from_millis(head));
        }
        Phase::Idle(self.start + Duration::from_millis(self.last_done_ms.load(Ordering::Acquire)))
    }

    /// Bytes arrived; if no request was in progress, a head has started.
    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started_ms.load(Ordering::Acquire) == NO_HEAD
        {
            self.head_started_ms
                .store(self.elapsed_ms(), Ordering::Release);
        }
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(NO_HEAD, Ordering::Release);
    }

    fn done(&self) {
        self.last_done_ms
            .store(self.elapsed_ms(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, reporting arriving bytes to [`Activity`].
struct Tracked {
    inner: UnixStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Decrements the open-connections gauge however the task ends.
struct OpenGuard(prometheus::IntGauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub(super) async fn serve(stream: UnixStream, api: Arc<Api>, shutdown: Shutdown) {
    let peer = match stream.peer_cred() {
        Ok(cred) => Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        },
        Err(e) => {
            // Without credentials we cannot authorise anything: drop it.
            tracing::warn!(error = %e, "cannot read peer credentials; closing connection");
            return;
        }
    };
    let metrics = api.metrics();
    metrics.connections.inc();
    metrics.open_connections.inc();
    let _open = OpenGuard(metrics.open_connections.clone());
    let config = api.server_config().clone();
    let activity = Arc::new(Activity {
        start: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_done_ms: AtomicU64::new(0),
        head_started_ms: AtomicU64::new(NO_HEAD),
    });
    let ops = Arc::new(OpCache::default());
    let service = {
        let activity = activity.clone();
        let api = api.clone();
        service_fn(move |req| {
            activity.begin();
            let activity = activity.clone();
            let api = api.clone();
            let ops = ops.clone();
            async move {
                let response = api.handle(req, peer, &ops).await;
                activity.done();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    let io = Tracked {
        inner: stream,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stop = shutdown;
    let mut closing = false;
    let tick =
        (config.header_read_timeout.min(config.idle_timeout) / 4).max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval_at(Instant::now() + tick, tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, uid = peer.uid, "connection ended with an error");
                }
                break;
            }
            () = stop.wait(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = ticker.tick() => match activity.phase() {
                Phase::Idle(since) if since.elapsed() >= config.idle_timeout && !closing => {
                    tracing::debug!(uid = peer.uid, "closing idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                Phase::Head(since) if since.elapsed() >= config.header_read_timeout => {
                    // Slowloris: drop the connection outright.
                    tracing::info!(uid = peer.uid, pid = peer.pid, "request headers not received in time; closing connection");
                    break;
                }
                _ => {}
            },
        }
    }
}
