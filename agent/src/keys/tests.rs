use super::*;
use crate::clock::ManualClock;
use std::os::unix::fs::PermissionsExt;

const T0: i64 = 1_800_000_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    clock: Arc<ManualClock>,
    kek_bytes: [u8; 32],
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        Fixture {
            _dir: dir,
            store,
            clock: ManualClock::new(T0),
            kek_bytes: [7u8; 32],
        }
    }

    fn ring(&self, cfg: Config) -> KeyRing {
        self.try_ring(cfg, &self.kek_bytes).unwrap()
    }

    fn try_ring(&self, cfg: Config, kek: &[u8; 32]) -> Result<KeyRing, Error> {
        KeyRing::open(
            self.store.clone(),
            self.clock.clone(),
            Kek::from_bytes(kek).unwrap(),
            cfg,
            Arc::new(NoEvents),
        )
    }
}

fn cfg(delay_ms: i64, grace_ms: i64) -> Config {
    Config {
        propagation_delay_ms: delay_ms,
        grace_ms,
        ..Config::default()
    }
}

fn state_of(ring: &KeyRing, kid: &str) -> KeyState {
    ring.list()
        .into_iter()
        .find(|k| k.kid == kid)
        .unwrap()
        .state
}

#[test]
fn purposes_parse_by_table() {
    let check = |input: &str, ok: bool| {
        assert_eq!(Purpose::parse(input).is_ok(), ok, "{input:?}");
    };
    check("jwt", true);
    check("task", true);
    check("audit", true);
    check("webhook:stripe", true);
    check("outbound:bank-1", true);
    check("webhook:", false);
    check("webhook:Stripe", false);
    check("webhook:a/b", false);
    check("inbound:x", false);
    check("JWT", false);
    check("", false);
    check(&format!("webhook:{}", "a".repeat(65)), false);
}

#[test]
fn seal_and_open_round_trip_and_bind_associated_data() {
    let kek = Kek::from_bytes(&[1u8; 32]).unwrap();
    let sealed = kek.seal(b"aad-1", b"private").unwrap();
    assert_eq!(kek.open(b"aad-1", &sealed).unwrap().expose(), b"private");
    assert!(kek.open(b"aad-2", &sealed).is_none(), "other key's row");
    let other = Kek::from_bytes(&[2u8; 32]).unwrap();
    assert!(other.open(b"aad-1", &sealed).is_none(), "wrong KEK");
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(kek.open(b"aad-1", &tampered).is_none(), "tampered");
    assert!(kek.open(b"aad-1", &sealed[..10]).is_none(), "truncated");
    // Fresh nonce every time.
    assert_ne!(sealed, kek.seal(b"aad-1", b"private").unwrap());
}

#[test]
fn kek_files_load_in_every_format_and_refuse_open_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8], mode: u32| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let raw = write("raw", &[9u8; 32], 0o600);
    let hexed = write(
        "hex",
        format!("{}\n", hex::encode([9u8; 32])).as_bytes(),
        0o400,
    );
    let b64 = write(
        "b64",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]).as_bytes(),
        0o640,
    );
    let sealed = Kek::load(&raw).unwrap().seal(b"a", b"x").unwrap();
    for p in [&hexed, &b64] {
        assert_eq!(
            Kek::load(p).unwrap().open(b"a", &sealed).unwrap().expose(),
            b"x"
        );
    }
    let short = write("short", b"too short", 0o600);
    assert!(matches!(Kek::load(&short), Err(Error::KekInvalid { .. })));
    let open = write("open", &[9u8; 32], 0o644);
    assert!(matches!(Kek::load(&open), Err(Error::KekInvalid { .. })));
    assert!(matches!(
        Kek::load(&dir.path().join("missing")),
        Err(Error::KekRead { .. })
    ));
}

