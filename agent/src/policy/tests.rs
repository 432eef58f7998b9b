use super::*;
use std::path::Path;

/// Reads a registry directory the way the file source does (tests may do I/O).
pub(crate) fn read_dir(root: &Path) -> (Vec<SourceFile>, Vec<SourceFile>) {
    fn walk(root: &Path, dir: &Path, reg: &mut Vec<SourceFile>, cases: &mut Vec<SourceFile>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, reg, cases);
            } else if p.extension().is_some_and(|e| e == "toml") {
                let name = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let f = SourceFile {
                    text: std::fs::read_to_string(&p).unwrap(),
                    name: name.clone(),
                };
                if name.starts_with("tests/") {
                    cases.push(f)
                } else {
                    reg.push(f)
                }
            }
        }
    }
    let (mut reg, mut cases) = (Vec::new(), Vec::new());
    walk(root, root, &mut reg, &mut cases);
    (reg, cases)
}

pub(crate) fn example_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policies")
}

pub(crate) fn example() -> Snapshot {
    load(&read_dir(&example_dir()).0).unwrap()
}

fn file(name: &str, text: &str) -> SourceFile {
    SourceFile {
        name: name.into(),
        text: text.into(),
    }
}

const SMALL: &str = r#"
[[module]]
name = "inv"
[[permission]]
name = "inv.stock"
description = "stock"
actions = ["read", "write", "approve"]
surfaces = ["http", "cli"]
mfa = ["approve"]
[[permission]]
name = "inv.legacy"
description = "legacy"
actions = ["write"]
surfaces = ["http"]
mode = "report"
[[role]]
name = "clerk"
grants = [
  { permission = "inv.stock", actions = ["read"] },
  { permission = "inv.stock", actions = ["write"], scope = "own" },
  { permission = "inv.stock", actions = ["approve"], scope = "region" },
]
[[role]]
name = "boss"
grants = [{ permission = "inv.stock", actions = ["read", "write", "approve"] }]
[[org]]
id = "a"
[[org]]
id = "b"
[[org.remove_grant]]
role = "clerk"
permission = "inv.stock"
actions = ["write"]
[[user]]
id = "u1"
memberships = [{ org = "a", roles = ["clerk"], region = "n" }, { org = "b", roles = ["clerk"] }]
[[user]]
id = "u2"
memberships = [{ org = "a", roles = ["boss"] }]
"#;

fn small() -> Snapshot {
    load(&[file("small.toml", SMALL)]).unwrap()
}

fn user<'a>(u: &'a str, o: &'a str) -> Subject<'a> {
    Subject::User {
        user_id: u,
        org_id: o,
        mfa: false,
    }
}

fn req<'a>(s: Subject<'a>, p: &'a str, a: &'a str, r: Option<Resource<'a>>) -> Request<'a> {
    Request {
        subject: s,
        permission: p,
        action: a,
        surface: Surface::Http,
        resource: r,
    }
}

/// Table helper: (request, allow, reason).
fn check(s: &Snapshot, r: Request<'_>, allow: bool, reason: Reason) {
    let d = s.decide(&r);
    assert_eq!((d.allow, d.reason), (allow, reason), "{r:?}");
}

#[test]
fn example_registry_compiles_and_its_cases_pass() {
    let (reg, cases) = read_dir(&example_dir());
    let snap = load(&reg).unwrap();
    assert!(snap.user_count() >= 30, "a few dozen users");
    assert_eq!(snap.org_count(), 3);
    let cases = parse_cases(&cases).unwrap();
    assert!(cases.len() >= 30);
    let report = run_cases(&snap, &cases);
    for o in report.outcomes.iter().filter(|o| !o.passed) {
        eprintln!(
            "{}:{} {}: expected {}, got {}",
            o.file, o.line, o.name, o.expected, o.got
        );
    }
    assert_eq!(report.failed(), 0);
    // Every engine reason is exercised by the shipped cases.
    for r in Reason::ALL
        .iter()
        .filter(|r| !matches!(r, Reason::SessionRevoked | Reason::TokenInvalid))
    {
        assert!(
            cases.iter().any(|c| c.reason == Some(*r)),
            "no case for {r}"
        );
    }
}

