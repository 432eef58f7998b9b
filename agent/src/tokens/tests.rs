use super::*;
use crate::clock::ManualClock;
use crate::keys::{Algorithm, Kek, KeyRing, Purpose};
use serde_json::{json, Value};

const T0: i64 = 1_800_000_000_000;

struct Fx {
    _dir: tempfile::TempDir,
    store: Store,
    clock: Arc<ManualClock>,
    keys: Arc<KeyRing>,
    dir: Arc<StaticDirectory>,
    tokens: Tokens,
}

fn fx_with(cfg: Config, alg: Algorithm) -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let clock = ManualClock::new(T0);
    let keys = Arc::new(
        KeyRing::open(
            store.clone(),
            clock.clone(),
            Kek::from_bytes(&[5u8; 32]).unwrap(),
            crate::keys::Config {
                propagation_delay_ms: 0,
                grace_ms: cfg.key_grace_ms(),
                token_algorithm: alg,
                ..crate::keys::Config::default()
            },
            Arc::new(crate::keys::NoEvents),
        )
        .unwrap(),
    );
    keys.ensure(&Purpose::jwt(), alg).unwrap();
    keys.ensure(&Purpose::task(), alg).unwrap();
    let dir = Arc::new(StaticDirectory::default());
    dir.set("u-42", "acme", &["clerk", "viewer"]);
    dir.set("u-7", "acme", &["manager"]);
    let tokens = Tokens::new(
        cfg,
        keys.clone(),
        store.clone(),
        clock.clone(),
        dir.clone(),
        Arc::new(NoEvents),
    )
    .unwrap();
    Fx {
        _dir: tmp,
        store,
        clock,
        keys,
        dir,
        tokens,
    }
}

fn fx() -> Fx {
    fx_with(Config::default(), Algorithm::EdDSA)
}

fn login(fx: &Fx, user: &str) -> Issued {
    fx.tokens
        .issue(&IssueRequest {
            user_id: user.to_string(),
            org_id: "acme".to_string(),
            amr: vec!["pwd".to_string()],
            device_id: None,
        })
        .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn segments(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let c = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&c).unwrap(),
    )
}

/// Builds a JWS from arbitrary header and claims, signed by `sign`.
fn forge(header: &Value, claims: &Value, sign: &dyn Fn(&[u8]) -> Vec<u8>) -> String {
    let msg = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(msg.as_bytes());
    format!("{msg}.{}", b64(&sig))
}

#[test]
fn issued_access_token_carries_every_claim_and_verifies() {
    let fx = fx();
    let issued = login(&fx, "u-42");
    let (header, _) = segments(&issued.access_token);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(
        header["kid"],
        fx.keys.signer(&Purpose::jwt()).unwrap().kid()
    );
    let c = fx.tokens.verify_access(&issued.access_token).unwrap();
    assert_eq!(c.iss, "warden");
    assert_eq!(c.sub, "u-42");
    assert_eq!(c.org, "acme");
    assert_eq!(c.roles, vec!["clerk", "viewer"]);
    assert_eq!(c.sid.as_deref(), Some(issued.session_id.as_str()));
    assert_eq!(c.amr, vec!["pwd"]);
    assert_eq!(c.auth_time, T0 / 1000);
    assert_eq!(c.iat, T0 / 1000);
    assert_eq!(c.exp, T0 / 1000 + 900);
    assert_eq!(c.typ, TokenType::Access);
    assert_eq!(c.jti.len(), 32);
    assert_eq!(issued.expires_in, 900);
    assert_eq!(issued.refresh_expires_in, 8 * 3600);
    assert!(issued.refresh_token.expose().starts_with(REFRESH_PREFIX));
    assert_eq!(
        issued.refresh_token.expose().len(),
        REFRESH_PREFIX.len() + 43
    );
}