#[test]
fn kek_resolution_order_production_refusal_and_dev_generation() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let no_env = |_: &str| None;
    assert!(matches!(
        Kek::resolve(None, &no_env, true, &state),
        Err(Error::KekMissing)
    ));
    let (_, src) = Kek::resolve(None, &no_env, false, &state).unwrap();
    let dev = state.join(kek::DEV_KEK_FILE);
    assert_eq!(src, KekSource::Dev(dev.clone()));
    let mode = std::fs::metadata(&dev).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let first = std::fs::read(&dev).unwrap();
    Kek::resolve(None, &no_env, false, &state).unwrap();
    assert_eq!(first, std::fs::read(&dev).unwrap(), "dev KEK is reused");

    let file = dir.path().join("kek");
    std::fs::write(&file, [3u8; 32]).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = file.to_string_lossy().to_string();
    let env = move |k: &str| (k == "WARDEN_KEK_FILE").then(|| f.clone());
    let (_, src) = Kek::resolve(None, &env, true, &state).unwrap();
    assert_eq!(src, KekSource::File(file.clone()));

    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let cred = creds.join(kek::CREDENTIAL_NAME);
    std::fs::write(&cred, [4u8; 32]).unwrap();
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o400)).unwrap();
    let c = creds.to_string_lossy().to_string();
    let env = move |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| c.clone());
    let (_, src) = Kek::resolve(None, &env, true, &state).unwrap();
    assert_eq!(src, KekSource::File(cred));
    // An explicit config path wins over everything.
    let (_, src) = Kek::resolve(Some(&file), &env, true, &state).unwrap();
    assert_eq!(src, KekSource::File(file));
}

#[test]
fn keys_survive_restart_and_refuse_the_wrong_kek() {
    let fx = Fixture::new();
    let ring = fx.ring(Config::default());
    let signer = ring.ensure(&Purpose::jwt(), Algorithm::EdDSA).unwrap();
    let sig = signer.sign(b"msg").unwrap();
    let kid = signer.kid().to_string();
    drop(ring);
    let again = fx.ring(Config::default());
    let same = again.signer(&Purpose::jwt()).unwrap();
    assert_eq!(same.kid(), kid);
    assert!(same.verify(b"msg", &sig));
    assert!(!same.verify(b"other", &sig));
    assert!(matches!(
        fx.try_ring(Config::default(), &[8u8; 32]),
        Err(Error::Unseal { .. })
    ));
}

#[test]
fn a_sealed_key_moved_to_another_row_does_not_open() {
    let fx = Fixture::new();
    let ring = fx.ring(Config::default());
    let a = ring.ensure(&Purpose::jwt(), Algorithm::EdDSA).unwrap();
    let b = ring.ensure(&Purpose::task(), Algorithm::EdDSA).unwrap();
    drop(ring);
    let rows = fx.store.keys_all().unwrap();
    let ra = rows.iter().find(|r| r.kid == a.kid()).unwrap().clone();
    let mut rb = rows.iter().find(|r| r.kid == b.kid()).unwrap().clone();
    rb.sealed_private = ra.sealed_private.clone();
    rb.public_key = ra.public_key.clone();
    fx.store.keys_save(&[rb]).unwrap();
    assert!(matches!(
        fx.try_ring(Config::default(), &fx.kek_bytes),
        Err(Error::Unseal { .. })
    ));
}

#[test]
fn rotation_publishes_first_signs_after_delay_and_retires_after_grace() {
    let fx = Fixture::new();
    let ring = fx.ring(cfg(60_000, 600_000));
    let old = ring.ensure(&Purpose::jwt(), Algorithm::EdDSA).unwrap();
    let new = ring.rotate(&Purpose::jwt(), None).unwrap();
    assert_eq!(new.state, KeyState::Pending);
    let published: Vec<String> = ring
        .published(&["jwt"])
        .iter()
        .map(|k| k.kid().to_string())
        .collect();
    assert!(
        published.contains(&new.kid),
        "pending key is in the JWKS at once"
    );
    assert_eq!(ring.signer(&Purpose::jwt()).unwrap().kid(), old.kid());
    assert!(matches!(
        ring.rotate(&Purpose::jwt(), None),
        Err(Error::RotationPending { .. })
    ));

    fx.clock.advance_ms(60_000);
    assert_eq!(ring.signer(&Purpose::jwt()).unwrap().kid(), new.kid);
    assert_eq!(state_of(&ring, old.kid()), KeyState::Retiring);
    assert!(
        ring.verifier(old.kid()).is_some(),
        "old key verifies in grace"
    );

    fx.clock.advance_ms(599_999);
    assert!(ring.verifier(old.kid()).is_some());
    fx.clock.advance_ms(1);
    assert!(
        ring.verifier(old.kid()).is_none(),
        "due retirement honoured before it is written"
    );
    assert!(ring.advance().unwrap());
    assert_eq!(state_of(&ring, old.kid()), KeyState::Retired);
    let row = fx
        .store
        .keys_all()
        .unwrap()
        .into_iter()
        .find(|r| r.kid == old.kid())
        .unwrap();
    assert!(row.sealed_private.is_none(), "retired private key is wiped");
    assert_eq!(ring.published(&["jwt"]).len(), 1);
    // Its public half stays known for old signatures.
    assert!(ring.key(old.kid()).is_some());
}

