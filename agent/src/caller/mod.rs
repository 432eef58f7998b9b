//! Who is calling, and what they may call.
//!
//! The kernel tells us the caller's uid, gid and pid (SO_PEERCRED) when the
//! connection is made; that is the only identity a local process cannot fake.
//! The caller ACL maps uids, gids, user and group names to operation classes
//! (`check`, `tokens`, `admin`, ...). Credentials are read once per
//! connection at accept time: they describe the process that connected, so a
//! later pid reuse cannot change what the connection may do.
//!
//! Names are resolved to ids when the agent starts or reloads (not when the
//! config is merely checked), and an unresolvable name is a start-up error:
//! a rule that silently matched nobody would be a hole or a lockout.

mod op;

pub use op::{Op, OpSet};

use crate::config::Problems;
use serde::{Deserialize, Serialize};

/// Identity of the process on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// One ACL rule as written in the config (`[[callers]]`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRule {
    name: Option<String>,
    uids: Vec<u32>,
    gids: Vec<u32>,
    users: Vec<String>,
    groups: Vec<String>,
    agent_user: bool,
    allow: Vec<String>,
}

/// The caller ACL section, validated but with names not yet resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub rules: Vec<Rule>,
}

/// One validated rule.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub name: String,
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// Matches the uid the agent itself runs as (handy for development).
    pub agent_user: bool,
    pub allow: OpSet,
}

/// Why the ACL could not be resolved against this host's user database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("caller rule {rule:?}: user {name:?} does not exist on this host")]
    UnknownUser { rule: String, name: String },
    #[error("caller rule {rule:?}: group {name:?} does not exist on this host")]
    UnknownGroup { rule: String, name: String },
    #[error("user database lookup failed: {0}")]
    Lookup(String),
}

impl Config {
    pub(crate) fn from_raw(raw: Vec<RawRule>, p: &mut Problems) -> Option<Config> {
        let mut rules = Vec::with_capacity(raw.len());
        let mut ok = true;
        for (i, r) in raw.into_iter().enumerate() {
            let path = format!("callers[{i}]");
            let name = r.name.unwrap_or_else(|| format!("rule {i}"));
            let allow = match OpSet::parse(&r.allow) {
                Ok(set) => set,
                Err(bad) => {
                    p.add(
                        &format!("{path}.allow"),
                        format!(
                            "unknown operation class {bad:?}; known: {}",
                            Op::ALL_NAMES.join(", ")
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            if r.allow.is_empty() {
                p.add(
                    &format!("{path}.allow"),
                    "must name at least one operation class",
                );
                ok = false;
            }
            if r.uids.is_empty()
                && r.gids.is_empty()
                && r.users.is_empty()
                && r.groups.is_empty()
                && !r.agent_user
            {
                p.add(
                    &path,
                    "matches nobody: give uids, gids, users, groups or agent_user = true",
                );
                ok = false;
            }
            rules.push(Rule {
                name,
                uids: r.uids,
                gids: r.gids,
                users: r.users,
                groups: r.groups,
                agent_user: r.agent_user,
                allow,
            });
        }
        ok.then_some(Config { rules })
    }

    /// Resolves user and group names into ids on this host.
    pub fn resolve(&self) -> Result<Acl, Error> {
        let agent_uid = nix::unistd::getuid().as_raw();
        let mut rules = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let mut uids = rule.uids.clone();
            let mut gids = rule.gids.clone();
            for name in &rule.users {
                match nix::unistd::User::from_name(name) {
                    Ok(Some(u)) => uids.push(u.uid.as_raw()),
                    Ok(None) => {
                        return Err(Error::UnknownUser {
                            rule: rule.name.clone(),
                            name: name.clone(),
                        })
                    }
                    Err(e) => return Err(Error::Lookup(e.to_string())),
                }
            }
            for name in &rule.groups {
                match nix::unistd::Group::from_name(name) {
                    Ok(Some(g)) => gids.push(g.gid.as_raw()),
                    Ok(None) => {
                        return Err(Error::UnknownGroup {
                            rule: rule.name.clone(),
                            name: name.clone(),
                        })
                    }
                    Err(e) => return Err(Error::Lookup(e.to_string())),
                }
            }
            if rule.agent_user {
                uids.push(agent_uid);
            }
            rules.push(ResolvedRule {
                uids,
                gids,
                allow: rule.allow,
            });
        }
        Ok(Acl { rules })
    }
}

/// The ACL with every name resolved; decides what a peer may call.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    rules: Vec<ResolvedRule>,
}

#[derive(Debug, Clone)]
struct ResolvedRule {
    uids: Vec<u32>,
    gids: Vec<u32>,
    allow: OpSet,
}

impl Acl {
    /// The operations `peer` may call: the union over every matching rule.
    /// Group rules match the peer's primary gid and, when needed, its
    /// supplementary groups from the user database.
    pub fn allowed(&self, peer: &Peer) -> OpSet {
        let mut set = OpSet::EMPTY;
        let mut supplementary: Option<Vec<u32>> = None;
        for rule in &self.rules {
            if rule.uids.contains(&peer.uid) || rule.gids.contains(&peer.gid) {
                set = set.union(rule.allow);
                continue;
            }
            if rule.gids.is_empty() {
                continue;
            }
            let groups = supplementary.get_or_insert_with(|| supplementary_groups(peer.uid));
            if rule.gids.iter().any(|g| groups.contains(g)) {
                set = set.union(rule.allow);
            }
        }
        set
    }
}

fn supplementary_groups(uid: u32) -> Vec<u32> {
    let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
