//! `POST /v1/audit/events`, `GET /v1/audit/head`, the Merkle proofs
//! (`/v1/audit/proof`, `/v1/audit/consistency`), and the audit part of
//! `/v1/status`. Wire types live here, separate from `audit::Event`, so the
//! contract in API.md can stay stable while the record evolves.

use super::{json, ApiError, Call, Response};
use crate::agent::Ctx;
use crate::audit;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Most events in one request (like `/v1/check/batch`).
const MAX_EVENTS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendRequest {
    events: Vec<WireEvent>,
}

/// An ERP business event as the API accepts it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent {
    kind: String,
    /// The ERP user who acted.
    actor: String,
    org_id: String,
    permission: Option<String>,
    action: Option<String>,
    target: Option<String>,
    outcome: String,
    reason: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    session_id: Option<String>,
    /// Key id of a signature that proves the act, if any.
    kid: Option<String>,
    #[serde(default)]
    attrs: BTreeMap<String, Value>,
}

pub async fn append(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let req: AppendRequest = json::parse(&call.body)?;
    if req.events.is_empty() {
        return Err(ApiError::bad_request("field `events`: must not be empty"));
    }
    if req.events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "field `events`: at most {MAX_EVENTS} events per request, got {}",
            req.events.len()
        )));
    }
    let mut events = Vec::with_capacity(req.events.len());
    for (i, e) in req.events.into_iter().enumerate() {
        audit::check_external_kind(&e.kind).map_err(|err| at(i, err))?;
        if e.actor.is_empty() {
            return Err(ApiError::bad_request(format!(
                "field `events[{i}].actor`: must not be empty"
            )));
        }
        events.push(audit::Event {
            kind: e.kind,
            identity: audit::Identity {
                user: Some(e.actor),
                roles: e.roles,
                session: e.session_id,
                // The kernel's word for who called, not the caller's.
                uid: Some(call.peer.uid),
                pid: call.peer.pid.and_then(|p| u32::try_from(p).ok()),
            },
            permission: e.permission,
            action: e.action,
            org_id: Some(e.org_id),
            kid: e.kid,
            target: e.target,
            outcome: e.outcome,
            reason: e.reason,
            attrs: e.attrs,
            ts_ms: None,
        });
    }
    let (first_seq, last_seq) = ctx.audit.append(events).await?;
    Ok(json::ok(
        &json!({"first_seq": first_seq, "last_seq": last_seq}),
    ))
}

fn at(i: usize, err: audit::Error) -> ApiError {
    match err {
        audit::Error::InvalidEvent { field, reason } => {
            ApiError::bad_request(format!("field `events[{i}].{field}`: {reason}"))
        }
        other => other.into(),
    }
}

pub async fn head(ctx: &Ctx, _call: &Call) -> Result<Response, ApiError> {
    let st = ctx.audit.status();
    Ok(json::ok(&json!({
        "host": st.host,
        "seq": st.head_seq,
        "hash": st.head_hash,
        "unshipped_count": st.unshipped_records,
        "checkpoint": st.checkpoint.as_ref().map(checkpoint_json),
    })))
}

/// `GET /v1/audit/proof?seq=N`: the inclusion proof of record N against
/// the latest signed checkpoint.
pub async fn proof(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let seq = query_u64s(call.query.as_deref(), &["seq"])?[0];
    let proof = ctx
        .store
        .run(move |s| Ok(audit::inclusion(s, seq)))
        .await??;
    let record: Value = serde_json::from_str(&proof.record).map_err(ApiError::internal)?;
    Ok(json::ok(&json!({
        "seq": proof.seq,
        "leaf_index": proof.seq - 1,
        "tree_size": proof.tree_size,
        "leaf_hash": hex::encode(proof.leaf_hash),
        "path": proof.path.iter().map(hex::encode).collect::<Vec<_>>(),
        "record": record,
        "record_canonical": proof.record,
        "checkpoint": checkpoint_json(&proof.checkpoint),
    })))
}

/// `GET /v1/audit/consistency?from=M&to=N`: proof that the log signed at
/// checkpoint N extends the one signed at checkpoint M.
pub async fn consistency(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let v = query_u64s(call.query.as_deref(), &["from", "to"])?;
    let (from, to) = (v[0], v[1]);
    let proof = ctx
        .store
        .run(move |s| Ok(audit::consistency(s, from, to)))
        .await??;
    Ok(json::ok(&json!({
        "from": checkpoint_json(&proof.from),
        "to": checkpoint_json(&proof.to),
        "path": proof.path.iter().map(hex::encode).collect::<Vec<_>>(),
    })))
}

/// Parses a query of exactly the named positive integers, in that order.
fn query_u64s(query: Option<&str>, names: &[&str]) -> Result<Vec<u64>, ApiError> {
    let mut values: Vec<Option<u64>> = vec![None; names.len()];
    let expected = names
        .iter()
        .map(|n| format!("{n}=N"))
        .collect::<Vec<_>>()
        .join("&");
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(i) = names.iter().position(|n| *n == key) else {
            return Err(ApiError::bad_request(format!(
                "query: unknown parameter {key:?} (expected {expected})"
            )));
        };
        let n = value
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query `{key}`: {value:?} is not a record number >= 1"
                ))
            })?;
        values[i] = Some(n);
    }
    names
        .iter()
        .zip(values)
        .map(|(name, v)| {
            v.ok_or_else(|| {
                ApiError::bad_request(format!("query `{name}`: required (expected {expected})"))
            })
        })
        .collect()
}

fn checkpoint_json(cp: &crate::store::audit::CheckpointRow) -> Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    json!({
        "seq": cp.seq,
        "hash": hex::encode(&cp.head_hash),
        "merkle_root": hex::encode(&cp.merkle_root),
        "signed_at": crate::clock::rfc3339(cp.signed_at_ms),
        "signed_at_ms": cp.signed_at_ms,
        "kid": cp.kid,
        "alg": "EdDSA",
        "public_key": b64.encode(&cp.public_key),
        "signature": b64.encode(&cp.signature),
    })
}

/// The `audit` section of `/v1/status`.
pub fn status_json(st: &audit::Status) -> Value {
    json!({
        "host": st.host,
        "head_seq": st.head_seq,
        "head_hash": st.head_hash,
        "unshipped_count": st.unshipped_records,
        "unshipped_bytes": st.unshipped_bytes,
        "oldest_unshipped_age_seconds": st.oldest_unshipped_age_seconds,
        "shipped_seq": st.shipped_seq,
        "queued": st.queued_records,
        "sink": st.sink,
        "backpressure": {"policy": st.policy, "over_cap": st.over_cap},
        "writer_healthy": st.writer_healthy,
        "checkpoint": st.checkpoint.as_ref().map(|cp| json!({
            "seq": cp.seq,
            "signed_at": crate::clock::rfc3339(cp.signed_at_ms),
            "kid": cp.kid,
        })),
    })
}
