//! Tokens, sessions, the JWKS and key administration over the socket.
//!
//! Issue, refresh, revoke and key changes write the store, so they run on the
//! blocking pool; verification and task tokens are in-memory and run inline.

use super::{json, ApiError, Call, Response};
use crate::agent::Ctx;
use crate::keys::{Algorithm, KeyInfo, Purpose};
use crate::tokens::{Claims, IssueRequest, Issued, TaskSubject};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Runs store-touching work off the async workers.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    user_id: String,
    org_id: String,
    amr: Vec<String>,
    #[serde(default)]
    device_id: Option<String>,
}

#[derive(Serialize)]
struct IssuedBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: &'a str,
    refresh_expires_in: i64,
    session_id: &'a str,
}

fn issued(i: &Issued) -> Response {
    json::ok(&IssuedBody {
        access_token: &i.access_token,
        token_type: "Bearer",
        expires_in: i.expires_in,
        refresh_token: i.refresh_token.expose(),
        refresh_expires_in: i.refresh_expires_in,
        session_id: &i.session_id,
    })
}

pub async fn issue(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let b: IssueBody = json::parse(&call.body)?;
    let req = IssueRequest {
        user_id: b.user_id,
        org_id: b.org_id,
        amr: b.amr,
        device_id: b.device_id,
    };
    let tokens = ctx.tokens.clone();
    let out = blocking(move || tokens.issue(&req).map_err(ApiError::from)).await?;
    Ok(issued(&out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

pub async fn refresh(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let b: RefreshBody = json::parse(&call.body)?;
    let tokens = ctx.tokens.clone();
    let out = blocking(move || tokens.refresh(&b.refresh_token).map_err(ApiError::from)).await?;
    Ok(issued(&out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    token: String,
    #[serde(default)]
    audience: Option<String>,
}

#[derive(Serialize)]
struct Valid<'a> {
    valid: bool,
    claims: &'a Claims,
}

pub async fn verify(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let b: VerifyBody = json::parse(&call.body)?;
    Ok(match ctx.tokens.verify(&b.token, b.audience.as_deref()) {
        Ok(claims) => json::ok(&Valid {
            valid: true,
            claims: &claims,
        }),
        Err(reason) => json::ok(&json!({"valid": false, "reason": reason.code()})),
    })
}

/// `subject` as in `/v1/check`: a user in an org, or an access token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectBody {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskBody {
    task: String,
    subject: SubjectBody,
}

pub async fn task(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let b: TaskBody = json::parse(&call.body)?;
    let subject = match b.subject {
        SubjectBody {
            user_id: Some(user_id),
            org_id: Some(org_id),
            token: None,
        } => TaskSubject::User { user_id, org_id },
        SubjectBody {
            user_id: None,
            org_id: None,
            token: Some(token),
        } => TaskSubject::Token(token),
        _ => {
            return Err(ApiError::bad_request(
                "field `subject`: give either `user_id` and `org_id`, or `token`",
            ))
        }
    };
    let t = ctx.tokens.issue_task(&b.task, &subject)?;
    Ok(json::ok(
        &json!({"task_token": t.token, "expires_in": t.expires_in}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    reason: String,
}

pub async fn revoke(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let b: RevokeBody = json::parse(&call.body)?;
    let tokens = ctx.tokens.clone();
    let n = match (b.user_id, b.session_id) {
        (Some(user), None) => {
            blocking(move || tokens.revoke_user(&user, &b.reason).map_err(ApiError::from)).await?
        }
        (None, Some(sid)) => {
            blocking(move || {
                tokens
                    .revoke_session(&sid, &b.reason)
                    .map_err(ApiError::from)
            })
            .await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `user_id` or `session_id`",
            ))
        }
    };
    Ok(json::ok(&json!({"revoked": n})))
}

pub async fn jwks(ctx: &Ctx, _call: &Call) -> Result<Response, ApiError> {
    Ok(json::ok(&ctx.tokens.jwks()))
}

fn key_json(k: &KeyInfo) -> serde_json::Value {
    let ts = |ms: Option<i64>| ms.map(crate::clock::rfc3339);
    json!({
        "kid": k.kid,
        "purpose": k.purpose,
        "alg": k.alg,
        "state": k.state,
        "created_at": crate::clock::rfc3339(k.created_at_ms),
        "activate_at": ts(k.activate_at_ms),
        "activated_at": ts(k.activated_at_ms),
        "retire_at": ts(k.retire_at_ms),
        "retired_at": ts(k.retired_at_ms),
        "age_days": k.age_days,
        "rotation_due": k.rotation_due,
    })
}

pub async fn keys_list(ctx: &Ctx, _call: &Call) -> Result<Response, ApiError> {
    let keys: Vec<_> = ctx.keys.list().iter().map(key_json).collect();
    Ok(json::ok(&json!({"keys": keys})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    purpose: String,
    #[serde(default)]
    alg: Option<String>,
}

pub async fn keys_rotate(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let b: RotateBody = json::parse(&call.body)?;
    let purpose = Purpose::parse(&b.purpose)?;
    let alg = b.alg.as_deref().map(Algorithm::parse).transpose()?;
    let keys = ctx.keys.clone();
    let info = blocking(move || keys.rotate(&purpose, alg).map_err(ApiError::from)).await?;
    Ok(json::ok(&json!({"key": key_json(&info)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    purpose: String,
}

pub async fn keys_rollback(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let b: RollbackBody = json::parse(&call.body)?;
    let purpose = Purpose::parse(&b.purpose)?;
    let keys = ctx.keys.clone();
    let info = blocking(move || keys.rollback(&purpose).map_err(ApiError::from)).await?;
    Ok(json::ok(&json!({"key": key_json(&info)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetireBody {
    kid: String,
}

pub async fn keys_retire(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let b: RetireBody = json::parse(&call.body)?;
    let keys = ctx.keys.clone();
    let info = blocking(move || keys.retire(&b.kid).map_err(ApiError::from)).await?;
    Ok(json::ok(&json!({"key": key_json(&info)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestClockBody {
    /// A human duration such as `"16m"` or `"90d"`.
    advance: String,
}

/// Moves the test clock forward. Answers 404 (as if the route did not exist)
/// unless the agent runs on the test clock.
pub async fn test_clock(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let Some(clock) = &ctx.test_clock else {
        return Err(ApiError::not_found("no endpoint at /v1/admin/test/clock"));
    };
    let b: TestClockBody = json::parse(&call.body)?;
    let d = humantime::parse_duration(&b.advance)
        .map_err(|e| ApiError::bad_request(format!("field `advance`: {e}")))?;
    let ms = i64::try_from(d.as_millis())
        .map_err(|_| ApiError::bad_request("field `advance`: too long"))?;
    clock.advance_ms(ms);
    use crate::clock::Clock as _;
    Ok(json::ok(
        &json!({"now": crate::clock::rfc3339(clock.now_ms())}),
    ))
}
