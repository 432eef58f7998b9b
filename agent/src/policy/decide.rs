//! Decisions.
//!
//! Order of evaluation (the first failing step names the reason):
//! 1. permission exists (`unknown_permission`), action is one of its actions
//!    (`unknown_action`);
//! 2. the subject resolves to a user in an org (`unknown_subject`);
//! 3. the resource, when it names an org, is in the subject's org
//!    (`cross_org`; checked before anything report mode may soften);
//! 4. the surface is one the permission allows (`surface_denied`);
//! 5. some role of the subject in that org grants the action (`no_grant`) with
//!    a scope the resource satisfies (`out_of_region` / `not_owner`);
//! 6. an action that needs MFA step-up has a second factor (`mfa_required`).
//!
//! Report mode (per permission, overridable per org) softens steps 4, 5 and 6
//! only: the answer allows with `enforced: false` and the would-be reason.
//! Unknown names, unresolvable subjects and org boundaries are always
//! enforced, because report mode exists to tolerate wrong *grants*, not
//! unknown identities or one tenant reading another's data.
//!
//! The fast path allocates nothing: names are looked up by `&str`, role sets
//! are slices of interned ids, and the explain trace is a generic parameter
//! that compiles away when not asked for.

use super::compile::{GrantSource, Snapshot};
use super::model::{Action, Mode, Scope, Surface};

/// Why a decision came out as it did. Wire names per the API contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Granted,
    UnknownPermission,
    UnknownAction,
    UnknownSubject,
    NoGrant,
    CrossOrg,
    NotOwner,
    OutOfRegion,
    SurfaceDenied,
    MfaRequired,
    /// Produced by the tokens layer (revoked session); never by the engine.
    SessionRevoked,
    /// Produced by the tokens layer (bad token); never by the engine.
    TokenInvalid,
}

impl Reason {
    pub const ALL: &'static [Reason] = &[
        Reason::Granted,
        Reason::UnknownPermission,
        Reason::UnknownAction,
        Reason::UnknownSubject,
        Reason::NoGrant,
        Reason::CrossOrg,
        Reason::NotOwner,
        Reason::OutOfRegion,
        Reason::SurfaceDenied,
        Reason::MfaRequired,
        Reason::SessionRevoked,
        Reason::TokenInvalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Granted => "granted",
            Reason::UnknownPermission => "unknown_permission",
            Reason::UnknownAction => "unknown_action",
            Reason::UnknownSubject => "unknown_subject",
            Reason::NoGrant => "no_grant",
            Reason::CrossOrg => "cross_org",
            Reason::NotOwner => "not_owner",
            Reason::OutOfRegion => "out_of_region",
            Reason::SurfaceDenied => "surface_denied",
            Reason::MfaRequired => "mfa_required",
            Reason::SessionRevoked => "session_revoked",
            Reason::TokenInvalid => "token_invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An identity already authenticated elsewhere (a verified access token).
/// Roles come from the token, not the directory: the token is the session's
/// view, and role changes revoke sessions (see [`super::changed_users`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub org_id: String,
    pub roles: Vec<String>,
    /// The session has a second factor (`amr` contains `otp`/`mfa`/...).
    pub mfa: bool,
}

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A directory user acting in one of their orgs. There is no session
    /// here, so `mfa` is whatever the caller asserts (the API defaults it to
    /// `false`: fail closed on MFA-gated actions).
    User {
        user_id: &'a str,
        org_id: &'a str,
        mfa: bool,
    },
    /// A linked chat-bot account. Bots never carry a second factor.
    Bot { platform: &'a str, id: &'a str },
    /// The calling OS user (CLI): uid is tried first, then the name.
    Peer {
        uid: Option<u32>,
        os_user: Option<&'a str>,
    },
    /// A verified token's principal.
    Principal(&'a Principal),
}

/// The data touched. Every field is optional; scoped grants need the
/// fields they test (a `region` grant needs `region`, `own` needs `owner_id`,
/// `assigned` needs `assignee_id`), and are not satisfied without them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resource<'a> {
    pub org_id: Option<&'a str>,
    pub owner_id: Option<&'a str>,
    pub assignee_id: Option<&'a str>,
    pub region: Option<&'a str>,
}

/// One check.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub subject: Subject<'a>,
    pub permission: &'a str,
    pub action: &'a str,
    pub surface: Surface,
    pub resource: Option<Resource<'a>>,
}

/// The grant that decided (or came closest), by interned ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    pub(crate) role: u32,
    pub(crate) perm: u32,
    pub action: Action,
    pub scope: Scope,
    pub source: GrantSource,
    pub(crate) org: u32,
}

/// The answer. `allow` is what the caller must do; `reason` is what the
/// policy says (they differ only when `enforced` is false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    pub reason: Reason,
    pub enforced: bool,
    pub matched: Option<Matched>,
}

impl Decision {
    /// A denial produced outside the engine (e.g. by the tokens layer).
    pub fn deny(reason: Reason) -> Decision {
        Decision {
            allow: false,
            reason,
            enforced: true,
            matched: None,
        }
    }
}

