//! Policy test cases (`warden policy test DIR`), in the spirit of `opa test`
//! and Cerbos policy tests: the registry ships with the decisions it must
//! make, so a registry edit that changes an expected answer fails CI.
//!
//! A case file is TOML with `[[case]]` entries; see `docs/policy.md`.

use super::compile::Snapshot;
use super::decide::{Principal, Reason, Request, Resource, Subject};
use super::error::{Error, Problem};
use super::model::{SourceFile, Surface};
use serde::Deserialize;
use toml1::Spanned;

/// An owned subject (from a case file or a request body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseSubject {
    User {
        user_id: String,
        org_id: String,
        mfa: bool,
    },
    Bot {
        platform: String,
        id: String,
    },
    Peer {
        uid: Option<u32>,
        os_user: Option<String>,
    },
    Principal(Principal),
}

impl CaseSubject {
    pub fn as_subject(&self) -> Subject<'_> {
        match self {
            CaseSubject::User {
                user_id,
                org_id,
                mfa,
            } => Subject::User {
                user_id,
                org_id,
                mfa: *mfa,
            },
            CaseSubject::Bot { platform, id } => Subject::Bot { platform, id },
            CaseSubject::Peer { uid, os_user } => Subject::Peer {
                uid: *uid,
                os_user: os_user.as_deref(),
            },
            CaseSubject::Principal(p) => Subject::Principal(p),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    case: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Spanned<String>,
    subject: RawSubject,
    permission: String,
    action: String,
    #[serde(default = "default_surface")]
    surface: Surface,
    resource: Option<ResourceSpec>,
    allow: bool,
    reason: Option<String>,
    enforced: Option<bool>,
}

fn default_surface() -> Surface {
    Surface::Http
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubject {
    user_id: Option<String>,
    org_id: Option<String>,
    mfa: Option<bool>,
    roles: Option<Vec<String>>,
    bot: Option<RawBot>,
    peer: Option<RawPeer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    platform: String,
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    uid: Option<u32>,
    os_user: Option<String>,
}

/// The resource part of a case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    pub org_id: Option<String>,
    pub owner_id: Option<String>,
    pub assignee_id: Option<String>,
    pub region: Option<String>,
}

impl ResourceSpec {
    pub fn as_resource(&self) -> Resource<'_> {
        Resource {
            org_id: self.org_id.as_deref(),
            owner_id: self.owner_id.as_deref(),
            assignee_id: self.assignee_id.as_deref(),
            region: self.region.as_deref(),
        }
    }
}

/// One expected decision.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub subject: CaseSubject,
    pub permission: String,
    pub action: String,
    pub surface: Surface,
    pub resource: Option<ResourceSpec>,
    pub allow: bool,
    pub reason: Option<Reason>,
    pub enforced: Option<bool>,
}

impl Case {
    pub fn request(&self) -> Request<'_> {
        Request {
            subject: self.subject.as_subject(),
            permission: &self.permission,
            action: &self.action,
            surface: self.surface,
            resource: self.resource.as_ref().map(ResourceSpec::as_resource),
        }
    }
}

fn subject(raw: RawSubject) -> Result<CaseSubject, String> {
    match raw {
        RawSubject {
            bot: Some(b),
            peer: None,
            user_id: None,
            org_id: None,
            mfa: None,
            roles: None,
        } => Ok(CaseSubject::Bot {
            platform: b.platform,
            id: b.id,
        }),
        RawSubject {
            peer: Some(p),
            bot: None,
            user_id: None,
            org_id: None,
            mfa: None,
            roles: None,
        } => {
            if p.uid.is_none() && p.os_user.is_none() {
                return Err("subject.peer needs `uid` or `os_user`".into());
            }
            Ok(CaseSubject::Peer {
                uid: p.uid,
                os_user: p.os_user,
            })
        }
        RawSubject {
            user_id: Some(user_id),
            org_id: Some(org_id),
            bot: None,
            peer: None,
            mfa,
            roles,
        } => Ok(match roles {
            Some(roles) => CaseSubject::Principal(Principal {
                user_id,
                org_id,
                roles,
                mfa: mfa.unwrap_or(false),
            }),
            None => CaseSubject::User {
                user_id,
                org_id,
                mfa: mfa.unwrap_or(false),
            },
        }),
        _ => Err("subject must be exactly one of {user_id, org_id[, mfa][, roles]}, {bot = {platform, id}} or {peer = {uid | os_user}}".into()),
    }
}

/// Parses case files (all problems at once).
pub fn parse_cases(files: &[SourceFile]) -> Result<Vec<Case>, Error> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for f in files {
        let line = |off: usize| f.text[..off.min(f.text.len())].matches('\n').count() + 1;
        let raw: RawFile = match toml1::from_str(&f.text) {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem {
                    file: f.name.clone(),
                    line: e.span().map_or(0, |s| line(s.start)),
                    message: e.message().trim().to_string(),
                });
                continue;
            }
        };
        for c in raw.case {
            let at = line(c.name.span().start);
            let mut bad = |message: String| {
                problems.push(Problem {
                    file: f.name.clone(),
                    line: at,
                    message,
                })
            };
            let reason = match c.reason.as_deref().map(|r| (r, Reason::parse(r))) {
                Some((r, None)) => {
                    bad(format!("unknown reason `{r}`"));
                    continue;
                }
                Some((_, Some(r))) => Some(r),
                None => None,
            };
            let subject = match subject(c.subject) {
                Ok(s) => s,
                Err(e) => {
                    bad(e);
                    continue;
                }
            };
            out.push(Case {
                name: c.name.into_inner(),
                file: f.name.clone(),
                line: at,
                subject,
                permission: c.permission,
                action: c.action,
                surface: c.surface,
                resource: c.resource,
                allow: c.allow,
                reason,
                enforced: c.enforced,
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Cases(problems))
    }
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub passed: bool,
    /// What the engine said, e.g. `deny (no_grant)`.
    pub got: String,
    pub expected: String,
}

/// All case results.
#[derive(Debug, Clone, Default)]
pub struct CaseReport {
    pub outcomes: Vec<CaseOutcome>,
}

impl CaseReport {
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }
}

fn describe(allow: bool, reason: Option<Reason>, enforced: Option<bool>) -> String {
    let mut s = if allow { "allow" } else { "deny" }.to_string();
    if let Some(r) = reason {
        s.push_str(&format!(" ({r})"));
    }
    if enforced == Some(false) {
        s.push_str(" [report mode]");
    }
    s
}

/// Runs every case against `snapshot`.
pub fn run_cases(snapshot: &Snapshot, cases: &[Case]) -> CaseReport {
    let outcomes = cases
        .iter()
        .map(|c| {
            let d = snapshot.decide(&c.request());
            let passed = d.allow == c.allow
                && c.reason.is_none_or(|r| r == d.reason)
                && c.enforced.is_none_or(|e| e == d.enforced);
            CaseOutcome {
                name: c.name.clone(),
                file: c.file.clone(),
                line: c.line,
                passed,
                got: describe(d.allow, Some(d.reason), Some(d.enforced)),
                expected: describe(c.allow, c.reason, c.enforced),
            }
        })
        .collect();
    CaseReport { outcomes }
}