#[test]
fn rollback_cancels_a_pending_key_or_reactivates_the_previous_one() {
    let fx = Fixture::new();
    let ring = fx.ring(cfg(60_000, 600_000));
    let jwt = Purpose::jwt();
    assert!(matches!(
        ring.rollback(&jwt),
        Err(Error::NothingToRollBack(_))
    ));
    let first = ring.ensure(&jwt, Algorithm::EdDSA).unwrap();
    let pending = ring.rotate(&jwt, None).unwrap();
    let cancelled = ring.rollback(&jwt).unwrap();
    assert_eq!(cancelled.kid, pending.kid);
    assert_eq!(cancelled.state, KeyState::Retired);
    assert_eq!(ring.signer(&jwt).unwrap().kid(), first.kid());

    let second = ring.rotate(&jwt, None).unwrap();
    fx.clock.advance_ms(60_000);
    assert_eq!(ring.signer(&jwt).unwrap().kid(), second.kid);
    let back = ring.rollback(&jwt).unwrap();
    assert_eq!(back.kid, first.kid());
    assert_eq!(back.state, KeyState::Active);
    assert_eq!(ring.signer(&jwt).unwrap().kid(), first.kid());
    assert_eq!(state_of(&ring, &second.kid), KeyState::Retiring);

    // Once the previous key's grace is over there is nothing to go back to.
    let third = ring.rotate(&jwt, None).unwrap();
    fx.clock.advance_ms(60_000);
    assert_eq!(ring.signer(&jwt).unwrap().kid(), third.kid);
    fx.clock.advance_ms(600_000);
    ring.advance().unwrap();
    assert!(matches!(
        ring.rollback(&jwt),
        Err(Error::NothingToRollBack(_))
    ));
}

#[test]
fn retire_refuses_the_active_key_and_is_immediate_otherwise() {
    let fx = Fixture::new();
    let ring = fx.ring(cfg(0, 600_000));
    let jwt = Purpose::jwt();
    let old = ring.ensure(&jwt, Algorithm::EdDSA).unwrap();
    assert!(matches!(
        ring.retire(old.kid()),
        Err(Error::RetireActive(_))
    ));
    let new = ring.rotate(&jwt, None).unwrap();
    assert_eq!(new.state, KeyState::Active, "zero delay activates at once");
    assert!(ring.verifier(old.kid()).is_some());
    let retired = ring.retire(old.kid()).unwrap();
    assert_eq!(retired.state, KeyState::Retired);
    assert!(ring.verifier(old.kid()).is_none());
    assert!(matches!(ring.retire("nope"), Err(Error::UnknownKey(_))));
    assert!(old.sign(b"x").is_ok(), "handles taken before stay usable");
    let fresh = ring.key(old.kid()).unwrap();
    assert!(fresh.sign(b"x").is_err(), "wiped key cannot sign");
}

#[test]
fn audit_signer_is_ed25519_and_verifiable_with_ring() {
    let fx = Fixture::new();
    let ring = fx.ring(Config::default());
    assert!(matches!(
        ring.ensure(&Purpose::audit(), Algorithm::ES256),
        Err(Error::AlgorithmNotAllowed { .. })
    ));
    ring.ensure(&Purpose::audit(), Algorithm::EdDSA).unwrap();
    let s = ring.signer(&Purpose::audit()).unwrap();
    assert_eq!(s.alg(), Algorithm::EdDSA);
    let sig = s.sign(b"checkpoint").unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, s.public_key())
        .verify(b"checkpoint", &sig)
        .unwrap();
    assert!(matches!(
        ring.signer(&Purpose::parse("webhook:x").unwrap()),
        Err(Error::NoActiveKey(_))
    ));
}

