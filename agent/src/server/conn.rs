//! One connection: peer credentials, HTTP/1.1 keep-alive, idle timeout and
//! graceful close.

use crate::api::{Api, OpCache};
use crate::caller::Peer;
use crate::shutdown::Shutdown;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::UnixStream;
use tokio::time::{Duration, Instant};

/// Tracks whether the connection is busy and since when it has been idle.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    last_done_ms: AtomicU64,
}

impl Activity {
    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.start + Duration::from_millis(self.last_done_ms.load(Ordering::Acquire)))
    }

    fn done(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_done_ms.store(ms, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
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
    });
    let ops = Arc::new(OpCache::default());
    let service = {
        let activity = activity.clone();
        let api = api.clone();
        service_fn(move |req| {
            activity.in_flight.fetch_add(1, Ordering::AcqRel);
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
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut stop = shutdown;
    let mut closing = false;
    loop {
        let idle_deadline = activity
            .idle_since()
            .map(|since| since + config.idle_timeout)
            .unwrap_or_else(|| Instant::now() + config.idle_timeout);
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
            () = tokio::time::sleep_until(idle_deadline), if !closing => {
                if activity.idle_since().is_some_and(|since| since.elapsed() >= config.idle_timeout) {
                    tracing::debug!(uid = peer.uid, "closing idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
