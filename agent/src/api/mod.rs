//! The HTTP layer: translates socket requests into calls on the capability
//! modules and their results back into JSON. It owns no state and no
//! business rules: routing, the caller ACL gate, body limits, error mapping,
//! request ids, per-route metrics and the `x-warden-policy-version` header.
//!
//! Request flow: `server::conn` hands each request to [`Api::handle`], which
//! finds the route (404/405), checks the caller's operation class (403),
//! reads the body within the size and time limits (413/408), dispatches to
//! the handler file for that capability (`ops.rs`, ...), and stamps the
//! common headers on whatever comes back.

pub mod audit;
mod check;
mod error;
pub mod json;
mod ops;
mod routes;
mod tokens;

pub use error::ApiError;
pub use routes::Route;

use crate::agent::Ctx;
use crate::caller::{OpSet, Peer};
use crate::telemetry::{Metrics, RouteMetrics};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What every handler returns.
pub type Response = hyper::Response<Full<Bytes>>;

pub const POLICY_VERSION_HEADER: HeaderName = HeaderName::from_static("x-warden-policy-version");
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// One request as handlers see it.
#[derive(Debug)]
pub struct Call {
    pub peer: Peer,
    pub request_id: String,
    pub body: Bytes,
    pub query: Option<String>,
}

/// The caller's allowed operations, cached per connection and recomputed
/// when the ACL is reloaded (the high bits hold the ACL generation).
#[derive(Debug, Default)]
pub struct OpCache(AtomicU64);

/// The API service shared by every connection.
pub struct Api {
    ctx: Arc<Ctx>,
    route_metrics: Vec<RouteMetrics>,
    unknown_route: RouteMetrics,
    next_request: AtomicU64,
    request_prefix: String,
}

impl Api {
    pub fn new(ctx: Arc<Ctx>) -> Api {
        let route_metrics = Route::ALL
            .iter()
            .map(|r| ctx.metrics.route(r.name()))
            .collect();
        let unknown_route = ctx.metrics.route("unmatched");
        // Request ids: a per-boot random prefix plus a counter is unique,
        // cheap, and lets logs of one run be grepped together.
        let request_prefix = hex::encode(crate::random::bytes::<4>().unwrap_or([0; 4]));
        Api {
            ctx,
            route_metrics,
            unknown_route,
            next_request: AtomicU64::new(1),
            request_prefix,
        }
    }

    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    pub fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    pub fn server_config(&self) -> &crate::server::Config {
        &self.ctx.config.server
    }