#[test]
fn issue_rejects_bad_input_and_unknown_subjects() {
    let fx = fx();
    let check = |user: &str, org: &str, amr: &[&str], expected: &str| {
        let err = fx
            .tokens
            .issue(&IssueRequest {
                user_id: user.to_string(),
                org_id: org.to_string(),
                amr: amr.iter().map(|s| s.to_string()).collect(),
                device_id: None,
            })
            .err()
            .unwrap();
        let got = match err {
            Error::InvalidInput { field, .. } => field.to_string(),
            Error::UnknownSubject => "unknown_subject".to_string(),
            other => other.to_string(),
        };
        assert_eq!(got, expected, "{user:?} {org:?} {amr:?}");
    };
    check("", "acme", &["pwd"], "user_id");
    check("u 42", "acme", &["pwd"], "user_id");
    check(&"u".repeat(129), "acme", &["pwd"], "user_id");
    check("u-42", "", &["pwd"], "org_id");
    check("u-42", "acme", &[], "amr");
    check("u-42", "acme", &["password"], "amr");
    check("u-42", "globex", &["pwd"], "unknown_subject");
    check("u-nobody", "acme", &["pwd"], "unknown_subject");
}

/// The JWT attack table: each forged or broken token and the reason it fails.
#[test]
fn jwt_attacks_are_rejected_by_table() {
    let fx = fx();
    let good = login(&fx, "u-42").access_token;
    let (header, claims) = segments(&good);
    let kid = header["kid"].as_str().unwrap().to_string();
    let signer = fx.keys.signer(&Purpose::jwt()).unwrap();
    let sign_ours = |m: &[u8]| signer.sign(m).unwrap();
    let public = signer.public_key().to_vec();
    let hmac_with = |secret: Vec<u8>| {
        move |m: &[u8]| {
            ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret), m)
                .as_ref()
                .to_vec()
        }
    };
    let other_key = ring::signature::Ed25519KeyPair::from_pkcs8(
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    let sign_other = |m: &[u8]| other_key.sign(m).as_ref().to_vec();
    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let now = T0 / 1000;
    let task_key = fx.keys.signer(&Purpose::task()).unwrap();

    let cases: Vec<(&str, String, Invalid)> = vec![
        (
            "alg none",
            forge(&json!({"alg":"none","kid":kid}), &claims, &|_| vec![]),
            Invalid::BadAlgorithm,
        ),
        (
            "alg None",
            forge(&json!({"alg":"None","kid":kid}), &claims, &|_| vec![]),
            Invalid::BadAlgorithm,
        ),
        (
            "alg NONE",
            forge(&json!({"alg":"NONE","kid":kid}), &claims, &|_| vec![]),
            Invalid::BadAlgorithm,
        ),
        (
            "alg nOnE",
            forge(&json!({"alg":"nOnE","kid":kid}), &claims, &|_| vec![]),
            Invalid::BadAlgorithm,
        ),
        (
            "alg none, no sig segment",
            format!(
                "{}.{}.",
                b64(json!({"alg":"none","kid":kid}).to_string().as_bytes()),
                good.split('.').nth(1).unwrap()
            ),
            Invalid::BadAlgorithm,
        ),
        (
            "HS256 keyed with our public key",
            forge(
                &json!({"alg":"HS256","kid":kid}),
                &claims,
                &hmac_with(public.clone()),
            ),
            Invalid::BadAlgorithm,
        ),
        (
            "HS256 keyed with the kid",
            forge(
                &json!({"alg":"HS256","kid":kid}),
                &claims,
                &hmac_with(kid.as_bytes().to_vec()),
            ),
            Invalid::BadAlgorithm,
        ),
        (
            "ES256 header on an Ed25519 key",
            forge(&json!({"alg":"ES256","kid":kid}), &claims, &sign_ours),
            Invalid::BadAlgorithm,
        ),
        (
            "RS256 header",
            forge(&json!({"alg":"RS256","kid":kid}), &claims, &sign_ours),
            Invalid::BadAlgorithm,
        ),
        (
            "unknown kid",
            forge(
                &json!({"alg":"EdDSA","kid":"jwt-0000"}),
                &claims,
                &sign_other,
            ),
            Invalid::UnknownKid,
        ),
        (
            "missing kid",
            forge(&json!({"alg":"EdDSA"}), &claims, &sign_ours),
            Invalid::Malformed,
        ),
        (
            "path in kid",
            forge(
                &json!({"alg":"EdDSA","kid":"../../etc/passwd"}),
                &claims,
                &sign_ours,
            ),
            Invalid::Malformed,
        ),
        (
            "empty kid",
            forge(&json!({"alg":"EdDSA","kid":""}), &claims, &sign_ours),
            Invalid::Malformed,
        ),
        (
            "numeric kid",
            forge(&json!({"alg":"EdDSA","kid":7}), &claims, &sign_ours),
            Invalid::Malformed,
        ),
        (
            "embedded jwk is ignored",
            forge(
                &json!({"alg":"EdDSA","kid":kid,"jwk":{"kty":"OKP","crv":"Ed25519","x":b64(ring::signature::KeyPair::public_key(&other_key).as_ref())}}),
                &claims,
                &sign_other,
            ),
            Invalid::BadSignature,
        ),
        (
            "other key, our kid",
            forge(&json!({"alg":"EdDSA","kid":kid}), &claims, &sign_other),
            Invalid::BadSignature,
        ),
        (
            "escalated roles",
            forge(
                &json!({"alg":"EdDSA","kid":kid}),
                &with(json!({"roles":["admin"]})),
                &|_| {
                    good.split('.')
                        .nth(2)
                        .map(|s| URL_SAFE_NO_PAD.decode(s).unwrap())
                        .unwrap()
                },
            ),
            Invalid::BadSignature,
        ),
        (
            "flipped signature",
            {
                let mut t = good.clone().into_bytes();
                let i = t.len() - 5;
                t[i] = if t[i] == b'A' { b'B' } else { b'A' };
                String::from_utf8(t).unwrap()
            },
            Invalid::BadSignature,
        ),
        (
            "wrong issuer",
            forge(&header, &with(json!({"iss":"evil"})), &sign_ours),
            Invalid::WrongIssuer,
        ),
        (
            "expired beyond leeway",
            forge(
                &header,
                &with(json!({"iat": now - 1000, "exp": now - 31})),
                &sign_ours,
            ),
            Invalid::Expired,
        ),
        (
            "issued in the future",
            forge(
                &header,
                &with(json!({"iat": now + 31, "exp": now + 900})),
                &sign_ours,
            ),
            Invalid::NotYetValid,
        ),
        (
            "access claims under the task key",
            forge(
                &json!({"alg":"EdDSA","kid":task_key.kid()}),
                &claims,
                &|m| task_key.sign(m).unwrap(),
            ),
            Invalid::WrongType,
        ),
        (
            "access token without sid",
            forge(
                &header,
                &{
                    let mut c = claims.clone();
                    c.as_object_mut().unwrap().remove("sid");
                    c
                },
                &sign_ours,
            ),
            Invalid::Malformed,
        ),
        (
            "aud as array",
            forge(&header, &with(json!({"aud":["a","b"]})), &sign_ours),
            Invalid::Malformed,
        ),
        (
            "missing exp",
            forge(
                &header,
                &{
                    let mut c = claims.clone();
                    c.as_object_mut().unwrap().remove("exp");
                    c
                },
                &sign_ours,
            ),
            Invalid::Malformed,
        ),
        (
            "two segments",
            good.rsplit_once('.').unwrap().0.to_string(),
            Invalid::Malformed,
        ),
        ("four segments", format!("{good}.x"), Invalid::Malformed),
        ("garbage", "not a token".to_string(), Invalid::Malformed),
        ("empty", String::new(), Invalid::Malformed),
        (
            "header not json",
            format!("{}.{}.{}", b64(b"{alg"), b64(b"{}"), b64(b"x")),
            Invalid::Malformed,
        ),
        ("non-ascii", format!("{good}\u{e9}"), Invalid::Malformed),
        (
            "oversized",
            format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c"),
            Invalid::Malformed,
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(
            fx.tokens.verify(&token, None).err(),
            Some(expected),
            "{name}"
        );
    }
    // Within leeway is fine.
    let skewed = forge(
        &header,
        &with(json!({"iat": now + 29, "exp": now - 29 + 900})),
        &sign_ours,
    );
    fx.tokens.verify(&skewed, None).unwrap();
    let late = forge(&header, &with(json!({"exp": now - 29})), &sign_ours);
    fx.tokens.verify(&late, None).unwrap();
}

#[test]
fn verified_tokens_are_cached_but_revocation_and_expiry_apply_at_once() {
    let fx = fx();
    let issued = login(&fx, "u-42");
    let t = &issued.access_token;
    fx.tokens.verify_access(t).unwrap();
    fx.tokens.verify_access(t).unwrap();
    fx.tokens.verify_access(t).unwrap();
    assert_eq!(fx.tokens.stats.verified_signature_checks.get(), 1);
    assert_eq!(fx.tokens.stats.verified_cache_hits.get(), 2);
    assert_eq!(
        fx.tokens.verify(t, Some("task:x")).err(),
        Some(Invalid::WrongAudience)
    );

    assert_eq!(
        fx.tokens
            .revoke_session(&issued.session_id, "logout")
            .unwrap(),
        1
    );
    assert_eq!(fx.tokens.verify_access(t).err(), Some(Invalid::Revoked));
    assert_eq!(
        fx.tokens
            .revoke_session(&issued.session_id, "logout")
            .unwrap(),
        0
    );

    let second = login(&fx, "u-42");
    fx.tokens.verify_access(&second.access_token).unwrap();
    fx.clock.advance_ms(900_000 + 30_000);
    fx.tokens.verify_access(&second.access_token).unwrap();
    fx.clock.advance_ms(1_000);
    assert_eq!(
        fx.tokens.verify_access(&second.access_token).err(),
        Some(Invalid::Expired)
    );
}

#[test]
fn revoking_a_user_kills_every_session_and_token_but_not_later_logins() {
    let fx = fx();
    let a = login(&fx, "u-42");
    let b = login(&fx, "u-42");
    let other = login(&fx, "u-7");
    let task = fx
        .tokens
        .issue_task(
            "reports.export",
            &TaskSubject::User {
                user_id: "u-42".into(),
                org_id: "acme".into(),
            },
        )
        .unwrap();
    fx.tokens.verify_access(&a.access_token).unwrap();
    assert_eq!(fx.tokens.revoke_user("u-42", "password_reset").unwrap(), 2);
    for t in [&a.access_token, &b.access_token] {
        assert_eq!(fx.tokens.verify_access(t).err(), Some(Invalid::Revoked));
    }
    assert_eq!(
        fx.tokens.verify_task(&task.token, "reports.export").err(),
        Some(Invalid::Revoked),
        "stale epoch"
    );
    assert!(matches!(
        fx.tokens.refresh(b.refresh_token.expose()),
        Err(Error::SessionRevoked)
    ));
    fx.tokens.verify_access(&other.access_token).unwrap();
    let after = login(&fx, "u-42");
    fx.tokens.verify_access(&after.access_token).unwrap();
    fx.tokens.refresh(after.refresh_token.expose()).unwrap();
    assert!(matches!(
        fx.tokens.revoke_user("u-42", "Password Reset"),
        Err(Error::InvalidInput {
            field: "reason",
            ..
        })
    ));
}

#[test]
fn revocations_survive_a_restart() {
    let fx = fx();
    let a = login(&fx, "u-42");
    let b = login(&fx, "u-7");
    fx.tokens.revoke_session(&a.session_id, "logout").unwrap();
    fx.tokens.revoke_user("u-7", "password_reset").unwrap();
    let restarted = Tokens::new(
        Config::default(),
        fx.keys.clone(),
        fx.store.clone(),
        fx.clock.clone(),
        fx.dir.clone(),
        Arc::new(NoEvents),
    )
    .unwrap();
    assert_eq!(
        restarted.verify_access(&a.access_token).err(),
        Some(Invalid::Revoked)
    );
    assert_eq!(
        restarted.verify_access(&b.access_token).err(),
        Some(Invalid::Revoked)
    );
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_family() {
    let fx = fx();
    let first = login(&fx, "u-42");
    fx.clock.advance_ms(60_000);
    let second = fx.tokens.refresh(first.refresh_token.expose()).unwrap();
    assert_ne!(second.refresh_token.expose(), first.refresh_token.expose());
    assert_eq!(second.session_id, first.session_id);
    let c = fx.tokens.verify_access(&second.access_token).unwrap();
    assert_eq!(
        c.auth_time,
        T0 / 1000,
        "auth_time is the login, not the refresh"
    );
    assert_eq!(c.iat, (T0 + 60_000) / 1000);
    // Past the reuse grace, the old token again is theft.
    fx.clock.advance_ms(5_000);
    assert!(matches!(
        fx.tokens.refresh(first.refresh_token.expose()),
        Err(Error::RefreshReused)
    ));
    assert_eq!(
        fx.tokens.verify_access(&second.access_token).err(),
        Some(Invalid::Revoked)
    );
    assert!(matches!(
        fx.tokens.refresh(second.refresh_token.expose()),
        Err(Error::SessionRevoked)
    ));
    assert_eq!(fx.tokens.stats.refresh_reused.get(), 1);
}

#[test]
fn refresh_rejects_malformed_unknown_and_expired_tokens() {
    let fx = fx();
    for bad in [
        "",
        "wrt_",
        "wrt_short",
        "xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &format!("wrt_{}", "!".repeat(43)),
    ] {
        assert!(
            matches!(fx.tokens.refresh(bad), Err(Error::RefreshInvalid)),
            "{bad:?}"
        );
    }
    let (unknown, _) = new_refresh().unwrap();
    assert!(matches!(
        fx.tokens.refresh(unknown.expose()),
        Err(Error::RefreshInvalid)
    ));

    let idle = login(&fx, "u-42");
    fx.clock.advance_ms(8 * 3_600_000);
    assert!(matches!(
        fx.tokens.refresh(idle.refresh_token.expose()),
        Err(Error::RefreshExpired)
    ));

    // Refreshing every 7 hours keeps a session alive only up to 7 days.
    let mut current = login(&fx, "u-42");
    let mut refreshed = 0;
    loop {
        fx.clock.advance_ms(7 * 3_600_000);
        match fx.tokens.refresh(current.refresh_token.expose()) {
            Ok(next) => {
                assert!(next.refresh_expires_in <= 8 * 3600);
                current = next;
                refreshed += 1;
            }
            Err(Error::RefreshExpired) => break,
            Err(e) => panic!("{e}"),
        }
    }
    // The 24th refresh would land exactly on the 7-day mark: dead.
    assert_eq!(refreshed, 23);
}

#[test]
fn concurrent_refreshes_rotate_exactly_once_and_share_the_successor() {
    let fx = fx();
    let first = login(&fx, "u-42");
    let results: Vec<Result<Issued, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| fx.tokens.refresh(first.refresh_token.expose())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tokens: HashSet<String> = results
        .iter()
        .map(|r| r.as_ref().unwrap().refresh_token.expose().to_string())
        .collect();
    assert_eq!(tokens.len(), 1, "every racer got the same successor");
    let rows: i64 = fx
        .store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM refresh_tokens WHERE session_id = ?1",
            [&first.session_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 2, "one rotation");
}

#[test]
fn without_grace_concurrent_refreshes_yield_one_winner_and_reuse_detection() {
    let fx = fx_with(
        Config {
            reuse_grace_ms: 0,
            ..Config::default()
        },
        Algorithm::EdDSA,
    );
    let first = login(&fx, "u-42");
    let results: Vec<Result<Issued, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| fx.tokens.refresh(first.refresh_token.expose())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, Error::RefreshReused | Error::SessionRevoked)));
}

