use super::*;

fn rules(toml_text: &str) -> Result<Config, Problems> {
    #[derive(serde::Deserialize)]
    struct Wrap {
        callers: Vec<RawRule>,
    }
    let w: Wrap = toml::from_str(toml_text).unwrap();
    let mut p = Problems::default();
    Config::from_raw(w.callers, &mut p).ok_or(p)
}

fn peer(uid: u32, gid: u32) -> Peer {
    Peer {
        uid,
        gid,
        pid: Some(1),
    }
}

#[test]
fn union_of_matching_rules() {
    let cfg = rules(
        r#"
        [[callers]]
        uids = [1000]
        allow = ["check"]
        [[callers]]
        gids = [2000]
        allow = ["tokens", "audit_write"]
        "#,
    )
    .unwrap();
    let acl = cfg.resolve().unwrap();
    let both = acl.allowed(&peer(1000, 2000));
    assert!(both.contains(Op::Check) && both.contains(Op::Tokens) && both.contains(Op::AuditWrite));
    assert!(!both.contains(Op::Admin));
    let gid_only = acl.allowed(&peer(4242, 2000));
    assert!(!gid_only.contains(Op::Check) && gid_only.contains(Op::Tokens));
    assert_eq!(acl.allowed(&peer(4242, 4242)), OpSet::EMPTY);
}

#[test]
fn all_grants_every_class() {
    let acl = rules("[[callers]]\nagent_user = true\nallow = [\"all\"]\n")
        .unwrap()
        .resolve()
        .unwrap();
    let me = nix::unistd::getuid().as_raw();
    for op in Op::ALL {
        assert!(acl.allowed(&peer(me, 99999)).contains(op));
    }
}

#[test]
fn problems_are_all_reported() {
    let p = rules(
        r#"
        [[callers]]
        allow = ["chek"]
        uids = [1]
        [[callers]]
        allow = ["check"]
        "#,
    )
    .unwrap_err();
    assert_eq!(p.items().len(), 2, "{p}");
    assert!(p.items()[0].contains("chek"));
    assert!(p.items()[1].contains("matches nobody"));
}

#[test]
fn unknown_names_fail_resolution() {
    let cfg = rules("[[callers]]\nusers = [\"no-such-user-xyz\"]\nallow = [\"check\"]\n").unwrap();
    assert!(matches!(cfg.resolve(), Err(Error::UnknownUser { .. })));
    let cfg =
        rules("[[callers]]\ngroups = [\"no-such-group-xyz\"]\nallow = [\"check\"]\n").unwrap();
    assert!(matches!(cfg.resolve(), Err(Error::UnknownGroup { .. })));
}

#[test]
fn names_resolve_through_the_user_database() {
    let cfg = rules("[[callers]]\nusers = [\"root\"]\ngroups = [\"root\"]\nallow = [\"admin\"]\n")
        .unwrap();
    let acl = cfg.resolve().unwrap();
    assert!(acl.allowed(&peer(0, 12345)).contains(Op::Admin));
    assert!(acl.allowed(&peer(12345, 0)).contains(Op::Admin));
}
