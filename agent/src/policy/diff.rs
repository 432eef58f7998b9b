//! Comparing two snapshots: what a registry change does to people.
//!
//! Used by `warden policy diff`, by `warden policy validate --baseline`, by
//! the file source before it publishes a change (lockout warning in the log)
//! and by the tokens work (sessions of users whose roles changed are revoked).
//! Everything compares by *name*, since interned ids differ between snapshots.

use super::compile::{bits, Cell, Snapshot, EMPTY_CELL};
use super::model::{Action, Scope};
use std::collections::{BTreeSet, HashMap, HashSet};

/// One (org, role, permission, action) whose outcome changes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GrantChange {
    pub org: String,
    pub role: String,
    pub permission: String,
    pub action: Action,
    /// Scopes granted before; empty: not granted.
    pub before: Vec<Scope>,
    /// Scopes granted after; empty: not granted.
    pub after: Vec<Scope>,
}

/// An org where a change removes a grant from too many users.
#[derive(Debug, Clone, PartialEq)]
pub struct LockoutWarning {
    pub org: String,
    pub users_losing: usize,
    pub users_total: usize,
    pub share: f64,
    pub threshold: f64,
}

impl std::fmt::Display for LockoutWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "org `{}`: {} of {} users ({:.0}%) lose at least one grant (threshold {:.0}%)",
            self.org,
            self.users_losing,
            self.users_total,
            self.share * 100.0,
            self.threshold * 100.0
        )
    }
}

/// A (user, org) whose role set differs between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleChange {
    pub user_id: String,
    pub org_id: String,
}

fn cell_by_name(s: &Snapshot, org: &str, role: &str, perm: &str) -> Cell {
    let (Some(&o), Some(&p)) = (s.org_ix.get(org), s.perm_ix.get(perm)) else {
        return EMPTY_CELL;
    };
    match s.role_in(o, role) {
        Some(r) => s.cell(o, r, p).0,
        None => EMPTY_CELL,
    }
}

/// Keys (role, perm) with a non-empty cell in `org` (global or override).
fn org_keys(s: &Snapshot, org: &str, keys: &mut BTreeSet<(String, String)>, all: bool) {
    let Some(&o) = s.org_ix.get(org) else { return };
    for &(r, p, _) in &s.orgs[o as usize].cells {
        keys.insert((
            s.roles[r as usize].name.to_string(),
            s.perms[p as usize].name.to_string(),
        ));
    }
    if all {
        let np = s.perms.len();
        for r in 0..s.n_global {
            for p in 0..np {
                if s.global_cells[r * np + p] != EMPTY_CELL {
                    keys.insert((s.roles[r].name.to_string(), s.perms[p].name.to_string()));
                }
            }
        }
    }
}

/// Every (org, role, permission, action) whose granted scopes change.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<GrantChange> {
    // Global (role, perm) keys whose global cells differ.
    let mut global: BTreeSet<(String, String)> = BTreeSet::new();
    for s in [old, new] {
        let np = s.perms.len();
        for r in 0..s.n_global {
            for p in 0..np {
                let (role, perm) = (&*s.roles[r].name, &*s.perms[p].name);
                let other = if std::ptr::eq(s, old) { new } else { old };
                let theirs = match (other.global_role_ix.get(role), other.perm_ix.get(perm)) {
                    (Some(&rr), Some(&pp)) => {
                        other.global_cells[rr as usize * other.perms.len() + pp as usize]
                    }
                    _ => EMPTY_CELL,
                };
                if s.global_cells[r * np + p] != theirs {
                    global.insert((role.to_string(), perm.to_string()));
                }
            }
        }
    }
    let mut orgs: BTreeSet<&str> = old.orgs.iter().map(|o| &*o.id).collect();
    orgs.extend(new.orgs.iter().map(|o| &*o.id));
    let mut out = Vec::new();
    for org in orgs {
        let in_both = old.org_ix.contains_key(org) && new.org_ix.contains_key(org);
        let mut keys = global.clone();
        org_keys(old, org, &mut keys, !in_both);
        org_keys(new, org, &mut keys, !in_both);
        for (role, perm) in keys {
            let a = cell_by_name(old, org, &role, &perm);
            let b = cell_by_name(new, org, &role, &perm);
            for action in Action::ALL {
                let (x, y) = (a[action.index()], b[action.index()]);
                if x != y {
                    out.push(GrantChange {
                        org: org.to_string(),
                        role: role.clone(),
                        permission: perm.clone(),
                        action: *action,
                        before: bits(Scope::ALL, x, Scope::bit),
                        after: bits(Scope::ALL, y, Scope::bit),
                    });
                }
            }
        }
    }
    out
}

/// Per permission (indexed by `s`'s ids), the action bits `roles` grant in
/// `org` under any scope.
fn granted(s: &Snapshot, org: u32, roles: &[u32]) -> Vec<u8> {
    let mut out = vec![0u8; s.perms.len()];
    for &r in roles {
        for (p, slot) in out.iter_mut().enumerate() {
            let c = s.cell(org, r, p as u32).0;
            for a in Action::ALL {
                if c[a.index()] != 0 {
                    *slot |= a.bit();
                }
            }
        }
    }
    out
}

