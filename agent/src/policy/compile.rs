//! Validation and compilation of a parsed registry into a [`Snapshot`].
//!
//! The snapshot is built for the decision path, not for editing: every name
//! is interned to a dense `u32`, the global role x permission grant table is a
//! flat array (30 roles x 500 permissions is 60 KB), and org overrides are
//! precomputed into a short sorted list per org that *replaces* the global
//! cell, so a decision is a few hash lookups, one binary search and bit tests.

use super::error::{Error, Problem};
use super::hash::{FxMap, Key};
use super::model::{Action, Mode, ParsedFile, RawRole, Registry, SourceFile, Surface, UserKind};
use std::collections::BTreeMap;
use std::ops::Range;

mod queries;

/// Per action (indexed by [`Action`]), the bit set of scopes granted.
pub(crate) type Cell = [u8; 4];
pub(crate) const EMPTY_CELL: Cell = [0; 4];

/// Default share of an org's users that may lose a grant in one change
/// before validation warns: 10 % catches "removed the clerk role's write",
/// while routine single-user edits in small orgs still warn (on purpose).
pub const DEFAULT_LOCKOUT_SHARE: f64 = 0.10;

pub(crate) struct Perm {
    pub name: Box<str>,
    pub module: Box<str>,
    pub description: Box<str>,
    pub actions: u8,
    pub surfaces: u8,
    pub mfa: u8,
    pub mode: Mode,
}

pub(crate) struct Role {
    pub name: Box<str>,
    pub description: Box<str>,
    /// `Some(org)` for org-only roles.
    pub org: Option<u32>,
}

pub(crate) struct Org {
    pub id: Box<str>,
    pub name: Box<str>,
    /// Org-only roles by name.
    pub role_ix: FxMap<Box<str>, u32>,
    /// Effective cells that differ from the global table, sorted by
    /// (role, permission); they replace the global cell for this org.
    pub cells: Vec<(u32, u32, Cell)>,
    /// Per-permission mode overrides, sorted by permission.
    pub modes: Vec<(u32, Mode)>,
}

pub(crate) struct User {
    /// Inline when short: 100k users should not mean 100k tiny allocations.
    pub id: Key,
    pub name: Box<str>,
    pub kind: UserKind,
}

/// What the user index points at: the user and, so a decision for a
/// directory user touches one cache line less, their membership range in
/// the flat membership table.
#[derive(Clone, Copy)]
pub(crate) struct UserSlot {
    pub user: u32,
    pub m_start: u32,
    pub m_len: u32,
}

pub(crate) struct Membership {
    pub org: u32,
    /// Interned region ([`NO_REGION`] when the user has none in this org).
    pub region: u32,
    pub roles: RoleSet,
}

pub(crate) const NO_REGION: u32 = u32::MAX;

/// A membership's role ids, inline for the common case (up to three roles)
/// so a decision does not chase one more pointer into a cold cache line.
pub(crate) enum RoleSet {
    Inline(u8, [u32; 3]),
    Heap(Box<[u32]>),
}

impl RoleSet {
    fn from_vec(v: Vec<u32>) -> RoleSet {
        if v.len() <= 3 {
            let mut ids = [0u32; 3];
            ids[..v.len()].copy_from_slice(&v);
            RoleSet::Inline(v.len() as u8, ids)
        } else {
            RoleSet::Heap(v.into_boxed_slice())
        }
    }
}

impl std::ops::Deref for RoleSet {
    type Target = [u32];

    #[inline]
    fn deref(&self) -> &[u32] {
        match self {
            RoleSet::Inline(n, ids) => &ids[..usize::from(*n)],
            RoleSet::Heap(ids) => ids,
        }
    }
}

/// A bot account or CLI identity resolved to one user in one org.
#[derive(Clone, Copy)]
pub(crate) struct Link {
    pub user: u32,
    pub membership: u32,
}

/// Where the grant that decided came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantSource {
    /// The role's global definition.
    Global,
    /// The org's override (added grant, or an org-only role).
    Org,
}

