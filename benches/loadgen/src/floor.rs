//! The floor: the cheapest HTTP/1.1 server hyper can be over a Unix socket.
//!
//! It answers every request with `200 {"status":"ok"}` without routing,
//! state or logging, so whatever the agent costs beyond it is the agent's own
//! work (routing, peer credentials, ACL, metrics, logging). It runs the same
//! tokio + hyper 1 stack as the agent so the comparison isolates that work.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

/// Pause after a failed accept so a full descriptor table is no busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);

/// The body every request gets, the same bytes `/v1/health` answers.
pub const BODY: &[u8] = br#"{"status":"ok"}"#;

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request body so POST benchmarks pay the same cost they would
    // against the agent; a broken body still gets the fixed answer.
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// Serves connections from `listener` until `shutdown` completes; open
/// connections are dropped at that point (the floor holds no state worth
/// draining).
pub async fn serve(listener: UnixListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors and similar: pause, then keep serving
                // the connections already open.
                Err(_) => {
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
