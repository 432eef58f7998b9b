//! Health, readiness, status, metrics and reload: the operator's endpoints.

use super::{json, ApiError, Call, Response};
use crate::agent::Ctx;
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::json;

pub async fn health(_ctx: &Ctx, _call: &Call) -> Result<Response, ApiError> {
    Ok(json::ok(&json!({"status": "ok"})))
}

pub async fn ready(ctx: &Ctx, _call: &Call) -> Result<Response, ApiError> {
    match ctx.not_ready_reason() {
        None => Ok(json::ok(&json!({"ready": true}))),
        Some(why) => Err(ApiError::not_ready(why)),
    }
}

pub async fn status(ctx: &Ctx, _call: &Call) -> Result<Response, ApiError> {
    Ok(json::ok(&ctx.status()))
}

pub async fn metrics(ctx: &Ctx, _call: &Call) -> Result<Response, ApiError> {
    let text = ctx.metrics.render().map_err(ApiError::internal)?;
    Ok(json::with_type(
        StatusCode::OK,
        Bytes::from(text),
        "text/plain; version=0.0.4; charset=utf-8",
    ))
}

pub async fn reload(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    // The body is optional; if present it must be a JSON object with no
    // fields we do not know, so typos are not silently ignored.
    if !call.body.is_empty() {
        let _: ReloadRequest = json::parse(&call.body)?;
    }
    Ok(json::ok(&ctx.reload("api").await))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {}