#[test]
fn role_changes_revoke_sessions_on_reconcile_and_on_refresh() {
    let fx = fx();
    let a = login(&fx, "u-42");
    let b = login(&fx, "u-7");
    assert!(fx.tokens.reconcile_roles().unwrap().is_empty());
    fx.dir.set("u-42", "acme", &["viewer", "clerk"]);
    assert!(
        fx.tokens.reconcile_roles().unwrap().is_empty(),
        "order does not matter"
    );
    fx.dir.set("u-42", "acme", &["viewer"]);
    assert_eq!(
        fx.tokens.reconcile_roles().unwrap(),
        vec!["u-42".to_string()]
    );
    assert_eq!(
        fx.tokens.verify_access(&a.access_token).err(),
        Some(Invalid::Revoked)
    );
    fx.tokens.verify_access(&b.access_token).unwrap();

    // Without a reconcile, the next refresh notices.
    fx.dir.remove("u-7", "acme");
    assert!(matches!(
        fx.tokens.refresh(b.refresh_token.expose()),
        Err(Error::SessionRevoked)
    ));
    assert_eq!(
        fx.tokens.verify_access(&b.access_token).err(),
        Some(Invalid::Revoked)
    );
}

#[test]
fn task_tokens_authorise_only_their_own_task() {
    let fx = fx();
    let issued = login(&fx, "u-42");
    let task = fx
        .tokens
        .issue_task(
            "inventory.recount",
            &TaskSubject::Token(issued.access_token.clone()),
        )
        .unwrap();
    assert_eq!(task.expires_in, 600);
    let (header, _) = segments(&task.token);
    assert_eq!(
        header["kid"],
        fx.keys.signer(&Purpose::task()).unwrap().kid()
    );
    let c = fx
        .tokens
        .verify_task(&task.token, "inventory.recount")
        .unwrap();
    assert_eq!(c.aud.as_deref(), Some("task:inventory.recount"));
    assert_eq!(c.typ, TokenType::Task);
    assert_eq!(c.sid.as_deref(), Some(issued.session_id.as_str()));
    assert_eq!(
        fx.tokens.verify_task(&task.token, "reports.export").err(),
        Some(Invalid::WrongAudience)
    );
    assert_eq!(
        fx.tokens.verify_access(&task.token).err(),
        Some(Invalid::WrongType)
    );
    assert_eq!(
        fx.tokens
            .verify_task(&issued.access_token, "inventory.recount")
            .err(),
        Some(Invalid::WrongType)
    );
    fx.tokens
        .verify(&task.token, Some("task:inventory.recount"))
        .unwrap();
    fx.tokens
        .revoke_session(&issued.session_id, "logout")
        .unwrap();
    assert_eq!(
        fx.tokens
            .verify_task(&task.token, "inventory.recount")
            .err(),
        Some(Invalid::Revoked)
    );
    assert!(matches!(
        fx.tokens
            .issue_task("x", &TaskSubject::Token(issued.access_token.clone())),
        Err(Error::TokenInvalid(Invalid::Revoked))
    ));
    assert!(matches!(
        fx.tokens.issue_task(
            "bad name",
            &TaskSubject::User {
                user_id: "u-42".into(),
                org_id: "acme".into()
            }
        ),
        Err(Error::InvalidInput { field: "task", .. })
    ));
    assert!(matches!(
        fx.tokens.issue_task(
            "t",
            &TaskSubject::User {
                user_id: "u-1".into(),
                org_id: "acme".into()
            }
        ),
        Err(Error::UnknownSubject)
    ));
    fx.clock.advance_ms(600_000 + 31_000);
    let fresh = fx
        .tokens
        .issue_task(
            "t",
            &TaskSubject::User {
                user_id: "u-7".into(),
                org_id: "acme".into(),
            },
        )
        .unwrap();
    fx.clock.advance_ms(631_000);
    assert_eq!(
        fx.tokens.verify_task(&fresh.token, "t").err(),
        Some(Invalid::Expired)
    );
}

