//! Read-only questions about a compiled snapshot: counts and listings for
//! `/v1/permissions` and status, directory look-ups (roles, regions,
//! memberships) and the cell, mode and role look-ups the decision path uses.

use super::*;

impl Snapshot {
    /// Content hash of the registry source: hex SHA-256.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The configured lockout warning threshold (share of an org's users).
    pub fn lockout_share(&self) -> f64 {
        self.lockout_share
    }

    pub fn permission_count(&self) -> usize {
        self.perms.len()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn org_count(&self) -> usize {
        self.orgs.len()
    }

    /// Roles `(name, description, org)`: global roles have no org.
    pub fn roles(&self) -> impl Iterator<Item = (&str, &str, Option<&str>)> {
        self.roles.iter().map(|r| {
            (
                &*r.name,
                &*r.description,
                r.org
                    .and_then(|o| self.orgs.get(o as usize))
                    .map(|o| &*o.id),
            )
        })
    }

    /// Orgs `(id, display name)`.
    pub fn orgs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.orgs.iter().map(|o| (&*o.id, &*o.name))
    }

    /// A directory user's display name and kind.
    pub fn user(&self, id: &str) -> Option<(&str, UserKind)> {
        let u = &self.users[self.user_ix.get(id)?.user as usize];
        Some((&u.name, u.kind))
    }

    /// Declared modules `(name, description)`.
    pub fn modules(&self) -> impl Iterator<Item = (&str, &str)> {
        self.modules.iter().map(|(n, d)| (&**n, &**d))
    }

    /// Every permission, in registry order.
    pub fn permissions(&self) -> impl Iterator<Item = PermissionInfo<'_>> {
        self.perms.iter().map(|p| PermissionInfo {
            name: &p.name,
            module: &p.module,
            description: &p.description,
            actions: bits(Action::ALL, p.actions, Action::bit),
            surfaces: bits(Surface::ALL, p.surfaces, Surface::bit),
            mfa: bits(Action::ALL, p.mfa, Action::bit),
            mode: p.mode,
        })
    }

    /// Role names the directory gives `user` in `org` (`None`: not a member
    /// or unknown). The tokens work puts these into access tokens.
    pub fn roles_of(&self, user: &str, org: &str) -> Option<Vec<&str>> {
        let m = self.membership(user, org)?;
        Some(
            m.roles
                .iter()
                .map(|&r| &*self.roles[r as usize].name)
                .collect(),
        )
    }

    /// Whether a CLI identity is mapped by this uid (the API then skips the
    /// user-database lookup of the peer's name).
    pub fn knows_cli_uid(&self, uid: u32) -> bool {
        self.cli_uids.contains_key(&uid)
    }

    /// The user's region in `org`, if the directory sets one.
    pub fn region_of(&self, user: &str, org: &str) -> Option<&str> {
        self.region_name(self.membership(user, org)?.region)
    }

    /// Orgs `user` belongs to.
    pub fn orgs_of(&self, user: &str) -> Vec<&str> {
        match self.user_ix.get(user) {
            Some(&u) => self
                .slot_ms(u)
                .iter()
                .map(|m| &*self.orgs[m.org as usize].id)
                .collect(),
            None => Vec::new(),
        }
    }

    pub(crate) fn membership(&self, user: &str, org: &str) -> Option<&Membership> {
        let u = *self.user_ix.get(user)?;
        let o = *self.org_ix.get(org)?;
        self.slot_ms(u).iter().find(|m| m.org == o)
    }

    #[inline]
    pub(crate) fn slot_ms(&self, s: UserSlot) -> &[Membership] {
        let start = s.m_start as usize;
        self.memberships
            .get(start..start + s.m_len as usize)
            .unwrap_or(&[])
    }

    /// Memberships of user `u` (by index).
    pub(crate) fn user_ms(&self, u: u32) -> &[Membership] {
        match self.users.get(u as usize) {
            Some(user) => self
                .user_ix
                .get(user.id.as_str())
                .map_or(&[], |&s| self.slot_ms(s)),
            None => &[],
        }
    }

    #[inline]
    pub(crate) fn region_name(&self, region: u32) -> Option<&str> {
        self.regions.get(region as usize).map(|r| &**r)
    }

    /// Effective grant cell of (org, role, permission) and where it came from.
    #[inline]
    pub(crate) fn cell(&self, org: u32, role: u32, perm: u32) -> (Cell, GrantSource) {
        let o = &self.orgs[org as usize];
        if !o.cells.is_empty() {
            if let Ok(i) = o
                .cells
                .binary_search_by(|&(r, p, _)| (r, p).cmp(&(role, perm)))
            {
                return (o.cells[i].2, GrantSource::Org);
            }
        }
        let r = role as usize;
        if r < self.n_global {
            (
                self.global_cells[r * self.perms.len() + perm as usize],
                GrantSource::Global,
            )
        } else {
            (EMPTY_CELL, GrantSource::Org)
        }
    }

    /// Enforcement mode of `perm` in `org`.
    #[inline]
    pub(crate) fn mode(&self, org: u32, perm: u32) -> Mode {
        let o = &self.orgs[org as usize];
        match o.modes.binary_search_by_key(&perm, |&(p, _)| p) {
            Ok(i) => o.modes[i].1,
            Err(_) => self.perms[perm as usize].mode,
        }
    }

    /// Resolves a role name as seen from `org` (org-only roles first).
    #[inline]
    pub(crate) fn role_in(&self, org: u32, name: &str) -> Option<u32> {
        self.orgs[org as usize]
            .role_ix
            .get(name)
            .or_else(|| self.global_role_ix.get(name))
            .copied()
    }
}