#[test]
fn es256_and_hs256_keys_sign_and_verify() {
    let fx = Fixture::new();
    let ring = fx.ring(Config::default());
    let es = ring.ensure(&Purpose::jwt(), Algorithm::ES256).unwrap();
    assert_eq!(es.public_key().len(), 65);
    let sig = es.sign(b"m").unwrap();
    assert_eq!(sig.len(), 64);
    assert!(es.verify(b"m", &sig));
    let hs = ring
        .ensure(&Purpose::parse("webhook:bank").unwrap(), Algorithm::HS256)
        .unwrap();
    let mac = hs.sign(b"m").unwrap();
    assert!(hs.verify(b"m", &mac));
    assert!(!hs.verify(b"n", &mac));
    assert!(
        ring.published(&["webhook:bank"]).is_empty(),
        "secrets are never published"
    );
    drop(ring);
    let again = fx.ring(Config::default());
    assert!(again.key(hs.kid()).unwrap().verify(b"m", &mac));
    assert!(again.key(es.kid()).unwrap().verify(b"m", &sig));
}

#[test]
fn old_keys_are_flagged_and_rotated_automatically_when_configured() {
    let fx = Fixture::new();
    let ring = fx.ring(Config {
        auto_rotate: false,
        ..cfg(0, 600_000)
    });
    let k = ring.ensure(&Purpose::jwt(), Algorithm::EdDSA).unwrap();
    fx.clock.advance_ms(90 * DAY_MS);
    let info = ring.list().into_iter().find(|i| i.kid == k.kid()).unwrap();
    assert_eq!(info.age_days, 90);
    assert!(info.rotation_due);
    assert_eq!(ring.signer(&Purpose::jwt()).unwrap().kid(), k.kid());
    drop(ring);

    let auto = fx.ring(Config {
        auto_rotate: true,
        ..cfg(0, 600_000)
    });
    let now = auto.signer(&Purpose::jwt()).unwrap();
    assert_ne!(
        now.kid(),
        k.kid(),
        "opening with auto-rotation rotated the old key"
    );
    assert_eq!(state_of(&auto, k.kid()), KeyState::Retiring);
    assert!(!auto.list().iter().any(|i| i.rotation_due));
}

#[test]
fn every_life_cycle_change_is_reported() {
    #[derive(Default)]
    struct Sink(std::sync::Mutex<Vec<&'static str>>);
    impl EventSink for Sink {
        fn key_event(&self, e: &KeyEvent) {
            self.0.lock().unwrap().push(e.action);
        }
    }
    let fx = Fixture::new();
    let sink = Arc::new(Sink::default());
    let ring = KeyRing::open(
        fx.store.clone(),
        fx.clock.clone(),
        Kek::from_bytes(&fx.kek_bytes).unwrap(),
        cfg(1_000, 1_000),
        sink.clone(),
    )
    .unwrap();
    let jwt = Purpose::jwt();
    ring.ensure(&jwt, Algorithm::EdDSA).unwrap();
    ring.rotate(&jwt, None).unwrap();
    fx.clock.advance_ms(1_000);
    ring.advance().unwrap();
    fx.clock.advance_ms(1_000);
    ring.advance().unwrap();
    assert_eq!(
        *sink.0.lock().unwrap(),
        vec!["created", "rotated", "retiring", "activated", "retired"]
    );
}

#[test]
fn durations_render_in_units_the_config_parses_back() {
    for (ms, text) in [
        (90 * DAY_MS, "90d"),
        (930_000, "15m30s"),
        (5_000, "5s"),
        (0, "0s"),
        (DAY_MS + 1, "1d1ms"),
    ] {
        assert_eq!(config::human_ms(ms), text);
        let back = humantime::parse_duration(text).unwrap().as_millis() as i64;
        assert_eq!(back, ms, "{text}");
    }
}

#[test]
fn hs256_token_keys_need_the_config_to_say_so() {
    let fx = Fixture::new();
    let ring = fx.ring(cfg(0, 1_000));
    ring.ensure(&Purpose::jwt(), Algorithm::EdDSA).unwrap();
    for purpose in [Purpose::jwt(), Purpose::task()] {
        assert!(matches!(
            ring.rotate(&purpose, Some(Algorithm::HS256)),
            Err(Error::AlgorithmNotAllowed { .. })
        ));
    }
    ring.rotate(
        &Purpose::parse("webhook:bank").unwrap(),
        Some(Algorithm::HS256),
    )
    .unwrap();
    drop(ring);
    let hs = fx.ring(Config {
        token_algorithm: Algorithm::HS256,
        ..cfg(0, 1_000)
    });
    hs.rotate(&Purpose::jwt(), Some(Algorithm::HS256)).unwrap();
}
