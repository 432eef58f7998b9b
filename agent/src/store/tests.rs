use super::*;

#[test]
fn opens_migrates_and_round_trips_meta() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.meta("host_id").unwrap(), None);
    store.set_meta("host_id", "h1").unwrap();
    store.set_meta("host_id", "h2").unwrap();
    assert_eq!(store.meta("host_id").unwrap().as_deref(), Some("h2"));
    drop(store);
    let again = Store::open(dir.path()).unwrap();
    assert_eq!(again.meta("host_id").unwrap().as_deref(), Some("h2"));
}

#[test]
fn garbage_file_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), vec![0x42u8; 8192]).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[test]
fn missing_file_is_reported_for_read_only_open() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open_read_only(dir.path()).unwrap_err(),
        Error::Missing { .. }
    ));
}

#[test]
fn policy_cache_round_trips_and_replaces() {
    use crate::policy::SourceFile;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.cached_policy().unwrap(), None);
    let f = |n: &str, t: &str| SourceFile {
        name: n.into(),
        text: t.into(),
    };
    store
        .save_policy("v1", &[f("a.toml", "x"), f("b.toml", "y")], 10)
        .unwrap();
    store.save_policy("v2", &[f("c.toml", "z")], 20).unwrap();
    drop(store);
    let cached = Store::open(dir.path())
        .unwrap()
        .cached_policy()
        .unwrap()
        .unwrap();
    assert_eq!((cached.version.as_str(), cached.saved_at_ms), ("v2", 20));
    assert_eq!(cached.files, vec![f("c.toml", "z")]);
}