#[test]
fn decision_table() {
    let s = small();
    let own = |o: &'static str, owner: &'static str| {
        Some(Resource {
            org_id: Some(o),
            owner_id: Some(owner),
            ..Default::default()
        })
    };
    check(
        &s,
        req(user("u1", "a"), "inv.stock", "read", None),
        true,
        Reason::Granted,
    );
    check(
        &s,
        req(user("u1", "a"), "inv.stock", "write", own("a", "u1")),
        true,
        Reason::Granted,
    );
    check(
        &s,
        req(user("u1", "a"), "inv.stock", "write", own("a", "u2")),
        false,
        Reason::NotOwner,
    );
    check(
        &s,
        req(user("u1", "a"), "inv.stock", "write", None),
        false,
        Reason::NotOwner,
    );
    check(
        &s,
        req(user("u1", "b"), "inv.stock", "write", own("b", "u1")),
        false,
        Reason::NoGrant,
    );
    check(
        &s,
        req(user("u1", "a"), "inv.stock", "read", own("b", "u1")),
        false,
        Reason::CrossOrg,
    );
    check(
        &s,
        req(user("u1", "a"), "inv.nope", "read", None),
        false,
        Reason::UnknownPermission,
    );
    check(
        &s,
        req(user("u1", "a"), "inv.stock", "export", None),
        false,
        Reason::UnknownAction,
    );
    check(
        &s,
        req(user("u1", "a"), "inv.stock", "READ", None),
        false,
        Reason::UnknownAction,
    );
    check(
        &s,
        req(user("zz", "a"), "inv.stock", "read", None),
        false,
        Reason::UnknownSubject,
    );
    check(
        &s,
        req(user("u2", "b"), "inv.stock", "read", None),
        false,
        Reason::UnknownSubject,
    );
    let region = |r: &'static str| {
        Some(Resource {
            region: Some(r),
            ..Default::default()
        })
    };
    check(
        &s,
        req(user("u1", "a"), "inv.stock", "approve", region("s")),
        false,
        Reason::OutOfRegion,
    );
    check(
        &s,
        req(user("u1", "a"), "inv.stock", "approve", region("n")),
        false,
        Reason::MfaRequired,
    );
    let mfa = Subject::User {
        user_id: "u1",
        org_id: "a",
        mfa: true,
    };
    check(
        &s,
        req(mfa, "inv.stock", "approve", region("n")),
        true,
        Reason::Granted,
    );
    let mut cli = req(user("u2", "a"), "inv.stock", "read", None);
    cli.surface = Surface::Bot;
    check(&s, cli, false, Reason::SurfaceDenied);
    cli.surface = Surface::Cli;
    check(&s, cli, true, Reason::Granted);
}

#[test]
fn matched_grant_names_role_scope_and_source() {
    let s = small();
    let r = Resource {
        owner_id: Some("u1"),
        ..Default::default()
    };
    let d = s.decide(&req(user("u1", "a"), "inv.stock", "write", Some(r)));
    let m = d.matched.unwrap();
    assert_eq!(s.matched_names(&m), ("clerk", "inv.stock", None));
    assert_eq!(
        (m.action, m.scope, m.source),
        (Action::Write, Scope::Own, GrantSource::Global)
    );
    // The broadest satisfied scope wins.
    let d = s.decide(&req(user("u2", "a"), "inv.stock", "write", Some(r)));
    assert_eq!(d.matched.unwrap().scope, Scope::Org);
    // Denials by scope name the grant that came closest.
    let d = s.decide(&req(user("u1", "a"), "inv.stock", "approve", None));
    assert_eq!(d.matched.unwrap().scope, Scope::Region);
    assert!(s
        .decide(&req(user("u1", "a"), "inv.nope", "read", None))
        .matched
        .is_none());
}