#[test]
fn tokens_in_flight_survive_rotation_during_grace_and_die_after() {
    let fx = fx();
    let old = login(&fx, "u-42");
    let old_kid = segments(&old.access_token).0["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let rotated = fx.keys.rotate(&Purpose::jwt(), None).unwrap();
    let new = login(&fx, "u-7");
    assert_eq!(segments(&new.access_token).0["kid"], rotated.kid.as_str());
    let kids: Vec<String> = fx
        .tokens
        .jwks()
        .keys
        .iter()
        .map(|k| k.kid.clone())
        .collect();
    assert!(kids.contains(&old_kid) && kids.contains(&rotated.kid));
    fx.tokens.verify_access(&old.access_token).unwrap();
    fx.tokens.verify_access(&new.access_token).unwrap();
    // Grace = 15 min + 30 s leeway (the fixture's key config).
    fx.clock.advance_ms(Config::default().key_grace_ms() - 1);
    fx.tokens.verify_access(&new.access_token).unwrap();
    fx.clock.advance_ms(1);
    assert_eq!(
        fx.tokens.verify_access(&old.access_token).err(),
        Some(Invalid::UnknownKid),
        "cached, but its key is gone"
    );
    fx.keys.advance().unwrap();
    let kids: Vec<String> = fx
        .tokens
        .jwks()
        .keys
        .iter()
        .map(|k| k.kid.clone())
        .collect();
    assert!(!kids.contains(&old_kid));
}

#[test]
fn tokens_verify_with_an_independent_library_using_only_the_jwks() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let fx = fx_with(Config::default(), alg);
        let issued = login(&fx, "u-42");
        let jwks_json = serde_json::to_string(&fx.tokens.jwks()).unwrap();
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks_json).unwrap();
        let kid = jsonwebtoken::decode_header(&issued.access_token)
            .unwrap()
            .kid
            .unwrap();
        let jwk = set.find(&kid).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let jalg = match alg {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            _ => jsonwebtoken::Algorithm::ES256,
        };
        let mut v = jsonwebtoken::Validation::new(jalg);
        v.validate_exp = false; // the fixture clock is in the future
        v.set_issuer(&["warden"]);
        let data = jsonwebtoken::decode::<Value>(&issued.access_token, &key, &v).unwrap();
        assert_eq!(data.claims["sub"], "u-42");
    }
}