/// Sorted role names of a role-id set.
fn role_names<'s>(s: &'s Snapshot, roles: &[u32]) -> Vec<&'s str> {
    let mut v: Vec<&str> = roles.iter().map(|&r| &*s.roles[r as usize].name).collect();
    v.sort_unstable();
    v
}

/// The new snapshot's membership of `user` in the org named like old org `o`.
fn new_membership<'n>(
    old: &Snapshot,
    new: &'n Snapshot,
    user: &str,
    o: u32,
) -> Option<&'n super::compile::Membership> {
    let no = *new.org_ix.get(&*old.orgs[o as usize].id)?;
    let slot = *new.user_ix.get(user)?;
    new.slot_ms(slot).iter().find(|m| m.org == no)
}

/// Orgs where more than `threshold` (default: the new registry's
/// `lockout_share`) of the users lose at least one (permission, action).
///
/// Cost: one pass over the directory. A membership is evaluated in full only
/// if its role set changed or one of its roles lost a grant in that org (per
/// [`diff`]); evaluations are memoised per (org, old roles, new roles).
pub fn lockout(old: &Snapshot, new: &Snapshot, threshold: Option<f64>) -> Vec<LockoutWarning> {
    let threshold = threshold.unwrap_or(new.lockout_share);
    let changes = diff(old, new);
    // (org, role) pairs that lose some action outright.
    let hit: HashSet<(&str, &str)> = changes
        .iter()
        .filter(|c| !c.before.is_empty() && c.after.is_empty())
        .map(|c| (c.org.as_str(), c.role.as_str()))
        .collect();
    // Old permission id -> new permission id.
    let remap: Vec<Option<u32>> = old
        .perms
        .iter()
        .map(|p| new.perm_ix.get(&*p.name).copied())
        .collect();
    let mut counts = vec![(0usize, 0usize); old.orgs.len()];
    let mut memo: HashMap<(u32, Vec<u32>, Vec<u32>), bool> = HashMap::new();
    for (ui, u) in old.users.iter().enumerate() {
        for m in old.user_ms(ui as u32) {
            let o = m.org;
            let org = &*old.orgs[o as usize].id;
            counts[o as usize].0 += 1;
            let Some(&no) = new.org_ix.get(org) else {
                // The org is gone: everyone in it loses everything.
                counts[o as usize].1 += 1;
                continue;
            };
            let nm = new_membership(old, new, u.id.as_str(), o);
            let new_roles: Vec<u32> = nm.map(|x| x.roles.to_vec()).unwrap_or_default();
            let same_roles = role_names(old, &m.roles) == role_names(new, &new_roles);
            let touched = m
                .roles
                .iter()
                .any(|&r| hit.contains(&(org, &*old.roles[r as usize].name)));
            if same_roles && !touched {
                continue;
            }
            let lost = *memo
                .entry((o, m.roles.to_vec(), new_roles))
                .or_insert_with_key(|(_, or, nr)| {
                    let before = granted(old, o, or);
                    let after = granted(new, no, nr);
                    before.iter().enumerate().any(|(p, &bits)| {
                        let now = remap[p]
                            .and_then(|np| after.get(np as usize).copied())
                            .unwrap_or(0);
                        bits & !now != 0
                    })
                });
            if lost {
                counts[o as usize].1 += 1;
            }
        }
    }
    let mut out = Vec::new();
    for (o, &(total, losing)) in counts.iter().enumerate() {
        if total > 0 && losing > 0 {
            let share = losing as f64 / total as f64;
            if share > threshold {
                out.push(LockoutWarning {
                    org: old.orgs[o].id.to_string(),
                    users_losing: losing,
                    users_total: total,
                    share,
                    threshold,
                });
            }
        }
    }
    out
}

/// Users whose role set in an org differs between `old` and `new` (including
/// memberships that appear or disappear). Sessions of these users must be
/// revoked: their tokens carry the old roles.
pub fn changed_users(old: &Snapshot, new: &Snapshot) -> Vec<RoleChange> {
    let mut out: BTreeSet<RoleChange> = BTreeSet::new();
    let mut record = |user: &str, org: &str| {
        out.insert(RoleChange {
            user_id: user.to_string(),
            org_id: org.to_string(),
        });
    };
    // Memberships of `a` whose role names differ in `b` (or are missing there).
    let mut one_way = |a: &Snapshot, b: &Snapshot, skip_present: bool| {
        for (ui, u) in a.users.iter().enumerate() {
            for m in a.user_ms(ui as u32) {
                let theirs = new_membership(a, b, u.id.as_str(), m.org);
                let differs = match theirs {
                    Some(_) if skip_present => false,
                    Some(t) => role_names(a, &m.roles) != role_names(b, &t.roles),
                    None => true,
                };
                if differs {
                    record(u.id.as_str(), &a.orgs[m.org as usize].id);
                }
            }
        }
    };
    one_way(old, new, false);
    // Memberships that only exist in `new`.
    one_way(new, old, true);
    out.into_iter().collect()
}