#[test]
fn report_mode_allows_with_the_would_be_reason() {
    let s = small();
    let d = s.decide(&req(user("u1", "a"), "inv.legacy", "write", None));
    assert_eq!(
        (d.allow, d.reason, d.enforced),
        (true, Reason::NoGrant, false)
    );
    // Never softens the org boundary or unknown names.
    let r = Resource {
        org_id: Some("b"),
        ..Default::default()
    };
    let d = s.decide(&req(user("u1", "a"), "inv.legacy", "write", Some(r)));
    assert_eq!(
        (d.allow, d.reason, d.enforced),
        (false, Reason::CrossOrg, true)
    );
    let d = s.decide(&req(user("nobody", "a"), "inv.legacy", "write", None));
    assert_eq!((d.allow, d.reason), (false, Reason::UnknownSubject));
}

#[test]
fn principal_roles_come_from_the_token() {
    let s = small();
    let p = Principal {
        user_id: "u1".into(),
        org_id: "a".into(),
        roles: vec!["boss".into(), "ghost".into()],
        mfa: true,
    };
    check(
        &s,
        req(Subject::Principal(&p), "inv.stock", "approve", None),
        true,
        Reason::Granted,
    );
    let p = Principal { roles: vec![], ..p };
    check(
        &s,
        req(Subject::Principal(&p), "inv.stock", "read", None),
        false,
        Reason::NoGrant,
    );
    let p = Principal {
        org_id: "zz".into(),
        ..p
    };
    check(
        &s,
        req(Subject::Principal(&p), "inv.stock", "read", None),
        false,
        Reason::UnknownSubject,
    );
    // A token user unknown to the directory still gets its token roles.
    let p = Principal {
        user_id: "svc".into(),
        org_id: "a".into(),
        roles: vec!["boss".into()],
        mfa: false,
    };
    check(
        &s,
        req(Subject::Principal(&p), "inv.stock", "read", None),
        true,
        Reason::Granted,
    );
}

#[test]
fn explain_traces_every_step() {
    let s = small();
    let (d, trace) = s.explain(&req(user("u1", "a"), "inv.stock", "approve", None));
    assert_eq!(
        d,
        s.decide(&req(user("u1", "a"), "inv.stock", "approve", None))
    );
    let steps: Vec<&str> = trace.iter().map(|t| t.step).collect();
    assert_eq!(
        steps,
        ["permission", "subject", "mode", "grant", "scope", "result"]
    );
    assert!(trace[3].detail.contains("role `clerk`"), "{trace:?}");
    assert!(trace[5].detail.starts_with("deny (out_of_region)"));
}

#[test]
fn batch_answers_in_order() {
    let s = small();
    let reqs = [
        req(user("u1", "a"), "inv.stock", "read", None),
        req(user("u1", "a"), "inv.nope", "read", None),
    ];
    let out = s.decide_batch(&reqs);
    assert_eq!(
        out.iter().map(|d| d.reason).collect::<Vec<_>>(),
        [Reason::Granted, Reason::UnknownPermission]
    );
}

#[test]
fn syntax_errors_carry_file_and_line() {
    let err = load(&[
        file("ok.toml", SMALL),
        file(
            "bad.toml",
            "[[permission]]\nname = \"x.y\"\nactions = [\"read\", \"fly\"]\n",
        ),
    ])
    .unwrap_err();
    let p = err.problems();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].file.as_str(), p[0].line), ("bad.toml", 3), "{p:?}");
    assert!(p[0].message.contains("fly"), "{p:?}");
    let err = load(&[file("u.toml", "[[user]]\nid = \"x\"\nbogus = 1\n")]).unwrap_err();
    assert!(err.to_string().contains("u.toml:"), "{err}");
    assert!(err.to_string().contains("bogus"), "{err}");
    assert!(matches!(load(&[]), Err(Error::Empty)));
}