#[test]
fn hs256_works_only_as_configured_and_is_never_published() {
    let fx = fx_with(Config::default(), Algorithm::HS256);
    let issued = login(&fx, "u-42");
    assert_eq!(segments(&issued.access_token).0["alg"], "HS256");
    fx.tokens.verify_access(&issued.access_token).unwrap();
    assert!(fx.tokens.jwks().keys.is_empty());
}

#[test]
fn config_bounds_are_all_reported() {
    let bad = Config {
        issuer: String::new(),
        access_ttl_ms: 60_000,
        leeway_ms: -1,
        reuse_grace_ms: 120_000,
        ..Config::default()
    };
    assert_eq!(bad.problems().len(), 4);
    let mut p = crate::config::Problems::default();
    let raw = RawConfig {
        access_ttl: Some("2m".into()),
        leeway: Some("soon".into()),
        refresh_idle: Some("0s".into()),
        ..RawConfig::default()
    };
    assert!(Config::from_raw(raw, &mut p).is_none());
    assert_eq!(p.items().len(), 2, "leeway and refresh_idle: {p}");
    assert!(Config::default().problems().is_empty());
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static FX: LazyLock<(Fx, String)> = LazyLock::new(|| {
        let fx = fx();
        let t = login(&fx, "u-42").access_token;
        (fx, t)
    });

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_strings_never_verify_or_panic(s in "\\PC{0,400}") {
            prop_assert!(FX.0.tokens.verify(&s, None).is_err());
        }

        #[test]
        fn dotted_base64_never_verifies(a in "[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,100}") {
            let s = format!("{a}.{b}.{c}");
            prop_assert!(FX.0.tokens.verify(&s, None).is_err());
        }

        #[test]
        fn any_single_change_to_a_real_token_fails_or_decodes_identically(
            pos in 0usize..2000, ch in proptest::char::range('!', '~')
        ) {
            let (fx, good) = &*FX;
            let mut bytes = good.clone().into_bytes();
            let i = pos % bytes.len();
            bytes[i] = ch as u8;
            let mutated = String::from_utf8(bytes).unwrap();
            let original = fx.tokens.verify(good, None).unwrap();
            if let Ok(c) = fx.tokens.verify(&mutated, None) {
                prop_assert_eq!(c, original);
            }
        }

        #[test]
        fn arbitrary_refresh_tokens_are_invalid(s in "\\PC{0,100}") {
            prop_assert!(matches!(FX.0.tokens.refresh(&s), Err(Error::RefreshInvalid)));
        }
    }
}