/// An immutable, compiled registry. Cheap to share (`Arc`), never mutated.
pub struct Snapshot {
    pub(crate) version: String,
    pub(crate) lockout_share: f64,
    pub(crate) modules: Vec<(Box<str>, Box<str>)>,
    pub(crate) perms: Vec<Perm>,
    pub(crate) perm_ix: FxMap<Box<str>, u32>,
    pub(crate) roles: Vec<Role>,
    pub(crate) n_global: usize,
    pub(crate) global_role_ix: FxMap<Box<str>, u32>,
    pub(crate) global_cells: Vec<Cell>,
    pub(crate) orgs: Vec<Org>,
    pub(crate) org_ix: FxMap<Box<str>, u32>,
    pub(crate) users: Vec<User>,
    pub(crate) user_ix: FxMap<Key, UserSlot>,
    /// Every user's memberships, contiguous per user.
    pub(crate) memberships: Vec<Membership>,
    pub(crate) bots: FxMap<Box<str>, FxMap<Box<str>, Link>>,
    pub(crate) cli_names: FxMap<Box<str>, Link>,
    pub(crate) cli_uids: FxMap<u32, Link>,
    pub(crate) regions: Vec<Box<str>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("permissions", &self.perms.len())
            .field("roles", &self.roles.len())
            .field("orgs", &self.orgs.len())
            .field("users", &self.users.len())
            .finish()
    }
}

/// A registry permission, for listings (`GET /v1/permissions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionInfo<'a> {
    pub name: &'a str,
    pub module: &'a str,
    pub description: &'a str,
    pub actions: Vec<Action>,
    pub surfaces: Vec<Surface>,
    pub mfa: Vec<Action>,
    pub mode: Mode,
}

pub(crate) fn bits<T: Copy>(all: &[T], mask: u8, bit: impl Fn(T) -> u8) -> Vec<T> {
    all.iter()
        .copied()
        .filter(|&x| mask & bit(x) != 0)
        .collect()
}

struct Check<'r, 'a> {
    problems: Vec<Problem>,
    files: &'r [ParsedFile<'a>],
}

impl Check<'_, '_> {
    /// Records `message` at `span` unless `ok`; returns `ok`.
    fn require(
        &mut self,
        ok: bool,
        file: usize,
        span: Range<usize>,
        message: impl FnOnce() -> String,
    ) -> bool {
        if !ok {
            self.at(file, span, message());
        }
        ok
    }

    /// Interns `name` as id `next` in `ix`, or records a duplicate.
    fn unique(
        &mut self,
        ix: &mut FxMap<Box<str>, u32>,
        name: &str,
        next: usize,
        file: usize,
        span: Range<usize>,
        twice: impl FnOnce() -> String,
    ) -> Option<u32> {
        if ix.contains_key(name) {
            self.at(file, span, twice());
            return None;
        }
        let id = next as u32;
        ix.insert(name.into(), id);
        Some(id)
    }

    fn at(&mut self, file: usize, span: Range<usize>, message: String) {
        let f = &self.files[file];
        self.problems.push(Problem {
            file: f.name.clone(),
            line: f.line(span.start),
            message,
        });
    }
}

fn valid_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

fn action_mask(actions: &[Action]) -> u8 {
    actions.iter().fold(0, |m, a| m | a.bit())
}

