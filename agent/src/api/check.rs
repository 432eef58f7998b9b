//! Permission checks: `POST /v1/check`, `POST /v1/check/batch`,
//! `GET /v1/permissions`. Wire types live here; decisions are the policy
//! engine's. Each request loads the serving snapshot once, so a batch is
//! decided against one consistent version even if a reload lands mid-way.

use super::{json, ApiError, Call, Response};
use crate::agent::{Ctx, DecisionRecord};
use crate::policy::{
    CaseSubject, Decision, GrantSource, Principal, Reason, Request, ResourceSpec, Snapshot,
    Subject, Surface,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// Most checks one batch call may carry.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    subject: WireSubject,
    permission: String,
    action: String,
    surface: Surface,
    resource: Option<ResourceSpec>,
    #[serde(default)]
    explain: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    checks: Vec<CheckBody>,
}

/// One of the subject shapes of API.md. Checked for exactly-one-shape after
/// parsing so the error can say which fields clash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSubject {
    user_id: Option<String>,
    org_id: Option<String>,
    /// Directory-user subjects have no session, so no second factor unless
    /// the caller asserts one it verified (default `false`: fail closed).
    mfa: Option<bool>,
    token: Option<String>,
    task_token: Option<String>,
    /// The task a task token is presented for; required with `task_token`
    /// (a task token authorises only its own task).
    task: Option<String>,
    bot: Option<WireBot>,
    peer: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBot {
    platform: String,
    id: String,
}

/// A subject ready for the engine, or a denial decided before it (with the
/// detail `explain` shows).
enum Resolved {
    /// The subject, and the session it acts in (token subjects).
    Subject(CaseSubject, Option<String>),
    Deny(Reason, String),
}

fn resolve(
    ctx: &Ctx,
    s: WireSubject,
    surface: Surface,
    call: &Call,
    field: &str,
) -> Result<Resolved, ApiError> {
    let shapes = [
        s.user_id.is_some() || s.org_id.is_some(),
        s.token.is_some(),
        s.task_token.is_some(),
        s.bot.is_some(),
        s.peer.is_some(),
    ];
    if shapes.iter().filter(|x| **x).count() != 1 {
        return Err(ApiError::bad_request(format!(
            "field `{field}`: must be exactly one of {{user_id, org_id}}, {{token}}, {{task_token}}, {{bot}}, {{peer: true}}"
        )));
    }
    if s.mfa.is_some() && s.user_id.is_none() {
        return Err(ApiError::bad_request(format!(
            "field `{field}.mfa`: only allowed with {{user_id, org_id}}"
        )));
    }
    if s.task.is_some() != s.task_token.is_some() {
        return Err(ApiError::bad_request(format!(
            "field `{field}.task`: required with task_token, and only allowed with it"
        )));
    }
    if let (Some(user_id), org) = (s.user_id.clone(), s.org_id.clone()) {
        let org_id = org.ok_or_else(|| {
            ApiError::bad_request(format!(
                "field `{field}.org_id`: missing (required with user_id)"
            ))
        })?;
        return Ok(Resolved::Subject(
            CaseSubject::User {
                user_id,
                org_id,
                mfa: s.mfa.unwrap_or(false),
            },
            None,
        ));
    }
    if s.org_id.is_some() {
        return Err(ApiError::bad_request(format!(
            "field `{field}.user_id`: missing (required with org_id)"
        )));
    }
    if let Some(b) = s.bot {
        return Ok(Resolved::Subject(
            CaseSubject::Bot {
                platform: b.platform,
                id: b.id,
            },
            None,
        ));
    }
    if let Some(peer) = s.peer {
        if !peer {
            return Err(ApiError::bad_request(format!(
                "field `{field}.peer`: must be true"
            )));
        }
        return Ok(Resolved::Subject(
            CaseSubject::Peer {
                uid: Some(call.peer.uid),
                os_user: None,
            },
            None,
        ));
    }
    let verified = match (s.token, s.task_token, s.task) {
        (Some(token), _, _) => ctx.tokens.verify_access(&token),
        (None, Some(token), Some(task)) => {
            if surface != Surface::Task {
                return Ok(Resolved::Deny(
                    Reason::TokenInvalid,
                    format!(
                        "a task token is only valid on surface `task`, not `{}`",
                        surface.as_str()
                    ),
                ));
            }
            ctx.tokens.verify_task(&token, &task)
        }
        // Unreachable after the shape checks above; fail closed regardless.
        _ => return Ok(Resolved::Deny(Reason::TokenInvalid, "no token".into())),
    };
    Ok(match verified {
        Ok(claims) => Resolved::Subject(
            CaseSubject::Principal(Principal {
                user_id: claims.sub.clone(),
                org_id: claims.org.clone(),
                roles: claims.roles.clone(),
                mfa: claims.mfa(),
            }),
            claims.sid.clone(),
        ),
        Err(crate::tokens::Invalid::Revoked) => Resolved::Deny(
            Reason::SessionRevoked,
            "the token's session was revoked".into(),
        ),
        Err(invalid) => Resolved::Deny(
            Reason::TokenInvalid,
            format!("the token did not verify: {invalid}"),
        ),
    })
}