#[test]
fn prune_deletes_ended_sessions_and_forgets_their_revocations() {
    let fx = fx();
    let a = login(&fx, "u-42");
    let live = login(&fx, "u-7");
    fx.tokens.revoke_session(&a.session_id, "logout").unwrap();
    assert_eq!(fx.tokens.prune().unwrap(), 0);
    fx.clock
        .advance_ms(Config::default().refresh_absolute_ms - 1_000);
    let fresh = login(&fx, "u-7");
    fx.clock
        .advance_ms(1_000 + Config::default().key_grace_ms() + 1);
    assert_eq!(fx.tokens.prune().unwrap(), 2, "both week-old sessions");
    assert!(fx.tokens.revocations.read().unwrap().sessions.is_empty());
    assert_eq!(
        fx.tokens.verify_access(&a.access_token).err(),
        Some(Invalid::Expired)
    );
    assert!(matches!(
        fx.tokens.refresh(live.refresh_token.expose()),
        Err(Error::RefreshInvalid)
    ));
    fx.tokens.refresh(fresh.refresh_token.expose()).unwrap();
}

#[test]
fn the_verified_cache_stays_within_its_capacity() {
    let fx = fx_with(
        Config {
            cache_capacity: 4,
            ..Config::default()
        },
        Algorithm::EdDSA,
    );
    for _ in 0..10 {
        let t = login(&fx, "u-42").access_token;
        fx.tokens.verify_access(&t).unwrap();
        assert!(fx.tokens.cache_len() <= 4);
    }
}