fn content_hash(files: &[SourceFile]) -> String {
    let mut sorted: Vec<&SourceFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for f in sorted {
        // Length-prefixed so ("ab","c") and ("a","bc") hash differently.
        ctx.update(&(f.name.len() as u64).to_le_bytes());
        ctx.update(f.name.as_bytes());
        ctx.update(&(f.text.len() as u64).to_le_bytes());
        ctx.update(f.text.as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

/// Validates `registry` (every problem at once) and compiles it.
/// `files` is the source it was parsed from (hashed into the version).
pub(crate) fn compile(registry: &Registry<'_>, files: &[SourceFile]) -> Result<Snapshot, Error> {
    Compiler::new(registry).run(files)
}

struct Compiler<'r, 'a> {
    reg: &'r Registry<'a>,
    ck: Check<'r, 'a>,
    perm_ix: FxMap<Box<str>, u32>,
    perms: Vec<Perm>,
}

impl<'r, 'a> Compiler<'r, 'a> {
    fn new(reg: &'r Registry<'a>) -> Self {
        Compiler {
            reg,
            ck: Check {
                problems: Vec::new(),
                files: &reg.files,
            },
            perm_ix: FxMap::default(),
            perms: Vec::new(),
        }
    }

    /// Checks a grant's permission and actions; returns the permission id and
    /// action mask when usable.
    fn grant_target(
        &mut self,
        fi: usize,
        what: &str,
        perm: &toml1::Spanned<String>,
        actions: &[Action],
    ) -> Option<(u32, u8)> {
        let Some(&p) = self.perm_ix.get(perm.get_ref().as_str()) else {
            self.ck.at(
                fi,
                perm.span(),
                format!("{what} references unknown permission `{}`", perm.get_ref()),
            );
            return None;
        };
        let mask = action_mask(actions);
        let allowed = self.perms[p as usize].actions;
        if actions.is_empty() {
            self.ck
                .at(fi, perm.span(), format!("{what} lists no actions"));
            return None;
        }
        if mask & !allowed != 0 {
            let extra: Vec<&str> = bits(Action::ALL, mask & !allowed, Action::bit)
                .iter()
                .map(|a| a.as_str())
                .collect();
            self.ck.at(
                fi,
                perm.span(),
                format!(
                    "{what} grants action(s) {} that permission `{}` does not have",
                    extra.join(", "),
                    perm.get_ref()
                ),
            );
            return None;
        }
        Some((p, mask))
    }

    fn role_cells(&mut self, fi: usize, role: &RawRole) -> BTreeMap<u32, Cell> {
        let what = format!("role `{}`", role.name.get_ref());
        let mut cells: BTreeMap<u32, Cell> = BTreeMap::new();
        for g in &role.grants {
            if let Some((p, mask)) = self.grant_target(fi, &what, &g.permission, &g.actions) {
                let cell = cells.entry(p).or_insert(EMPTY_CELL);
                for a in Action::ALL {
                    if mask & a.bit() != 0 {
                        cell[a.index()] |= g.scope.bit();
                    }
                }
            }
        }
        cells
    }

    fn run(mut self, files: &[SourceFile]) -> Result<Snapshot, Error> {
        let reg = self.reg;
        // Settings: at most one [settings] table across all files.
        let mut lockout_share = DEFAULT_LOCKOUT_SHARE;
        let mut default_mode = Mode::Enforce;
        let mut seen_settings = false;
        for (fi, f) in reg.files.iter().enumerate() {
            if let Some(s) = &f.raw.settings {
                if seen_settings {
                    self.ck.at(
                        fi,
                        s.span(),
                        "[settings] is defined in more than one file".into(),
                    );
                }
                seen_settings = true;
                let s = s.get_ref();
                if let Some(share) = s.lockout_share {
                    if !(0.0..=1.0).contains(&share) {
                        self.ck.at(
                            fi,
                            0..0,
                            format!("settings.lockout_share must be between 0 and 1, got {share}"),
                        );
                    } else {
                        lockout_share = share;
                    }
                }
                if let Some(m) = s.default_mode {
                    default_mode = m;
                }
            }
        }

        // Modules.
        let mut modules: Vec<(Box<str>, Box<str>)> = Vec::new();
        let mut module_ix: FxMap<Box<str>, ()> = FxMap::default();
        for (fi, f) in reg.files.iter().enumerate() {
            for m in &f.raw.module {
                let name = m.name.get_ref();
                if !valid_ident(name) {
                    self.ck.at(
                        fi,
                        m.name.span(),
                        format!("module name `{name}` must be lowercase letters, digits and `_`"),
                    );
                } else if module_ix.insert(name.as_str().into(), ()).is_some() {
                    self.ck.at(
                        fi,
                        m.name.span(),
                        format!("module `{name}` is defined twice"),
                    );
                } else {
                    modules.push((name.as_str().into(), m.description.as_str().into()));
                }
            }
        }

        // Permissions.
        for (fi, f) in reg.files.iter().enumerate() {
            for p in &f.raw.permission {
                let name = p.name.get_ref();
                let Some((module, thing)) = name.split_once('.') else {
                    self.ck.at(
                        fi,
                        p.name.span(),
                        format!("permission name `{name}` must look like `module.thing`"),
                    );
                    continue;
                };
                if !valid_ident(module) || !valid_ident(thing) {
                    self.ck.at(
                        fi,
                        p.name.span(),
                        format!(
                            "permission name `{name}` must be `module.thing` in lowercase letters, digits and `_`"
                        ),
                    );
                    continue;
                }
                if !module_ix.contains_key(module) {
                    self.ck.at(
                        fi,
                        p.name.span(),
                        format!("permission `{name}` belongs to undeclared module `{module}`"),
                    );
                }
                let actions = action_mask(&p.actions);
                if actions == 0 {
                    self.ck.at(
                        fi,
                        p.name.span(),
                        format!("permission `{name}` has no actions"),
                    );
                }
                let surfaces = p.surfaces.iter().fold(0u8, |m, s| m | s.bit());
                if surfaces == 0 {
                    self.ck.at(
                        fi,
                        p.name.span(),
                        format!("permission `{name}` allows no surfaces"),
                    );
                }
                let mfa = action_mask(&p.mfa);
                if mfa & !actions != 0 {
                    self.ck.at(
                        fi,
                        p.name.span(),
                        format!("permission `{name}` requires MFA for an action it does not have"),
                    );
                }
                let id = self.perms.len() as u32;
                if self.perm_ix.contains_key(name.as_str()) {
                    self.ck.at(
                        fi,
                        p.name.span(),
                        format!("permission `{name}` is defined twice"),
                    );
                    continue;
                }
                self.perm_ix.insert(name.as_str().into(), id);
                self.perms.push(Perm {
                    name: name.as_str().into(),
                    module: module.into(),
                    description: p.description.as_str().into(),
                    actions,
                    surfaces,
                    mfa,
                    mode: p.mode.unwrap_or(default_mode),
                });
            }
        }

        // Global roles.
        let mut roles: Vec<Role> = Vec::new();
        let mut global_role_ix: FxMap<Box<str>, u32> = FxMap::default();
        let mut global_grants: Vec<BTreeMap<u32, Cell>> = Vec::new();
        for (fi, f) in reg.files.iter().enumerate() {
            for r in &f.raw.role {
                let name = r.name.get_ref();
                if !self.ck.require(valid_ident(name), fi, r.name.span(), || {
                    format!("role name `{name}` must be lowercase letters, digits and `_`")
                }) {
                    continue;
                }
                let Some(_) = self.ck.unique(
                    &mut global_role_ix,
                    name,
                    roles.len(),
                    fi,
                    r.name.span(),
                    || format!("role `{name}` is defined twice"),
                ) else {
                    continue;
                };
                roles.push(Role {
                    name: name.as_str().into(),
                    description: r.description.as_str().into(),
                    org: None,
                });
                let cells = self.role_cells(fi, r);
                global_grants.push(cells);
            }
        }
        let n_global = roles.len();
        let n_perms = self.perms.len();
        let mut global_cells = vec![EMPTY_CELL; n_global * n_perms];
        for (r, cells) in global_grants.iter().enumerate() {
            for (&p, &c) in cells {
                global_cells[r * n_perms + p as usize] = c;
            }
        }

        // Orgs: ids first so users can be checked against them.
        let mut orgs: Vec<Org> = Vec::new();
        let mut org_ix: FxMap<Box<str>, u32> = FxMap::default();
        let mut org_src: Vec<(usize, usize)> = Vec::new();
        for (fi, f) in reg.files.iter().enumerate() {
            for (oi, o) in f.raw.org.iter().enumerate() {
                let id = o.id.get_ref();
                if !self.ck.require(valid_id(id), fi, o.id.span(), || {
                    format!("org id `{id}` must be non-empty without spaces")
                }) {
                    continue;
                }
                let Some(_) = self
                    .ck
                    .unique(&mut org_ix, id, orgs.len(), fi, o.id.span(), || {
                        format!("org `{id}` is defined twice")
                    })
                else {
                    continue;
                };
                orgs.push(Org {
                    id: id.as_str().into(),
                    name: o.name.as_str().into(),
                    role_ix: FxMap::default(),
                    cells: Vec::new(),
                    modes: Vec::new(),
                });
                org_src.push((fi, oi));
            }
        }
        for (ix, &(fi, oi)) in org_src.iter().enumerate() {
            let o = &reg.files[fi].raw.org[oi];
            let org_id = o.id.get_ref();
            // Effective cells touched by this org, keyed (role, perm).
            let mut cells: BTreeMap<(u32, u32), Cell> = BTreeMap::new();
            let mut role_ix: FxMap<Box<str>, u32> = FxMap::default();
            for r in &o.role {
                let name = r.name.get_ref();
                if !self.ck.require(valid_ident(name), fi, r.name.span(), || {
                    format!("role name `{name}` must be lowercase letters, digits and `_`")
                }) || !self.ck.require(
                    !global_role_ix.contains_key(name.as_str()),
                    fi,
                    r.name.span(),
                    || format!("org `{org_id}` role `{name}` shadows the global role of that name"),
                ) {
                    continue;
                }
                let Some(id) =
                    self.ck
                        .unique(&mut role_ix, name, roles.len(), fi, r.name.span(), || {
                            format!("org `{org_id}` defines role `{name}` twice")
                        })
                else {
                    continue;
                };
                roles.push(Role {
                    name: name.as_str().into(),
                    description: r.description.as_str().into(),
                    org: Some(ix as u32),
                });
                for (p, c) in self.role_cells(fi, r) {
                    cells.insert((id, p), c);
                }
            }
            let lookup_role = |name: &str| -> Option<u32> {
                role_ix
                    .get(name)
                    .or_else(|| global_role_ix.get(name))
                    .copied()
            };
            let base = |cells: &BTreeMap<(u32, u32), Cell>, r: u32, p: u32| -> Cell {
                if let Some(c) = cells.get(&(r, p)) {
                    *c
                } else if (r as usize) < n_global {
                    global_cells[r as usize * n_perms + p as usize]
                } else {
                    EMPTY_CELL
                }
            };
            let what = format!("org `{org_id}` override");
            for rm in &o.remove_grant {
                let Some(r) = lookup_role(rm.role.get_ref()) else {
                    self.ck.at(
                        fi,
                        rm.role.span(),
                        format!(
                            "{what} removes a grant from unknown role `{}`",
                            rm.role.get_ref()
                        ),
                    );
                    continue;
                };
                let all: Vec<Action>;
                let actions = match &rm.actions {
                    Some(a) => a.as_slice(),
                    None => {
                        all = self
                            .perm_ix
                            .get(rm.permission.get_ref().as_str())
                            .map(|&p| {
                                bits(Action::ALL, self.perms[p as usize].actions, Action::bit)
                            })
                            .unwrap_or_default();
                        all.as_slice()
                    }
                };
                let actions = actions.to_vec();
                if let Some((p, mask)) = self.grant_target(fi, &what, &rm.permission, &actions) {
                    let mut c = base(&cells, r, p);
                    let mut removed_any = false;
                    for a in Action::ALL {
                        if mask & a.bit() != 0 && c[a.index()] != 0 {
                            c[a.index()] = 0;
                            removed_any = true;
                        }
                    }
                    if !removed_any {
                        self.ck.at(
                            fi,
                            rm.permission.span(),
                            format!(
                                "{what} removes `{}` from role `{}`, which does not grant it",
                                rm.permission.get_ref(),
                                rm.role.get_ref()
                            ),
                        );
                    }
                    cells.insert((r, p), c);
                }
            }
            for add in &o.add_grant {
                let Some(r) = lookup_role(add.role.get_ref()) else {
                    self.ck.at(
                        fi,
                        add.role.span(),
                        format!(
                            "{what} adds a grant to unknown role `{}`",
                            add.role.get_ref()
                        ),
                    );
                    continue;
                };
                if let Some((p, mask)) = self.grant_target(fi, &what, &add.permission, &add.actions)
                {
                    let mut c = base(&cells, r, p);
                    for a in Action::ALL {
                        if mask & a.bit() != 0 {
                            c[a.index()] |= add.scope.bit();
                        }
                    }
                    cells.insert((r, p), c);
                }
            }
            let mut modes: BTreeMap<u32, Mode> = BTreeMap::new();
            for m in &o.mode {
                match self.perm_ix.get(m.permission.get_ref().as_str()) {
                    Some(&p) => {
                        if modes.insert(p, m.mode).is_some() {
                            self.ck.at(
                                fi,
                                m.permission.span(),
                                format!(
                                    "{what} sets the mode of `{}` twice",
                                    m.permission.get_ref()
                                ),
                            );
                        }
                    }
                    None => self.ck.at(
                        fi,
                        m.permission.span(),
                        format!(
                            "{what} sets the mode of unknown permission `{}`",
                            m.permission.get_ref()
                        ),
                    ),
                }
            }
            let org = &mut orgs[ix];
            org.role_ix = role_ix;
            org.cells = cells
                .into_iter()
                .filter(|&((r, p), c)| {
                    // Keep only cells that differ from what the global table says.
                    (r as usize) >= n_global || global_cells[r as usize * n_perms + p as usize] != c
                })
                .map(|((r, p), c)| (r, p, c))
                .collect();
            org.modes = modes.into_iter().collect();
        }

        // Directory: users.
        let mut regions: Vec<Box<str>> = Vec::new();
        let mut region_ix: FxMap<Box<str>, u32> = FxMap::default();
        let mut users: Vec<User> = Vec::new();
        let mut user_ix: FxMap<Key, UserSlot> = FxMap::default();
        let mut all_ms: Vec<Membership> = Vec::new();
        for (fi, f) in reg.files.iter().enumerate() {
            for u in &f.raw.user {
                let id = u.id.get_ref();
                if !valid_id(id) {
                    self.ck.at(
                        fi,
                        u.id.span(),
                        format!("user id `{id}` must be non-empty without spaces"),
                    );
                    continue;
                }
                let mut memberships: Vec<Membership> = Vec::with_capacity(u.memberships.len());
                for m in &u.memberships {
                    let Some(&o) = org_ix.get(m.org.get_ref().as_str()) else {
                        self.ck.at(
                            fi,
                            m.org.span(),
                            format!(
                                "user `{id}` is a member of unknown org `{}`",
                                m.org.get_ref()
                            ),
                        );
                        continue;
                    };
                    if memberships.iter().any(|x| x.org == o) {
                        self.ck.at(
                            fi,
                            m.org.span(),
                            format!("user `{id}` lists org `{}` twice", m.org.get_ref()),
                        );
                        continue;
                    }
                    let mut rs: Vec<u32> = Vec::with_capacity(m.roles.len());
                    for r in &m.roles {
                        let name = r.get_ref().as_str();
                        match orgs[o as usize]
                            .role_ix
                            .get(name)
                            .or_else(|| global_role_ix.get(name))
                        {
                            Some(&rid) if !rs.contains(&rid) => rs.push(rid),
                            Some(_) => {}
                            None => self.ck.at(
                                fi,
                                r.span(),
                                format!(
                                    "user `{id}` has unknown role `{name}` in org `{}`",
                                    m.org.get_ref()
                                ),
                            ),
                        }
                    }
                    let region = match m.region.as_deref() {
                        None => NO_REGION,
                        Some(r) => *region_ix.entry(r.into()).or_insert_with(|| {
                            regions.push(r.into());
                            (regions.len() - 1) as u32
                        }),
                    };
                    memberships.push(Membership {
                        org: o,
                        region,
                        roles: RoleSet::from_vec(rs),
                    });
                }
                let ix = users.len() as u32;
                if user_ix.contains_key(id.as_str()) {
                    self.ck
                        .at(fi, u.id.span(), format!("user `{id}` is defined twice"));
                    continue;
                }
                user_ix.insert(
                    Key::new(id),
                    UserSlot {
                        user: ix,
                        m_start: all_ms.len() as u32,
                        m_len: memberships.len() as u32,
                    },
                );
                all_ms.extend(memberships);
                users.push(User {
                    id: Key::new(id),
                    name: u.name.as_deref().unwrap_or("").into(),
                    kind: u.kind,
                });
            }
        }

        // Links (bots, CLI identities) resolve to one membership.
        let link = |ck: &mut Check,
                    fi: usize,
                    what: &str,
                    user: &toml1::Spanned<String>,
                    org: Option<&toml1::Spanned<String>>|
         -> Option<Link> {
            let Some(&slot) = user_ix.get(user.get_ref().as_str()) else {
                ck.at(
                    fi,
                    user.span(),
                    format!("{what} links unknown user `{}`", user.get_ref()),
                );
                return None;
            };
            let u = slot.user;
            let start = slot.m_start as usize;
            let ms = &all_ms[start..start + slot.m_len as usize];
            match org {
                Some(org) => {
                    let found = org_ix
                        .get(org.get_ref().as_str())
                        .and_then(|&o| ms.iter().position(|m| m.org == o));
                    match found {
                        Some(m) => Some(Link {
                            user: u,
                            membership: m as u32,
                        }),
                        None => {
                            ck.at(
                                fi,
                                org.span(),
                                format!(
                                    "{what}: user `{}` is not a member of org `{}`",
                                    user.get_ref(),
                                    org.get_ref()
                                ),
                            );
                            None
                        }
                    }
                }
                None if ms.len() == 1 => Some(Link {
                    user: u,
                    membership: 0,
                }),
                None => {
                    ck.at(
                        fi,
                        user.span(),
                        format!(
                            "{what}: user `{}` belongs to {} orgs; set `org`",
                            user.get_ref(),
                            ms.len()
                        ),
                    );
                    None
                }
            }
        };
        let mut bots: FxMap<Box<str>, FxMap<Box<str>, Link>> = FxMap::default();
        let mut cli_names: FxMap<Box<str>, Link> = FxMap::default();
        let mut cli_uids: FxMap<u32, Link> = FxMap::default();
        for (fi, f) in reg.files.iter().enumerate() {
            for b in &f.raw.bot {
                let what = format!("bot link {}:{}", b.platform.get_ref(), b.id);
                if let Some(l) = link(&mut self.ck, fi, &what, &b.user, b.org.as_ref()) {
                    let per = bots
                        .entry(b.platform.get_ref().as_str().into())
                        .or_default();
                    if per.insert(b.id.as_str().into(), l).is_some() {
                        self.ck
                            .at(fi, b.platform.span(), format!("{what} is defined twice"));
                    }
                }
            }
            for c in &f.raw.cli {
                let what = "CLI identity";
                if c.os_user.is_none() && c.uid.is_none() {
                    self.ck.at(
                        fi,
                        c.user.span(),
                        format!("{what} for `{}` needs `os_user` or `uid`", c.user.get_ref()),
                    );
                    continue;
                }
                if let Some(l) = link(&mut self.ck, fi, what, &c.user, c.org.as_ref()) {
                    if let Some(name) = &c.os_user {
                        if cli_names.insert(name.as_str().into(), l).is_some() {
                            self.ck.at(
                                fi,
                                c.user.span(),
                                format!("OS user `{name}` is mapped twice"),
                            );
                        }
                    }
                    if let Some(uid) = c.uid {
                        if cli_uids.insert(uid, l).is_some() {
                            self.ck
                                .at(fi, c.user.span(), format!("uid {uid} is mapped twice"));
                        }
                    }
                }
            }
        }

        if !self.ck.problems.is_empty() {
            return Err(Error::Invalid(self.ck.problems));
        }
        Ok(Snapshot {
            version: content_hash(files),
            lockout_share,
            modules,
            perms: self.perms,
            perm_ix: self.perm_ix,
            roles,
            n_global,
            global_role_ix,
            global_cells,
            orgs,
            org_ix,
            users,
            user_ix,
            memberships: all_ms,
            bots,
            cli_names,
            cli_uids,
            regions,
        })
    }
}