    /// Handles one request; never fails (errors become error responses).
    pub async fn handle(&self, req: Request<Incoming>, peer: Peer, ops: &OpCache) -> Response {
        let started = Instant::now();
        let request_id = self.request_id(&req);
        let route = Route::find(req.uri().path());
        let mut response = match self.dispatch(req, route, peer, ops, &request_id).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        };
        let status = response.status().as_u16();
        let metrics = match route {
            Some(r) => &self.route_metrics[r as usize],
            None => &self.unknown_route,
        };
        metrics.observe(status, started.elapsed().as_secs_f64());
        let headers = response.headers_mut();
        headers.insert(POLICY_VERSION_HEADER, self.ctx.policy_version_header());
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID_HEADER, v);
        }
        tracing::debug!(
            request_id,
            route = route.map(Route::name).unwrap_or("unmatched"),
            status,
            uid = peer.uid,
            pid = peer.pid,
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
        response
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        route: Option<Route>,
        peer: Peer,
        ops: &OpCache,
        request_id: &str,
    ) -> Result<Response, ApiError> {
        let route = match self.admit(&req, route, peer, ops) {
            Ok(route) => route,
            Err(e) => {
                self.discard_body(req).await;
                return Err(e);
            }
        };
        let query = req.uri().query().map(str::to_string);
        let body = if route.has_body() {
            self.read_body(req).await?
        } else {
            self.discard_body(req).await;
            Bytes::new()
        };
        let call = Call {
            peer,
            request_id: request_id.to_string(),
            body,
            query,
        };
        let ctx = &self.ctx;
        match route {
            Route::Health => ops::health(ctx, &call).await,
            Route::Ready => ops::ready(ctx, &call).await,
            Route::Status => ops::status(ctx, &call).await,
            Route::Metrics => ops::metrics(ctx, &call).await,
            Route::AdminReload => ops::reload(ctx, &call).await,
            Route::AuditEvents => audit::append(ctx, &call).await,
            Route::AuditHead => audit::head(ctx, &call).await,
            Route::AuditProof => audit::proof(ctx, &call).await,
            Route::AuditConsistency => audit::consistency(ctx, &call).await,
            Route::TokensIssue => tokens::issue(ctx, &call).await,
            Route::TokensRefresh => tokens::refresh(ctx, &call).await,
            Route::TokensVerify => tokens::verify(ctx, &call).await,
            Route::TokensTask => tokens::task(ctx, &call).await,
            Route::SessionsRevoke => tokens::revoke(ctx, &call).await,
            Route::Jwks => tokens::jwks(ctx, &call).await,
            Route::AdminKeys => tokens::keys_list(ctx, &call).await,
            Route::AdminKeysRotate => tokens::keys_rotate(ctx, &call).await,
            Route::AdminKeysRollback => tokens::keys_rollback(ctx, &call).await,
            Route::AdminKeysRetire => tokens::keys_retire(ctx, &call).await,
            Route::AdminTestClock => tokens::test_clock(ctx, &call).await,
            Route::Check => check::check(ctx, &call).await,
            Route::CheckBatch => check::batch(ctx, &call).await,
            Route::Permissions => check::permissions(ctx, &call).await,
        }
    }

    /// Route, method and caller ACL: everything decided from the head alone.
    fn admit<B>(
        &self,
        req: &Request<B>,
        route: Option<Route>,
        peer: Peer,
        ops: &OpCache,
    ) -> Result<Route, ApiError> {
        let route = route
            .ok_or_else(|| ApiError::not_found(format!("no endpoint at {}", req.uri().path())))?;
        if req.method() != route.method() {
            return Err(ApiError::method_not_allowed(route.method().as_str()));
        }
        if let Some(op) = route.op() {
            if !self.allowed(peer, ops).contains(op) {
                self.ctx.caller_denied(peer, op, route.name());
                return Err(ApiError::caller_not_allowed(op.name()));
            }
        }
        Ok(route)
    }

    /// Reads and drops a body we will not use, within the usual limits, so
    /// the keep-alive connection stays usable after an early error answer.
    /// A body over the limit is left unread; hyper then closes the connection.
    async fn discard_body(&self, req: Request<Incoming>) {
        use hyper::body::Body;
        if req.body().is_end_stream() {
            return;
        }
        let config = self.server_config();
        let limit = usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX);
        let collect = Limited::new(req.into_body(), limit).collect();
        let _ = tokio::time::timeout(config.body_read_timeout, collect).await;
    }

    fn allowed(&self, peer: Peer, cache: &OpCache) -> OpSet {
        let state = self.ctx.acl();
        let generation = state.generation;
        let cached = cache.0.load(Ordering::Relaxed);
        // Generation 0 never occurs for a computed entry (generations start at 1).
        if cached >> 16 == generation {
            return OpSet::from_bits((cached & 0xffff) as u16);
        }
        let set = state.acl.allowed(&peer);
        cache.0.store(
            (generation << 16) | u64::from(set.bits()),
            Ordering::Relaxed,
        );
        set
    }

    async fn read_body(&self, req: Request<Incoming>) -> Result<Bytes, ApiError> {
        let config = self.server_config();
        let limit = config.max_body_bytes;
        let headers = req.headers();
        if let Some(len) = headers.get(CONTENT_LENGTH) {
            let declared = len
                .to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("content-length is not a number"))?;
            if declared > limit {
                return Err(ApiError::payload_too_large(limit));
            }
        }
        if let Some(ct) = headers.get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let json = ct.starts_with("application/json")
                || ct.starts_with("application/octet-stream")
                || ct.is_empty();
            if !json {
                return Err(ApiError::unsupported_media_type());
            }
        }
        let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
        let collect = Limited::new(req.into_body(), limit_usize).collect();
        match tokio::time::timeout(config.body_read_timeout, collect).await {
            Err(_) => Err(ApiError::request_timeout()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                Err(ApiError::payload_too_large(limit))
            }
            Ok(Err(e)) => Err(ApiError::bad_request(format!(
                "cannot read request body: {e}"
            ))),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }

    fn request_id<B>(&self, req: &Request<B>) -> String {
        // Honour a caller's id so one request can be traced across the ERP and
        // the agent, but only a short, log-safe one.
        if let Some(id) = req.headers().get(REQUEST_ID_HEADER) {
            if let Ok(id) = id.to_str() {
                if !id.is_empty()
                    && id.len() <= 64
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
                {
                    return id.to_string();
                }
            }
        }
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.request_prefix)
    }
}