#[test]
fn the_reuse_grace_never_hands_out_a_revoked_sessions_tokens() {
    let fx = fx();
    let first = login(&fx, "u-42");
    let second = fx.tokens.refresh(first.refresh_token.expose()).unwrap();
    let again = fx.tokens.refresh(first.refresh_token.expose()).unwrap();
    assert_eq!(again.refresh_token.expose(), second.refresh_token.expose());
    fx.tokens
        .revoke_session(&first.session_id, "logout")
        .unwrap();
    assert!(matches!(
        fx.tokens.refresh(first.refresh_token.expose()),
        Err(Error::SessionRevoked)
    ));
}

#[test]
fn a_second_factor_in_amr_marks_the_token_as_mfa() {
    let fx = fx();
    let check = |amr: &[&str], mfa: bool| {
        let t = fx
            .tokens
            .issue(&IssueRequest {
                user_id: "u-42".into(),
                org_id: "acme".into(),
                amr: amr.iter().map(|s| s.to_string()).collect(),
                device_id: Some("laptop-1".into()),
            })
            .unwrap();
        assert_eq!(
            fx.tokens.verify_access(&t.access_token).unwrap().mfa(),
            mfa,
            "{amr:?}"
        );
    };
    check(&["pwd"], false);
    check(&["pwd", "kba"], false);
    check(&["pwd", "otp"], true);
    check(&["hwk"], true);
    check(&["mfa", "pwd"], true);
}