#[test]
fn validation_reports_all_problems_with_lines() {
    let bad = r#"
[[permission]]
name = "inv.other"
description = "x"
actions = ["read"]
surfaces = ["http"]
mfa = ["write"]

[[org]]
id = "c"
[[org.add_grant]]
role = "clerk"
permission = "inv.missing"
actions = ["read"]
[[org.remove_grant]]
role = "boss"
permission = "inv.legacy"
[[org.mode]]
permission = "inv.gone"
mode = "report"

[[user]]
id = "u3"
memberships = [{ org = "nowhere", roles = ["clerk"] }, { org = "b", roles = ["janitor"] }]

[[bot]]
platform = "tg"
id = "1"
user = "u1"

[[org]]
id = "a"
"#;
    let err = load(&[file("small.toml", SMALL), file("bad.toml", bad)]).unwrap_err();
    let Error::Invalid(problems) = &err else {
        panic!("{err}")
    };
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let expect = [
        ("bad.toml:3:", "requires MFA for an action it does not have"),
        ("bad.toml:32:", "org `a` is defined twice"),
        ("bad.toml:13:", "unknown permission `inv.missing`"),
        (
            "bad.toml:17:",
            "removes `inv.legacy` from role `boss`, which does not grant it",
        ),
        ("bad.toml:19:", "unknown permission `inv.gone`"),
        ("bad.toml:24:", "unknown org `nowhere`"),
        ("bad.toml:24:", "unknown role `janitor`"),
        ("bad.toml:29:", "belongs to 2 orgs; set `org`"),
    ];
    for (at, msg) in expect {
        assert!(
            text.iter().any(|t| t.starts_with(at) && t.contains(msg)),
            "missing {at} {msg} in {text:#?}"
        );
    }
}

#[test]
fn overrides_never_reference_unknown_permissions() {
    let o =
        "[[org]]\nid = \"c\"\n[[org.remove_grant]]\nrole = \"clerk\"\npermission = \"inv.ghost\"\n";
    let err = load(&[file("small.toml", SMALL), file("c.toml", o)]).unwrap_err();
    assert!(
        err.to_string()
            .contains("c.toml:5: org `c` override references unknown permission `inv.ghost`"),
        "{err}"
    );
}

#[test]
fn version_is_a_content_hash_independent_of_file_order() {
    let a = file("a.toml", "[[module]]\nname = \"inv\"\n");
    let rest = SMALL.replace("[[module]]\nname = \"inv\"\n", "");
    let b = file("b.toml", &rest);
    let v1 = load(&[a.clone(), b.clone()]).unwrap().version().to_string();
    let v2 = load(&[b.clone(), a.clone()]).unwrap().version().to_string();
    assert_eq!(v1, v2);
    assert_eq!(v1.len(), 64);
    let c = file("b.toml", &format!("{rest}\n# comment\n"));
    assert_ne!(load(&[a, c]).unwrap().version(), v1);
}

#[test]
fn roles_of_and_directory_lookups() {
    let s = example();
    assert_eq!(
        s.roles_of("alice", "acme"),
        Some(vec!["inventory_supervisor"])
    );
    assert_eq!(s.roles_of("alice", "globex"), None);
    assert_eq!(s.region_of("alice", "acme"), Some("north"));
    assert_eq!(s.orgs_of("frank"), vec!["acme", "globex"]);
    assert_eq!(s.user("svc-bank").map(|u| u.1), Some(UserKind::Service));
    let p = s
        .permissions()
        .find(|p| p.name == "finance.approve_payment")
        .unwrap();
    assert_eq!(p.mfa, vec![Action::Approve]);
    assert_eq!(p.module, "finance");
}

fn edited(from: &str, to: &str) -> Snapshot {
    let (mut reg, _) = read_dir(&example_dir());
    // Prefer the global files: org files repeat some grant lines.
    let f = reg
        .iter_mut()
        .rev()
        .find(|f| f.text.contains(from))
        .unwrap();
    f.text = f.text.replacen(from, to, 1);
    load(&reg).unwrap()
}

