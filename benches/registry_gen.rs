//! A generated large registry for benchmarks: 500 permissions x 30 roles x
//! 1,000 orgs and 100,000 users, deterministic (fixed seed), shaped like the
//! ERP's (most grants org-scoped, some region/assigned/own, one add, one
//! remove and a report-mode override per org, a few org-only roles).
#![allow(dead_code)]

use std::fmt::Write as _;
use warden::policy::{Principal, Request, Resource, SourceFile, Subject, Surface};

pub struct Scale {
    pub modules: usize,
    pub perms_per_module: usize,
    pub roles: usize,
    pub grants_per_role: usize,
    pub orgs: usize,
    pub users: usize,
}

pub const LARGE: Scale = Scale {
    modules: 10,
    perms_per_module: 50,
    roles: 30,
    grants_per_role: 80,
    orgs: 1000,
    users: 100_000,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ACTIONS: [&str; 4] = ["read", "write", "approve", "export"];
const SCOPES: [&str; 4] = ["org", "org", "region", "own"];
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

fn perm(s: &Scale, i: usize) -> String {
    format!("m{}.p{}", i / s.perms_per_module, i % s.perms_per_module)
}

/// The registry as source files (one per section, like an operator would).
pub fn files(s: &Scale) -> Vec<SourceFile> {
    let mut r = Rng(0x5eed);
    let n_perms = s.modules * s.perms_per_module;
    let mut reg = String::new();
    for m in 0..s.modules {
        let _ = writeln!(reg, "[[module]]\nname = \"m{m}\"\n");
    }
    for i in 0..n_perms {
        let mfa = if i % 10 == 0 { "[\"approve\"]" } else { "[]" };
        let _ = writeln!(
            reg,
            "[[permission]]\nname = \"{}\"\ndescription = \"generated\"\nactions = [\"read\", \"write\", \"approve\", \"export\"]\nsurfaces = [\"http\", \"task\", \"cli\"]\nmfa = {mfa}\n",
            perm(s, i)
        );
    }
    let mut roles = String::new();
    // role -> granted (perm, action) pairs, so org removes hit real grants.
    let mut granted: Vec<Vec<(usize, usize)>> = Vec::new();
    for ro in 0..s.roles {
        let _ = writeln!(roles, "[[role]]\nname = \"r{ro}\"\ngrants = [");
        let mut g = Vec::new();
        for _ in 0..s.grants_per_role {
            let p = r.below(n_perms);
            let a = r.below(4);
            let scope = SCOPES[r.below(4)];
            let _ = writeln!(
                roles,
                "  {{ permission = \"{}\", actions = [\"{}\"], scope = \"{scope}\" }},",
                perm(s, p),
                ACTIONS[a]
            );
            g.push((p, a));
        }
        roles.push_str("]\n\n");
        granted.push(g);
    }
    let mut orgs = String::new();
    for o in 0..s.orgs {
        let _ = writeln!(orgs, "[[org]]\nid = \"org{o}\"");
        if o % 10 == 0 {
            let _ = writeln!(
                orgs,
                "[[org.role]]\nname = \"local{o}\"\ngrants = [{{ permission = \"{}\", actions = [\"read\", \"write\"] }}]",
                perm(s, r.below(n_perms))
            );
        }
        let ro = r.below(s.roles);
        let _ = writeln!(
            orgs,
            "[[org.add_grant]]\nrole = \"r{ro}\"\npermission = \"{}\"\nactions = [\"read\"]\nscope = \"org\"",
            perm(s, r.below(n_perms))
        );
        let ro = r.below(s.roles);
        let (p, a) = granted[ro][r.below(granted[ro].len())];
        let _ = writeln!(
            orgs,
            "[[org.remove_grant]]\nrole = \"r{ro}\"\npermission = \"{}\"\nactions = [\"{}\"]",
            perm(s, p),
            ACTIONS[a]
        );
        let _ = writeln!(
            orgs,
            "[[org.mode]]\npermission = \"{}\"\nmode = \"report\"\n",
            perm(s, r.below(n_perms))
        );
    }
    // Large directories are written as one array of inline tables: toml's
    // document model costs a few KiB per `[[user]]` header table, but far
    // less per inline table (see docs/policy.md).
    let mut users = String::from("user = [\n");
    for u in 0..s.users {
        let o = r.below(s.orgs);
        let n_roles = 1 + r.below(3);
        let mut names: Vec<String> = Vec::new();
        for _ in 0..n_roles {
            let n = format!("\"r{}\"", r.below(s.roles));
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let _ = writeln!(
            users,
            "  {{ id = \"u{u}\", memberships = [{{ org = \"org{o}\", roles = [{}], region = \"{}\" }}] }},",
            names.join(", "),
            REGIONS[r.below(4)]
        );
    }
    users.push_str("]\n");
    vec![
        SourceFile {
            name: "registry.toml".into(),
            text: reg,
        },
        SourceFile {
            name: "roles.toml".into(),
            text: roles,
        },
        SourceFile {
            name: "orgs.toml".into(),
            text: orgs,
        },
        SourceFile {
            name: "directory.toml".into(),
            text: users,
        },
    ]
}

/// Owned request material; `requests` borrows from it.
pub struct Workload {
    users: Vec<(String, String)>,
    perms: Vec<String>,
    principals: Vec<Principal>,
    shape: Vec<(usize, usize, usize, u8)>,
}

/// `n` realistic requests: known users in their org, random permissions and
/// actions, resources in the same org with owner/region set, a few
/// token principals.
pub fn workload(s: &Scale, snapshot: &warden::policy::Snapshot, n: usize) -> Workload {
    let mut r = Rng(0xbeef);
    let n_perms = s.modules * s.perms_per_module;
    let mut users = Vec::new();
    let mut principals = Vec::new();
    let mut shape = Vec::new();
    let mut perms = Vec::new();
    for i in 0..n {
        let u = format!("u{}", r.below(s.users));
        let org = snapshot
            .orgs_of(&u)
            .first()
            .map(|o| o.to_string())
            .unwrap_or_default();
        let roles: Vec<String> = snapshot
            .roles_of(&u, &org)
            .unwrap_or_default()
            .into_iter()
            .map(String::from)
            .collect();
        principals.push(Principal {
            user_id: u.clone(),
            org_id: org.clone(),
            roles,
            mfa: i % 2 == 0,
        });
        users.push((u, org));
        perms.push(perm(s, r.below(n_perms)));
        shape.push((i, i, i, (r.below(4) as u8) | if i % 8 == 0 { 4 } else { 0 }));
    }
    Workload {
        users,
        perms,
        principals,
        shape,
    }
}

impl Workload {
    pub fn len(&self) -> usize {
        self.shape.len()
    }

    pub fn request(&self, i: usize) -> Request<'_> {
        let (u, p, pr, bits) = self.shape[i];
        let (user, org) = &self.users[u];
        let subject = if bits & 4 != 0 {
            Subject::Principal(&self.principals[pr])
        } else {
            Subject::User {
                user_id: user,
                org_id: org,
                mfa: true,
            }
        };
        Request {
            subject,
            permission: &self.perms[p],
            action: ACTIONS[(bits & 3) as usize],
            surface: Surface::Http,
            resource: Some(Resource {
                org_id: Some(org),
                owner_id: Some(user),
                assignee_id: None,
                region: Some(REGIONS[i % 4]),
            }),
        }
    }
}