/// The OS user name of a uid, for CLI identities mapped by name.
fn os_user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

#[derive(Serialize)]
struct Matched<'a> {
    role: &'a str,
    permission: &'a str,
    action: &'a str,
    scope: &'a str,
    source: String,
}

#[derive(Serialize)]
struct Step {
    step: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct Answer<'a> {
    allow: bool,
    reason: &'static str,
    enforced: bool,
    decision_id: String,
    policy_version: &'a str,
    matched: Option<Matched<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Vec<Step>>,
}

/// Decision ids: a per-boot random prefix and a counter; unique, cheap, and
/// greppable with the request id in logs.
static DECISION_PREFIX: LazyLock<String> =
    LazyLock::new(|| hex::encode(crate::random::bytes::<6>().unwrap_or([0; 6])));
static DECISION_SEQ: AtomicU64 = AtomicU64::new(1);

fn decision_id() -> String {
    format!(
        "d-{}-{:x}",
        *DECISION_PREFIX,
        DECISION_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn answer<'a>(
    ctx: &Ctx,
    snap: &'a Snapshot,
    body: CheckBody,
    call: &Call,
    field: &str,
) -> Result<Answer<'a>, ApiError> {
    let subject = resolve(
        ctx,
        body.subject,
        body.surface,
        call,
        &format!("{field}subject"),
    )?;
    let (decision, trace) = match &subject {
        Resolved::Deny(reason, _) => (Decision::deny(*reason), None),
        Resolved::Subject(s, _) => {
            let mut subj = s.as_subject();
            let name;
            if let Subject::Peer { uid: Some(uid), .. } = subj {
                if !snap.knows_cli_uid(uid) {
                    name = os_user_name(uid);
                    subj = Subject::Peer {
                        uid: Some(uid),
                        os_user: name.as_deref(),
                    };
                }
            }
            let req = Request {
                subject: subj,
                permission: &body.permission,
                action: &body.action,
                surface: body.surface,
                resource: body.resource.as_ref().map(ResourceSpec::as_resource),
            };
            if body.explain {
                let (d, t) = snap.explain(&req);
                (d, Some(t))
            } else {
                (snap.decide(&req), None)
            }
        }
    };
    ctx.policy.metrics().decision(&decision);
    let matched = decision.matched.map(|m| {
        let (role, permission, org) = snap.matched_names(&m);
        Matched {
            role,
            permission,
            action: m.action.as_str(),
            scope: m.scope.as_str(),
            source: match (m.source, org) {
                (GrantSource::Org, Some(o)) => format!("org:{o}"),
                _ => "global".to_string(),
            },
        }
    });
    let explain = match (&subject, body.explain, trace) {
        (_, _, Some(t)) => Some(
            t.into_iter()
                .map(|s| Step {
                    step: s.step,
                    detail: s.detail,
                })
                .collect(),
        ),
        (Resolved::Deny(r, detail), true, None) => Some(vec![Step {
            step: "subject",
            detail: format!("{r}: {detail}"),
        }]),
        _ => None,
    };
    if !decision.enforced {
        tracing::info!(request_id = %call.request_id, permission = %body.permission, action = %body.action, reason = decision.reason.as_str(), "report-mode decision would deny");
    }
    let decision_id = decision_id();
    let asked = Asked {
        permission: &body.permission,
        action: &body.action,
        surface: body.surface,
        resource: body.resource.as_ref(),
    };
    record(
        ctx,
        call,
        &subject,
        &asked,
        &decision,
        &decision_id,
        snap.version(),
    )?;
    Ok(Answer {
        allow: decision.allow,
        reason: decision.reason.as_str(),
        enforced: decision.enforced,
        decision_id,
        policy_version: snap.version(),
        matched,
        explain,
    })
}