#[test]
fn diff_lists_each_changed_grant() {
    let old = example();
    assert!(diff(&old, &old).is_empty());
    let new = edited(
        "{ permission = \"inventory.adjust_stock\", actions = [\"read\", \"write\"] },",
        "{ permission = \"inventory.adjust_stock\", actions = [\"read\"] },",
    );
    let changes = diff(&old, &new);
    // The clerk loses write in every org that does not override it.
    let orgs: Vec<&str> = changes.iter().map(|c| c.org.as_str()).collect();
    assert_eq!(orgs, ["acme", "globex", "initech"], "{changes:#?}");
    assert!(changes.iter().all(|c| c.role == "inventory_clerk"
        && c.action == Action::Write
        && c.after.is_empty()
        && c.before == vec![Scope::Org]));
}

#[test]
fn org_only_changes_stay_in_their_org() {
    let old = example();
    let new = edited(
        "[[org.remove_grant]]\nrole = \"sales_rep\"",
        "[[org.remove_grant]]\nrole = \"support\"",
    );
    let changes = diff(&old, &new);
    assert!(changes.iter().all(|c| c.org == "globex"), "{changes:#?}");
    assert!(changes
        .iter()
        .any(|c| c.role == "sales_rep" && c.after == vec![Scope::Own]));
    assert!(changes
        .iter()
        .any(|c| c.role == "support" && c.after.is_empty()));
}

#[test]
fn lockout_warns_when_many_users_lose_a_grant() {
    let old = example();
    // Removing a rarely held role's grant stays under the threshold.
    let small_change = edited(
        "{ permission = \"finance.invoice\", actions = [\"read\", \"approve\"] },",
        "{ permission = \"finance.invoice\", actions = [\"read\"] },",
    );
    assert!(lockout(&old, &small_change, None).is_empty());
    // Removing read on stock from everyone locks orgs out.
    let (mut reg, _) = read_dir(&example_dir());
    for f in &mut reg {
        f.text = f.text.replace(
            "{ permission = \"inventory.view_stock\", actions = [\"read\"] },",
            "",
        );
        f.text = f.text.replace(
            "{ permission = \"inventory.view_stock\", actions = [\"read\", \"export\"] },",
            "",
        );
    }
    let new = load(&reg).unwrap();
    let warnings = lockout(&old, &new, None);
    assert_eq!(
        warnings.iter().map(|w| w.org.as_str()).collect::<Vec<_>>(),
        ["acme", "globex", "initech"]
    );
    assert!(warnings[0].to_string().contains("lose at least one grant"));
    assert!(lockout(&old, &new, Some(1.0)).is_empty());
}

#[test]
fn changed_users_lists_role_changes_only() {
    let old = example();
    assert!(changed_users(&old, &old).is_empty());
    let new = edited(
        "{ org = \"acme\", roles = [\"inventory_clerk\"], region = \"north\" }",
        "{ org = \"acme\", roles = [\"sales_rep\"], region = \"north\" }",
    );
    assert_eq!(
        changed_users(&old, &new),
        vec![RoleChange {
            user_id: "bob".into(),
            org_id: "acme".into()
        }]
    );
    // A grant change is not a role change.
    let new = edited(
        "{ permission = \"orders.create\", actions = [\"write\"] },",
        "",
    );
    assert!(changed_users(&old, &new).is_empty());
}

#[test]
fn case_files_report_problems_with_lines() {
    let err = parse_cases(&[file("t.toml", "[[case]]\nname = \"x\"\nsubject = { bot = { platform = \"a\", id = \"b\" }, user_id = \"u\" }\npermission = \"p\"\naction = \"read\"\nallow = true\n\n[[case]]\nname = \"y\"\nsubject = { user_id = \"u\", org_id = \"o\" }\npermission = \"p\"\naction = \"read\"\nallow = true\nreason = \"because\"\n")]).unwrap_err();
    let p = err.problems();
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!((p[0].line, p[1].line), (2, 9));
    assert!(p[1].message.contains("unknown reason `because`"));
}

#[test]
fn escaped_names_parse_like_plain_ones() {
    let escaped = SMALL.replace("id = \"u2\"", "id = \"\\u0075\\u0032\"");
    assert_ne!(escaped, SMALL);
    let s = load(&[file("small.toml", &escaped)]).unwrap();
    assert_eq!(s.roles_of("u2", "a"), Some(vec!["boss"]));
}