/// One line of an explain trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    pub step: &'static str,
    pub detail: String,
}

trait Trace {
    fn step(&mut self, step: &'static str, detail: impl FnOnce() -> String);
}

struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn step(&mut self, _: &'static str, _: impl FnOnce() -> String) {}
}

impl Trace for Vec<TraceStep> {
    fn step(&mut self, step: &'static str, detail: impl FnOnce() -> String) {
        self.push(TraceStep {
            step,
            detail: detail(),
        });
    }
}

/// The subject's role set, without copying it.
#[derive(Clone, Copy)]
enum Roles<'a> {
    Ids(&'a [u32]),
    Names(&'a [String]),
}

struct Who<'a> {
    user_id: &'a str,
    org: u32,
    roles: Roles<'a>,
    region: Option<&'a str>,
    mfa: bool,
}

const SCOPE_ORDER: [Scope; 4] = [Scope::Org, Scope::Region, Scope::Assigned, Scope::Own];

impl Snapshot {
    /// Decides one request. Allocates nothing and takes no lock.
    #[inline]
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        self.eval(req, &mut NoTrace)
    }

    /// Decides and returns the evaluation trace (`"explain": true`).
    pub fn explain(&self, req: &Request<'_>) -> (Decision, Vec<TraceStep>) {
        let mut trace = Vec::new();
        let d = self.eval(req, &mut trace);
        trace.push(TraceStep {
            step: "result",
            detail: format!(
                "{} ({}){}",
                if d.allow { "allow" } else { "deny" },
                d.reason,
                if d.enforced {
                    ""
                } else {
                    ", report mode: not enforced"
                }
            ),
        });
        (d, trace)
    }

    /// Decides many requests, in order.
    pub fn decide_batch(&self, reqs: &[Request<'_>]) -> Vec<Decision> {
        reqs.iter().map(|r| self.decide(r)).collect()
    }

    /// Names of a matched grant: (role, permission, org id for org grants).
    pub fn matched_names(&self, m: &Matched) -> (&str, &str, Option<&str>) {
        let role = self.roles.get(m.role as usize).map_or("", |r| &*r.name);
        let perm = self.perms.get(m.perm as usize).map_or("", |p| &*p.name);
        let org = match m.source {
            GrantSource::Org => self.orgs.get(m.org as usize).map(|o| &*o.id),
            GrantSource::Global => None,
        };
        (role, perm, org)
    }

    fn resolve<'a>(&'a self, subject: &Subject<'a>) -> Option<Who<'a>> {
        match *subject {
            Subject::User {
                user_id,
                org_id,
                mfa,
            } => {
                let slot = *self.user_ix.get(user_id)?;
                let o = *self.org_ix.get(org_id)?;
                let m = self.slot_ms(slot).iter().find(|m| m.org == o)?;
                Some(Who {
                    user_id,
                    org: o,
                    roles: Roles::Ids(&m.roles),
                    region: self.region_name(m.region),
                    mfa,
                })
            }
            Subject::Bot { platform, id } => {
                let l = *self.bots.get(platform)?.get(id)?;
                self.linked(l, false)
            }
            Subject::Peer { uid, os_user } => {
                let l = uid
                    .and_then(|u| self.cli_uids.get(&u))
                    .or_else(|| os_user.and_then(|n| self.cli_names.get(n)))?;
                self.linked(*l, false)
            }
            Subject::Principal(p) => {
                let o = *self.org_ix.get(p.org_id.as_str())?;
                // The directory may not know a token's user (e.g. a service
                // identity minted elsewhere); it then simply has no region.
                let region = self
                    .user_ix
                    .get(p.user_id.as_str())
                    .and_then(|&slot| self.slot_ms(slot).iter().find(|m| m.org == o))
                    .and_then(|m| self.region_name(m.region));
                Some(Who {
                    user_id: &p.user_id,
                    org: o,
                    roles: Roles::Names(&p.roles),
                    region,
                    mfa: p.mfa,
                })
            }
        }
    }

    fn linked(&self, l: super::compile::Link, mfa: bool) -> Option<Who<'_>> {
        let u = self.users.get(l.user as usize)?;
        let m = self.user_ms(l.user).get(l.membership as usize)?;
        Some(Who {
            user_id: u.id.as_str(),
            org: m.org,
            roles: Roles::Ids(&m.roles),
            region: self.region_name(m.region),
            mfa,
        })
    }

    fn role_name(&self, r: u32) -> &str {
        self.roles.get(r as usize).map_or("?", |r| &*r.name)
    }

