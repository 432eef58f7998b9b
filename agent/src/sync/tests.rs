use super::*;
use crate::clock::ManualClock;
use std::time::Duration;

fn copy_example(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policies");
    let contents = files::read_dir(&from).unwrap();
    for f in contents.registry.iter().chain(&contents.cases) {
        let p = to.join(&f.name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &f.text).unwrap();
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    state: PathBuf,
    clock: Arc<ManualClock>,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("policies");
        std::fs::create_dir_all(&dir).unwrap();
        copy_example(&dir);
        Fixture {
            dir,
            state: tmp.path().join("state"),
            _tmp: tmp,
            clock: ManualClock::new(1_000_000),
        }
    }

    fn open(&self) -> Arc<PolicySource> {
        let registry = Registry::new();
        let reloads = IntCounterVec::new(Opts::new("reloads", "r"), &["what", "outcome"]).unwrap();
        let metrics = Metrics::new(&registry, reloads).unwrap();
        let config = Config {
            dir: self.dir.clone(),
            watch: false,
            debounce: Duration::from_millis(50),
        };
        PolicySource::open(
            config,
            Store::open(&self.state).unwrap(),
            self.clock.clone(),
            metrics,
        )
    }

    fn break_file(&self) {
        std::fs::write(self.dir.join("roles.toml"), "[[role]]\nname = \"x\"\ngrants = [{ permission = \"nope.nope\", actions = [\"read\"] }]\n").unwrap();
    }
}

#[test]
fn loads_files_and_caches_them() {
    let fx = Fixture::new();
    let src = fx.open();
    let snap = src.snapshot().expect("loaded");
    let st = src.status();
    assert_eq!(
        (st.source, st.stale_seconds, st.last_error.as_deref()),
        (Some(Origin::File), 0, None)
    );
    assert_eq!(st.version.as_deref(), Some(snap.version()));
    let cached = Store::open(&fx.state)
        .unwrap()
        .cached_policy()
        .unwrap()
        .unwrap();
    assert_eq!(cached.version, snap.version());
    // Test cases are not part of the registry.
    assert!(cached.files.iter().all(|f| !f.name.starts_with("tests/")));
}

#[test]
fn invalid_change_keeps_the_last_good_snapshot() {
    let fx = Fixture::new();
    let src = fx.open();
    let before = src.snapshot().unwrap().version().to_string();
    fx.break_file();
    let out = src.reload_now("test");
    let Reload::Rejected { error, version } = out else {
        panic!("{out:?}")
    };
    assert!(error.contains("roles.toml:3"), "{error}");
    assert_eq!(version.as_deref(), Some(before.as_str()));
    assert_eq!(src.snapshot().unwrap().version(), before);
    fx.clock.advance_ms(7_500);
    let st = src.status();
    assert_eq!(st.stale_seconds, 7);
    assert!(st
        .last_error
        .unwrap()
        .contains("unknown permission `nope.nope`"));
    // Fixing the file clears the error.
    copy_example(&fx.dir);
    assert!(matches!(src.reload_now("test"), Reload::Unchanged { .. }));
    let st = src.status();
    assert_eq!((st.stale_seconds, st.last_error), (0, None));
}

#[test]
fn valid_change_goes_live_with_hooks_and_warnings() {
    let fx = Fixture::new();
    let src = fx.open();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    src.on_change(Box::new(move |old, new| {
        lock(&s2).push(policy::changed_users(old, new).len());
    }));
    let path = fx.dir.join("directory.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            "roles = [\"inventory_clerk\"], region = \"north\"",
            "roles = [\"sales_rep\"], region = \"north\"",
            1,
        ),
    )
    .unwrap();
    let out = src.reload_now("test");
    let Reload::Applied { role_changes, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(role_changes, 1);
    assert_eq!(*lock(&seen), vec![1]);
    assert_eq!(
        src.snapshot().unwrap().roles_of("bob", "acme"),
        Some(vec!["sales_rep"])
    );
}

#[test]
fn starts_from_cache_when_files_are_broken_or_missing() {
    let fx = Fixture::new();
    let good = fx.open().snapshot().unwrap().version().to_string();
    fx.break_file();
    let src = fx.open();
    assert_eq!(src.snapshot().unwrap().version(), good);
    let st = src.status();
    assert_eq!(st.source, Some(Origin::Cache));
    assert!(st.last_error.is_some());
    std::fs::remove_dir_all(&fx.dir).unwrap();
    let src = fx.open();
    assert_eq!(src.status().source, Some(Origin::Cache));
    // Files come back: served from files again.
    std::fs::create_dir_all(&fx.dir).unwrap();
    copy_example(&fx.dir);
    assert!(matches!(src.reload_now("test"), Reload::Unchanged { .. }));
    assert_eq!(src.status().source, Some(Origin::File));
}

#[test]
fn nothing_to_serve_means_not_loaded() {
    let fx = Fixture::new();
    fx.break_file();
    let src = fx.open();
    assert!(src.snapshot().is_none());
    let st = src.status();
    assert!(!st.loaded && st.last_error.is_some());
}

#[test]
fn read_dir_skips_hidden_and_non_toml_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.toml"), "").unwrap();
    std::fs::write(tmp.path().join(".a.toml.swp"), "").unwrap();
    std::fs::write(tmp.path().join("README.md"), "").unwrap();
    std::fs::create_dir_all(tmp.path().join("tests")).unwrap();
    std::fs::write(tmp.path().join("tests/t.toml"), "").unwrap();
    let c = files::read_dir(tmp.path()).unwrap();
    assert_eq!(
        c.registry
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["a.toml"]
    );
    assert_eq!(
        c.cases.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["tests/t.toml"]
    );
}

#[test]
fn a_change_locking_many_users_out_goes_live_with_a_warning() {
    let fx = Fixture::new();
    let src = fx.open();
    let path = fx.dir.join("roles.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "{ permission = \"inventory.view_stock\", actions = [\"read\"] },",
            "",
        ),
    )
    .unwrap();
    let out = src.reload_now("test");
    let Reload::Applied { warnings, .. } = out else {
        panic!("{out:?}")
    };
    assert!(!warnings.is_empty());
    assert_eq!(src.status().warnings, warnings);
    assert!(
        warnings[0].contains("lose at least one grant"),
        "{warnings:?}"
    );
}
