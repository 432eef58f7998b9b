//! Property tests: random registries and requests, checked against a naive
//! reference evaluator written straight from `docs/policy.md`.

use super::*;
use proptest::prelude::*;
use std::fmt::Write as _;

/// Small deterministic generator so one `u64` seed yields a whole registry.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn mask(&mut self, bits: u32) -> u8 {
        (self.next() % (1 << bits)) as u8
    }
}

#[derive(Debug, Clone)]
struct MPerm {
    actions: u8,
    surfaces: u8,
    mfa: u8,
    report: bool,
}

type MGrant = (usize, u8, Scope);
/// A user's memberships: (org, role names, region).
type MUser = Vec<(usize, Vec<String>, Option<&'static str>)>;
/// Owned material of one request.
type ReqItem = (
    Option<Principal>,
    [String; 4],
    Surface,
    Option<[Option<String>; 4]>,
    bool,
);

#[derive(Debug, Clone, Default)]
struct MOrg {
    role: Option<Vec<MGrant>>,
    adds: Vec<(String, usize, u8, Scope)>,
    removes: Vec<(String, usize, u8)>,
    modes: Vec<(usize, bool)>,
}

#[derive(Debug, Clone)]
struct Model {
    perms: Vec<MPerm>,
    roles: Vec<Vec<MGrant>>,
    orgs: Vec<MOrg>,
    /// Per user: (org, role names, region).
    users: Vec<MUser>,
}

const REGIONS: [&str; 2] = ["n", "s"];

fn scope_of(i: usize) -> Scope {
    Scope::ALL[i % 4]
}

impl Model {
    fn gen(seed: u64) -> Model {
        let mut r = Rng(seed | 1);
        let perms: Vec<MPerm> = (0..1 + r.below(5))
            .map(|_| {
                let actions = r.mask(4).max(1);
                MPerm {
                    actions,
                    surfaces: r.mask(5).max(1),
                    mfa: r.mask(4) & actions,
                    report: r.chance(20),
                }
            })
            .collect();
        let grants = |r: &mut Rng| -> Vec<MGrant> {
            (0..r.below(5))
                .filter_map(|_| {
                    let p = r.below(perms.len());
                    let a = r.mask(4) & perms[p].actions;
                    (a != 0).then(|| (p, a, scope_of(r.below(4))))
                })
                .collect()
        };
        let roles: Vec<Vec<MGrant>> = (0..1 + r.below(4)).map(|_| grants(&mut r)).collect();
        let n_orgs = 1 + r.below(3);
        let mut model = Model {
            perms: perms.clone(),
            roles,
            orgs: Vec::new(),
            users: Vec::new(),
        };
        for o in 0..n_orgs {
            let mut org = MOrg {
                role: r.chance(50).then(|| grants(&mut r)),
                ..Default::default()
            };
            let role_names: Vec<String> = (0..model.roles.len())
                .map(|i| format!("r{i}"))
                .chain(org.role.is_some().then(|| format!("x{o}")))
                .collect();
            for _ in 0..r.below(3) {
                let p = r.below(perms.len());
                let a = r.mask(4) & perms[p].actions;
                if a != 0 {
                    org.adds.push((
                        role_names[r.below(role_names.len())].clone(),
                        p,
                        a,
                        scope_of(r.below(4)),
                    ));
                }
            }
            model.orgs.push(org);
            // Removes must remove something, or the registry is invalid.
            for _ in 0..r.below(3) {
                let role = role_names[r.below(role_names.len())].clone();
                let p = r.below(perms.len());
                let a = r.mask(4) & perms[p].actions;
                let removable = Action::ALL
                    .iter()
                    .any(|x| a & x.bit() != 0 && model.cell_before_adds(o, &role, p, *x) != 0);
                if a != 0 && removable {
                    model.orgs[o].removes.push((role, p, a));
                }
            }
            for p in 0..perms.len() {
                if r.chance(15) {
                    model.orgs[o].modes.push((p, r.chance(50)));
                }
            }
        }
        for _ in 0..1 + r.below(5) {
            let mut ms = Vec::new();
            for o in 0..n_orgs {
                if r.chance(60) {
                    let mut names: Vec<String> = Vec::new();
                    for _ in 0..r.below(3) {
                        let i = r.below(model.roles.len() + 1);
                        let n = if i == model.roles.len() {
                            if model.orgs[o].role.is_none() {
                                continue;
                            }
                            format!("x{o}")
                        } else {
                            format!("r{i}")
                        };
                        if !names.contains(&n) {
                            names.push(n);
                        }
                    }
                    ms.push((o, names, r.chance(60).then(|| REGIONS[r.below(2)])));
                }
            }
            model.users.push(ms);
        }
        model
    }

    fn role_grants(&self, org: usize, role: &str) -> Option<&Vec<MGrant>> {
        if let Some(i) = role.strip_prefix('r') {
            return self.roles.get(i.parse::<usize>().ok()?);
        }
        if role == format!("x{org}") {
            return self.orgs[org].role.as_ref();
        }
        None
    }

    /// Scope bits after the role's own grants and all org removes.
    fn cell_before_adds(&self, org: usize, role: &str, p: usize, a: Action) -> u8 {
        let Some(gs) = self.role_grants(org, role) else {
            return 0;
        };
        let mut bits = gs
            .iter()
            .filter(|g| g.0 == p && g.1 & a.bit() != 0)
            .fold(0, |m, g| m | g.2.bit());
        for (rr, rp, ra) in &self.orgs[org].removes {
            if rr == role && *rp == p && ra & a.bit() != 0 {
                bits = 0;
            }
        }
        bits
    }

    fn cell(&self, org: usize, role: &str, p: usize, a: Action) -> u8 {
        let mut bits = self.cell_before_adds(org, role, p, a);
        for (rr, rp, ra, s) in &self.orgs[org].adds {
            if rr == role && *rp == p && ra & a.bit() != 0 {
                bits |= s.bit();
            }
        }
        bits
    }

    fn render(&self) -> String {
        let mut t = String::from("[[module]]\nname = \"m\"\n");
        let names = |mask: u8, all: &[&str]| -> String {
            all.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let acts = ["read", "write", "approve", "export"];
        let surf = ["http", "task", "cli", "bot", "internal"];
        for (i, p) in self.perms.iter().enumerate() {
            let _ = writeln!(t, "[[permission]]\nname = \"m.p{i}\"\ndescription = \"p\"\nactions = [{}]\nsurfaces = [{}]\nmfa = [{}]\nmode = \"{}\"",
                names(p.actions, &acts), names(p.surfaces, &surf), names(p.mfa, &acts), if p.report { "report" } else { "enforce" });
        }
        let grants = |gs: &[MGrant]| -> String {
            gs.iter()
                .map(|(p, a, s)| {
                    format!(
                        "{{ permission = \"m.p{p}\", actions = [{}], scope = \"{s}\" }}",
                        names(*a, &acts)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (i, gs) in self.roles.iter().enumerate() {
            let _ = writeln!(t, "[[role]]\nname = \"r{i}\"\ngrants = [{}]", grants(gs));
        }
        for (o, org) in self.orgs.iter().enumerate() {
            let _ = writeln!(t, "[[org]]\nid = \"o{o}\"");
            if let Some(gs) = &org.role {
                let _ = writeln!(
                    t,
                    "[[org.role]]\nname = \"x{o}\"\ngrants = [{}]",
                    grants(gs)
                );
            }
            for (r, p, a, s) in &org.adds {
                let _ = writeln!(t, "[[org.add_grant]]\nrole = \"{r}\"\npermission = \"m.p{p}\"\nactions = [{}]\nscope = \"{s}\"", names(*a, &acts));
            }
            for (r, p, a) in &org.removes {
                let _ = writeln!(
                    t,
                    "[[org.remove_grant]]\nrole = \"{r}\"\npermission = \"m.p{p}\"\nactions = [{}]",
                    names(*a, &acts)
                );
            }
            for (p, report) in &org.modes {
                let _ = writeln!(
                    t,
                    "[[org.mode]]\npermission = \"m.p{p}\"\nmode = \"{}\"",
                    if *report { "report" } else { "enforce" }
                );
            }
        }
        for (u, ms) in self.users.iter().enumerate() {
            let ms: Vec<String> = ms
                .iter()
                .map(|(o, roles, region)| {
                    let roles = roles
                        .iter()
                        .map(|r| format!("\"{r}\""))
                        .collect::<Vec<_>>()
                        .join(", ");
                    match region {
                        Some(reg) => {
                            format!("{{ org = \"o{o}\", roles = [{roles}], region = \"{reg}\" }}")
                        }
                        None => format!("{{ org = \"o{o}\", roles = [{roles}] }}"),
                    }
                })
                .collect();
            let _ = writeln!(
                t,
                "[[user]]\nid = \"u{u}\"\nmemberships = [{}]",
                ms.join(", ")
            );
        }
        t
    }

    /// The reference evaluator: (allow, reason, enforced).
    fn decide(&self, q: &Request<'_>) -> (bool, Reason, bool) {
        let deny = |r| (false, r, true);
        let Some(p) = q
            .permission
            .strip_prefix("m.p")
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < self.perms.len() && q.permission == format!("m.p{i}"))
        else {
            return deny(Reason::UnknownPermission);
        };
        let perm = &self.perms[p];
        let Some(a) = Action::parse(q.action).filter(|a| perm.actions & a.bit() != 0) else {
            return deny(Reason::UnknownAction);
        };
        let org_ix = |o: &str| {
            o.strip_prefix('o')
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|&i| i < self.orgs.len() && o == format!("o{i}"))
        };
        let (user, org, roles, region, mfa): (String, usize, Vec<String>, Option<&str>, bool) =
            match q.subject {
                Subject::User {
                    user_id,
                    org_id,
                    mfa,
                } => {
                    let Some(u) = user_id
                        .strip_prefix('u')
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|&i| i < self.users.len() && user_id == format!("u{i}"))
                    else {
                        return deny(Reason::UnknownSubject);
                    };
                    let Some(o) = org_ix(org_id) else {
                        return deny(Reason::UnknownSubject);
                    };
                    let Some(m) = self.users[u].iter().find(|m| m.0 == o) else {
                        return deny(Reason::UnknownSubject);
                    };
                    (user_id.to_string(), o, m.1.clone(), m.2, mfa)
                }
                Subject::Principal(pr) => {
                    let Some(o) = org_ix(&pr.org_id) else {
                        return deny(Reason::UnknownSubject);
                    };
                    let region = pr
                        .user_id
                        .strip_prefix('u')
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|&i| i < self.users.len() && pr.user_id == format!("u{i}"))
                        .and_then(|u| self.users[u].iter().find(|m| m.0 == o))
                        .and_then(|m| m.2);
                    (pr.user_id.clone(), o, pr.roles.clone(), region, pr.mfa)
                }
                _ => unreachable!("generator only makes user and principal subjects"),
            };
        let report = self.orgs[org]
            .modes
            .iter()
            .find(|m| m.0 == p)
            .map_or(perm.report, |m| m.1);
        let verdict = |r: Reason| {
            if r == Reason::Granted {
                (true, r, true)
            } else if report {
                (true, r, false)
            } else {
                (false, r, true)
            }
        };
        let res = q.resource.unwrap_or_default();
        if res.org_id.is_some_and(|o| o != format!("o{org}")) {
            return deny(Reason::CrossOrg);
        }
        if perm.surfaces & q.surface.bit() == 0 {
            return verdict(Reason::SurfaceDenied);
        }
        let (mut ok, mut near_region, mut near_other) = (false, false, false);
        for role in &roles {
            let bits = self.cell(org, role, p, a);
            for s in Scope::ALL {
                if bits & s.bit() == 0 {
                    continue;
                }
                let sat = match s {
                    Scope::Org => true,
                    Scope::Region => region.is_some() && res.region == region,
                    Scope::Assigned => res.assignee_id == Some(user.as_str()),
                    Scope::Own => res.owner_id == Some(user.as_str()),
                };
                ok |= sat;
                near_region |= !sat && *s == Scope::Region;
                near_other |= !sat && *s != Scope::Region;
            }
        }
        if !ok {
            return verdict(if near_region {
                Reason::OutOfRegion
            } else if near_other {
                Reason::NotOwner
            } else {
                Reason::NoGrant
            });
        }
        if perm.mfa & a.bit() != 0 && !mfa {
            return verdict(Reason::MfaRequired);
        }
        verdict(Reason::Granted)
    }
}

/// Owned request material the generated `Request`s borrow from.
struct Reqs {
    items: Vec<ReqItem>,
}

fn gen_requests(m: &Model, seed: u64, n: usize) -> Reqs {
    let mut r = Rng(seed.rotate_left(17) | 1);
    let pick = |r: &mut Rng, prefix: &str, n: usize| -> String {
        // Mostly known names, sometimes unknown ones (including near misses).
        match r.below(10) {
            0 => format!("{prefix}{n}"),
            1 => format!("{prefix}X"),
            _ => format!("{prefix}{}", r.below(n.max(1))),
        }
    };
    let items = (0..n)
        .map(|_| {
            let user = pick(&mut r, "u", m.users.len());
            let org = pick(&mut r, "o", m.orgs.len());
            let perm = pick(&mut r, "m.p", m.perms.len());
            let action = ["read", "write", "approve", "export", "delete"][r.below(5)].to_string();
            let principal = r.chance(30).then(|| Principal {
                user_id: user.clone(),
                org_id: org.clone(),
                roles: (0..r.below(3))
                    .map(|_| {
                        if r.chance(20) {
                            format!("x{}", r.below(3))
                        } else {
                            pick(&mut r, "r", m.roles.len())
                        }
                    })
                    .collect(),
                mfa: r.chance(50),
            });
            let resource = r.chance(70).then(|| {
                let opt = |r: &mut Rng, v: String| r.chance(50).then_some(v);
                let ro = pick(&mut r, "o", m.orgs.len());
                let rown = pick(&mut r, "u", m.users.len());
                let rass = pick(&mut r, "u", m.users.len());
                let rreg = REGIONS[r.below(2)].to_string();
                [
                    opt(&mut r, ro),
                    opt(&mut r, rown),
                    opt(&mut r, rass),
                    opt(&mut r, rreg),
                ]
            });
            (
                principal,
                [user, org, perm, action],
                Surface::ALL[r.below(5)],
                resource,
                r.chance(50),
            )
        })
        .collect();
    Reqs { items }
}

impl Reqs {
    fn each(&self, mut f: impl FnMut(Request<'_>)) {
        for (principal, [user, org, perm, action], surface, res, mfa) in &self.items {
            let subject = match principal {
                Some(p) => Subject::Principal(p),
                None => Subject::User {
                    user_id: user,
                    org_id: org,
                    mfa: *mfa,
                },
            };
            let resource = res.as_ref().map(|[o, ow, a, r]| Resource {
                org_id: o.as_deref(),
                owner_id: ow.as_deref(),
                assignee_id: a.as_deref(),
                region: r.as_deref(),
            });
            f(Request {
                subject,
                permission: perm,
                action,
                surface: *surface,
                resource,
            });
        }
    }
}

fn compiled(m: &Model) -> Snapshot {
    let text = m.render();
    match load(&[SourceFile {
        name: "gen.toml".into(),
        text: text.clone(),
    }]) {
        Ok(s) => s,
        Err(e) => panic!("generated registry is invalid: {e}\n{text}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn decisions_equal_the_reference_evaluator(seed in any::<u64>()) {
        let m = Model::gen(seed);
        let s = compiled(&m);
        gen_requests(&m, seed, 60).each(|q| {
            let d = s.decide(&q);
            assert_eq!((d.allow, d.reason, d.enforced), m.decide(&q), "request {q:?}\nregistry:\n{}", m.render());
            // Explain never changes the answer.
            assert_eq!(s.explain(&q).0, d);
        });
    }

    #[test]
    fn never_allows_across_orgs(seed in any::<u64>()) {
        let m = Model::gen(seed);
        let s = compiled(&m);
        gen_requests(&m, seed, 60).each(|q| {
            let d = s.decide(&q);
            let subject_org = match q.subject {
                Subject::User { org_id, .. } => org_id.to_string(),
                Subject::Principal(p) => p.org_id.clone(),
                _ => unreachable!(),
            };
            if let Some(o) = q.resource.and_then(|r| r.org_id) {
                if o != subject_org {
                    assert!(!d.allow, "allowed across orgs: {q:?} -> {d:?}");
                }
            }
        });
    }

    #[test]
    fn unknown_names_always_deny(seed in any::<u64>(), junk in "[a-z._]{0,12}") {
        let m = Model::gen(seed);
        let s = compiled(&m);
        let user = Subject::User { user_id: "u0", org_id: "o0", mfa: true };
        for (perm, action) in [(junk.as_str(), "read"), ("m.p0", junk.as_str())] {
            for surface in Surface::ALL {
                let q = Request { subject: user, permission: perm, action, surface: *surface, resource: None };
                let d = s.decide(&q);
                let known = s.perm_ix.contains_key(perm) && Action::parse(action).is_some();
                if !known {
                    prop_assert!(!d.allow && d.enforced, "{q:?} -> {d:?}");
                    prop_assert!(matches!(d.reason, Reason::UnknownPermission | Reason::UnknownAction));
                }
            }
        }
        let ghost = Subject::User { user_id: &junk, org_id: "o0", mfa: true };
        let q = Request { subject: ghost, permission: "m.p0", action: "read", surface: Surface::Http, resource: None };
        if !s.user_ix.contains_key(junk.as_str()) {
            let d = s.decide(&q);
            prop_assert!(!d.allow && matches!(d.reason, Reason::UnknownSubject | Reason::UnknownAction), "{:?}", d);
        }
    }
}

/// Registry text from a small grammar of plausible and broken fragments.
fn fragments() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("[[module]]\nname = \"m\"\n".to_string()),
        Just("[[permission]]\nname = \"m.p\"\ndescription = \"\"\nactions = [\"read\"]\nsurfaces = [\"http\"]\n".to_string()),
        Just("[[role]]\nname = \"r\"\ngrants = [{ permission = \"m.p\", actions = [\"read\"] }]\n".to_string()),
        Just("[[org]]\nid = \"o\"\n".to_string()),
        Just("[[org.remove_grant]]\nrole = \"r\"\npermission = \"m.p\"\n".to_string()),
        Just("[[org.add_grant]]\nrole = \"r\"\npermission = \"m.p\"\nactions = [\"write\"]\n".to_string()),
        Just("[[org.role]]\nname = \"x\"\n".to_string()),
        Just("[[user]]\nid = \"u\"\nmemberships = [{ org = \"o\", roles = [\"r\", \"x\"] }]\n".to_string()),
        Just("[[bot]]\nplatform = \"t\"\nid = \"1\"\nuser = \"u\"\n".to_string()),
        Just("[[cli]]\nuid = 1\nuser = \"u\"\n".to_string()),
        Just("[settings]\nlockout_share = 2.0\n".to_string()),
        "[a-z\\[\\]=\"\\.\n {},_]{0,40}",
    ];
    proptest::collection::vec(frag, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Operators edit these files by hand: whatever they write, the parser
    /// and validator answer with problems, never a panic.
    #[test]
    fn any_registry_text_is_accepted_or_reported_never_a_panic(a in fragments(), b in fragments()) {
        let files = [
            SourceFile { name: "a.toml".into(), text: a },
            SourceFile { name: "b.toml".into(), text: b },
        ];
        match load(&files) {
            Ok(s) => {
                // A compiled snapshot answers anything without panicking.
                let q = Request { subject: Subject::User { user_id: "u", org_id: "o", mfa: false }, permission: "m.p", action: "read", surface: Surface::Http, resource: None };
                let _ = s.explain(&q);
            }
            Err(e) => prop_assert!(!e.problems().is_empty()),
        }
    }
}
