//! The policy CLI: `warden check` against a running agent (exit 0 allow,
//! 1 deny) and the offline `warden policy validate|test|diff`.

use crate::support::{repo_root, short_tempdir, warden_bin, Daemon};
use std::process::{Command, Output};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn offline(args: &[&str]) -> Output {
    Command::new(warden_bin())
        .args(args)
        .env_clear()
        .output()
        .expect("run warden")
}

#[test]
fn check_prints_the_decision_and_exits_by_it() {
    let d = Daemon::start();
    let o = d.cli(&[
        "check",
        "--user",
        "alice",
        "--org",
        "acme",
        "inventory.adjust_stock:write",
        "--surface",
        "http",
        "--resource",
        "region=north",
        "--explain",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("allow (granted)"), "{out}");
    assert!(out.contains("matched: role inventory_supervisor grants inventory.adjust_stock:write scope region (global)"), "{out}");
    assert!(out.contains("subject"), "explain trace printed: {out}");
    let o = d.cli(&[
        "check",
        "--user",
        "erin",
        "--org",
        "acme",
        "finance.approve_payment:read",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("deny (no_grant)"));
    let o = d.cli(&[
        "check",
        "--user",
        "erin",
        "--org",
        "acme",
        "inventory.manage_items:write",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o).contains("[report mode: not enforced]"),
        "{}",
        text(&o)
    );
    let o = d.cli(&["check", "--user", "erin", "--org", "acme", "no-action"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
}

#[test]
fn policy_validate_reports_file_and_line() {
    let root = repo_root().join("config/policies");
    let o = offline(&["policy", "validate", root.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("valid; version"));
    let tmp = short_tempdir();
    std::fs::write(tmp.path().join("a.toml"), "[[module]]\nname = \"m\"\n[[permission]]\nname = \"m.x\"\ndescription = \"\"\nactions = [\"read\"]\nsurfaces = [\"http\"]\n[[role]]\nname = \"r\"\ngrants = [{ permission = \"m.y\", actions = [\"read\"] }]\n[[org]]\nid = \"o\"\n[[org.add_grant]]\nrole = \"r\"\npermission = \"m.z\"\nactions = [\"read\"]\n").unwrap();
    let o = offline(&["policy", "validate", tmp.path().to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("a.toml:10: role `r` references unknown permission `m.y`"),
        "{out}"
    );
    assert!(
        out.contains("a.toml:15: org `o` override references unknown permission `m.z`"),
        "{out}"
    );
}

#[test]
fn policy_test_runs_the_shipped_cases() {
    let root = repo_root().join("config/policies");
    let o = offline(&["policy", "test", root.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    // A wrong expectation fails with its file and line.
    let tmp = short_tempdir();
    let dir = tmp.path().join("p");
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    for f in ["registry.toml", "roles.toml", "directory.toml"] {
        std::fs::copy(root.join(f), dir.join(f)).unwrap();
    }
    std::fs::create_dir_all(dir.join("orgs")).unwrap();
    for f in ["acme.toml", "globex.toml", "initech.toml"] {
        std::fs::copy(root.join("orgs").join(f), dir.join("orgs").join(f)).unwrap();
    }
    std::fs::write(dir.join("tests/t.toml"), "[[case]]\nname = \"wrong\"\nsubject = { user_id = \"erin\", org_id = \"acme\" }\npermission = \"finance.approve_payment\"\naction = \"read\"\nallow = true\n").unwrap();
    let o = offline(&["policy", "test", dir.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAILED wrong")
            && out.contains("t.toml:2")
            && out.contains("got deny (no_grant)"),
        "{out}"
    );
}

#[test]
fn policy_diff_lists_changed_grants_and_warns_on_lockout() {
    let root = repo_root().join("config/policies");
    let tmp = short_tempdir();
    let new = tmp.path().join("new");
    std::fs::create_dir_all(new.join("orgs")).unwrap();
    for f in [
        "registry.toml",
        "directory.toml",
        "orgs/acme.toml",
        "orgs/globex.toml",
        "orgs/initech.toml",
    ] {
        std::fs::copy(root.join(f), new.join(f)).unwrap();
    }
    let roles = std::fs::read_to_string(root.join("roles.toml")).unwrap();
    std::fs::write(
        new.join("roles.toml"),
        roles.replace(
            "{ permission = \"inventory.view_stock\", actions = [\"read\"] },",
            "",
        ),
    )
    .unwrap();
    let o = offline(&[
        "policy",
        "diff",
        root.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("acme\tinventory_clerk\tinventory.view_stock:read\torg -> -"),
        "{out}"
    );
    assert!(out.contains("warning: lockout: org `acme`"), "{out}");
    let o = offline(&[
        "policy",
        "validate",
        new.to_str().unwrap(),
        "--baseline",
        root.to_str().unwrap(),
        "--strict",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("warning: lockout"));
}

#[test]
fn check_as_the_calling_os_user() {
    let tmp = short_tempdir();
    let dir = tmp.path().join("p");
    let root = repo_root().join("config/policies");
    std::fs::create_dir_all(dir.join("orgs")).unwrap();
    for f in [
        "registry.toml",
        "roles.toml",
        "directory.toml",
        "orgs/acme.toml",
        "orgs/globex.toml",
        "orgs/initech.toml",
    ] {
        std::fs::copy(root.join(f), dir.join(f)).unwrap();
    }
    let uid = nix::unistd::getuid().as_raw();
    std::fs::write(
        dir.join("me.toml"),
        format!("[[cli]]\nuid = {uid}\nuser = \"bob\"\n"),
    )
    .unwrap();
    let d = Daemon::builder()
        .set("policy.dir", dir.to_string_lossy().to_string())
        .start();
    let o = d.cli(&["check", "--peer", "inventory.adjust_stock:write"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("role inventory_clerk"), "{}", text(&o));
    let o = d.cli(&["check", "--peer", "finance.approve_payment:approve"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}