/// What a check asked, for its audit record.
struct Asked<'a> {
    permission: &'a str,
    action: &'a str,
    surface: Surface,
    resource: Option<&'a ResourceSpec>,
}

/// Hands the decision to the audit trail; a refusal fails the check closed.
fn record(
    ctx: &Ctx,
    call: &Call,
    subject: &Resolved,
    body: &Asked<'_>,
    decision: &Decision,
    decision_id: &str,
    policy_version: &str,
) -> Result<(), ApiError> {
    let (user, subject_org, roles, session): (_, _, &[String], _) = match subject {
        Resolved::Subject(
            CaseSubject::User {
                user_id, org_id, ..
            },
            _,
        ) => (Some(user_id.as_str()), Some(org_id.as_str()), &[], None),
        Resolved::Subject(CaseSubject::Principal(p), session) => (
            Some(p.user_id.as_str()),
            Some(p.org_id.as_str()),
            &p.roles,
            session.as_deref(),
        ),
        _ => (None, None, &[], None),
    };
    let resource = body.resource;
    let org_id = resource.and_then(|r| r.org_id.as_deref()).or(subject_org);
    ctx.record_decision(&DecisionRecord {
        peer: call.peer,
        request_id: &call.request_id,
        decision_id,
        user,
        roles,
        session,
        permission: body.permission,
        action: body.action,
        org_id,
        surface: body.surface.as_str(),
        allow: decision.allow,
        enforced: decision.enforced,
        reason: decision.reason.as_str(),
        policy_version,
        resource: resource.and_then(|r| serde_json::to_value(r).ok()),
    })
    .map_err(ApiError::from)
}

fn snapshot(ctx: &Ctx) -> Result<Arc<Snapshot>, ApiError> {
    ctx.policy
        .snapshot()
        .ok_or_else(|| ApiError::not_ready("no policy snapshot loaded; see /v1/status"))
}

pub async fn check(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let body: CheckBody = json::parse(&call.body)?;
    let snap = snapshot(ctx)?;
    Ok(json::ok(&answer(ctx, &snap, body, call, "")?))
}

pub async fn batch(ctx: &Ctx, call: &Call) -> Result<Response, ApiError> {
    let body: BatchBody = json::parse(&call.body)?;
    if body.checks.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "field `checks`: at most {MAX_BATCH} checks per call, got {}",
            body.checks.len()
        )));
    }
    let snap = snapshot(ctx)?;
    let mut results = Vec::with_capacity(body.checks.len());
    for (i, c) in body.checks.into_iter().enumerate() {
        results.push(answer(ctx, &snap, c, call, &format!("checks[{i}]."))?);
    }
    Ok(json::ok(&json!({"results": results})))
}

pub async fn permissions(ctx: &Ctx, _call: &Call) -> Result<Response, ApiError> {
    let snap = snapshot(ctx)?;
    let permissions: Vec<_> = snap
        .permissions()
        .map(|p| {
            json!({
                "name": p.name,
                "module": p.module,
                "description": p.description,
                "actions": p.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "surfaces": p.surfaces.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "mfa": p.mfa.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "mode": p.mode.as_str(),
            })
        })
        .collect();
    let modules: Vec<_> = snap
        .modules()
        .map(|(n, d)| json!({"name": n, "description": d}))
        .collect();
    let roles: Vec<_> = snap
        .roles()
        .map(|(n, d, org)| json!({"name": n, "description": d, "org": org}))
        .collect();
    Ok(json::ok(&json!({
        "policy_version": snap.version(),
        "modules": modules,
        "permissions": permissions,
        "roles": roles,
    })))
}