    fn eval<T: Trace>(&self, req: &Request<'_>, t: &mut T) -> Decision {
        let deny = |reason| Decision::deny(reason);
        let Some(&p) = self.perm_ix.get(req.permission) else {
            t.step("permission", || {
                format!("`{}` is not in the registry", req.permission)
            });
            return deny(Reason::UnknownPermission);
        };
        let perm = &self.perms[p as usize];
        let action = match Action::parse(req.action) {
            Some(a) if perm.actions & a.bit() != 0 => a,
            _ => {
                t.step("action", || {
                    format!("`{}` is not an action of `{}`", req.action, req.permission)
                });
                return deny(Reason::UnknownAction);
            }
        };
        t.step("permission", || {
            format!(
                "`{}` action `{}` (mfa for this action: {})",
                perm.name,
                action,
                perm.mfa & action.bit() != 0
            )
        });
        let Some(who) = self.resolve(&req.subject) else {
            t.step("subject", || {
                format!(
                    "{:?} does not resolve to a user in a known org",
                    req.subject
                )
            });
            return deny(Reason::UnknownSubject);
        };
        t.step("subject", || {
            let roles: Vec<String> = match who.roles {
                Roles::Ids(ids) => ids.iter().map(|&r| self.role_name(r).to_string()).collect(),
                Roles::Names(n) => n.to_vec(),
            };
            format!(
                "user `{}` in org `{}`, roles [{}], region {}, mfa {}",
                who.user_id,
                self.orgs[who.org as usize].id,
                roles.join(", "),
                who.region.unwrap_or("-"),
                who.mfa
            )
        });
        let mode = self.mode(who.org, p);
        t.step("mode", || {
            format!("{} in org `{}`", mode, self.orgs[who.org as usize].id)
        });
        let verdict = |reason: Reason, matched: Option<Matched>| {
            let allow = reason == Reason::Granted;
            match mode {
                Mode::Report if !allow => Decision {
                    allow: true,
                    reason,
                    enforced: false,
                    matched,
                },
                _ => Decision {
                    allow,
                    reason,
                    enforced: true,
                    matched,
                },
            }
        };
        let res = req.resource.unwrap_or_default();
        if let Some(org) = res.org_id {
            if org != &*self.orgs[who.org as usize].id {
                t.step("org", || {
                    format!("resource org `{org}` is not the subject's org")
                });
                return deny(Reason::CrossOrg);
            }
        }
        if perm.surfaces & req.surface.bit() == 0 {
            t.step("surface", || {
                format!("`{}` is not allowed for this permission", req.surface)
            });
            return verdict(Reason::SurfaceDenied, None);
        }
        // Best satisfied grant (broadest scope first) and best unsatisfied one.
        let mut best: Option<(usize, Matched)> = None;
        let mut near: Option<(usize, Matched)> = None;
        let mut consider = |t: &mut T, r: u32| {
            let (cell, source) = self.cell(who.org, r, p);
            let scopes = cell[action.index()];
            t.step("grant", || {
                if scopes == 0 {
                    format!("role `{}`: no grant of `{action}`", self.role_name(r))
                } else {
                    let names: Vec<&str> = SCOPE_ORDER
                        .iter()
                        .filter(|s| scopes & s.bit() != 0)
                        .map(|s| s.as_str())
                        .collect();
                    format!(
                        "role `{}`: `{action}` with scope {} ({})",
                        self.role_name(r),
                        names.join("|"),
                        match source {
                            GrantSource::Global => "global",
                            GrantSource::Org => "org override",
                        }
                    )
                }
            });
            for (rank, scope) in SCOPE_ORDER.iter().copied().enumerate() {
                if scopes & scope.bit() == 0 {
                    continue;
                }
                let m = Matched {
                    role: r,
                    perm: p,
                    action,
                    scope,
                    source,
                    org: who.org,
                };
                let ok = match scope {
                    Scope::Org => true,
                    Scope::Region => who.region.is_some() && res.region == who.region,
                    Scope::Assigned => res.assignee_id == Some(who.user_id),
                    Scope::Own => res.owner_id == Some(who.user_id),
                };
                let slot = if ok { &mut best } else { &mut near };
                if slot.is_none_or(|(b, _)| rank < b) {
                    *slot = Some((rank, m));
                }
            }
        };
        match who.roles {
            Roles::Ids(ids) => ids.iter().for_each(|&r| consider(t, r)),
            Roles::Names(names) => {
                for n in names {
                    match self.role_in(who.org, n) {
                        Some(r) => consider(t, r),
                        None => t.step("grant", || {
                            format!("role `{n}` is unknown in this org; ignored")
                        }),
                    }
                }
            }
        }
        let matched = match (best, near) {
            (Some((_, m)), _) => m,
            (None, Some((_, m))) => {
                let reason = if m.scope == Scope::Region {
                    Reason::OutOfRegion
                } else {
                    Reason::NotOwner
                };
                t.step("scope", || {
                    format!("resource does not satisfy scope `{}`", m.scope)
                });
                return verdict(reason, Some(m));
            }
            (None, None) => return verdict(Reason::NoGrant, None),
        };
        if perm.mfa & action.bit() != 0 && !who.mfa {
            t.step("mfa", || {
                "action needs MFA step-up and the subject has no second factor".into()
            });
            return verdict(Reason::MfaRequired, Some(matched));
        }
        verdict(Reason::Granted, Some(matched))
    }
}
