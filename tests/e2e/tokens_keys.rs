//! Keys end to end: the JWKS, rotation with tokens in flight, rollback,
//! retirement through the `warden keys` CLI, status and metrics, the KEK, and
//! every JWT attack against the running agent.

use crate::support::Daemon;
use crate::tokens_support::{builder, kid_of, login, reason, start, verify};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

fn cli_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.cli(args);
    assert!(
        out.status.success(),
        "warden {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn jwks_kids(d: &Daemon) -> Vec<String> {
    d.get("/v1/jwks").json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn rotation_with_tokens_in_flight_rollback_and_retire_through_the_cli() {
    let d = start();
    let old = login(&d, "alice", "acme");
    let old_token = old["access_token"].as_str().unwrap().to_string();
    let old_kid = kid_of(&old_token);
    assert!(jwks_kids(&d).contains(&old_kid));

    let out = cli_ok(&d, &["keys", "rotate", "--purpose", "jwt"]);
    let new_kid = out.split_whitespace().next().unwrap().to_string();
    assert!(out.contains("active"), "{out}");
    let kids = jwks_kids(&d);
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );

    let new = login(&d, "bob", "acme");
    assert_eq!(kid_of(new["access_token"].as_str().unwrap()), new_kid);
    assert_eq!(
        verify(&d, &old_token)["valid"],
        true,
        "old key verifies in grace"
    );

    let list = cli_ok(&d, &["keys", "list"]);
    assert!(
        list.contains(&old_kid) && list.contains("retiring"),
        "{list}"
    );

    // Rollback: the old key signs again; the new one verifies in grace.
    let out = cli_ok(&d, &["keys", "rollback", "--purpose", "jwt"]);
    assert!(out.starts_with(&old_kid), "{out}");
    let back = login(&d, "alice", "acme");
    assert_eq!(kid_of(back["access_token"].as_str().unwrap()), old_kid);
    assert_eq!(
        verify(&d, new["access_token"].as_str().unwrap())["valid"],
        true
    );

    // Retire the rolled-back-from key: its tokens die at once.
    cli_ok(&d, &["keys", "retire", &new_kid]);
    assert_eq!(
        reason(&d, new["access_token"].as_str().unwrap()),
        "unknown_kid"
    );
    assert!(!jwks_kids(&d).contains(&new_kid));
    assert_eq!(verify(&d, &old_token)["valid"], true);

    // The active key cannot be retired; the CLI says why and fails.
    let out = d.cli(&["keys", "retire", &old_kid]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key_active"));

    let listed = cli_ok(&d, &["keys", "list", "--json"]);
    let v: Value = serde_json::from_str(&listed).unwrap();
    let states: Vec<(&str, &str)> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["purpose"] == "jwt")
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&(old_kid.as_str(), "active")), "{states:?}");
    assert!(
        states.contains(&(new_kid.as_str(), "retired")),
        "{states:?}"
    );
}

#[test]
fn a_propagation_delay_publishes_before_signing_and_rollback_cancels() {
    let d = builder().set("keys.propagation_delay", "10m").start();
    let before = login(&d, "alice", "acme");
    let kid = kid_of(before["access_token"].as_str().unwrap());
    let r = d.post_json("/v1/admin/keys/rotate", &json!({"purpose": "jwt"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let pending = r.json()["key"].clone();
    assert_eq!(pending["state"], "pending");
    assert!(jwks_kids(&d).contains(&pending["kid"].as_str().unwrap().to_string()));
    let after = login(&d, "alice", "acme");
    assert_eq!(
        kid_of(after["access_token"].as_str().unwrap()),
        kid,
        "still the old signer"
    );
    let r = d.post_json("/v1/admin/keys/rotate", &json!({"purpose": "jwt"}));
    assert_eq!(
        (r.status, r.error_code()),
        (409, "rotation_pending".to_string())
    );
    let r = d.post_json("/v1/admin/keys/rollback", &json!({"purpose": "jwt"}));
    assert_eq!(r.json()["key"]["state"], "retired");
    assert_eq!(jwks_kids(&d).len(), 2, "jwt and task keys only");
    let r = d.post_json("/v1/admin/keys/rollback", &json!({"purpose": "jwt"}));
    assert_eq!(
        (r.status, r.error_code()),
        (409, "nothing_to_roll_back".to_string())
    );
}

#[test]
fn key_admin_rejects_bad_requests() {
    let d = start();
    let cases = [
        (
            "/v1/admin/keys/rotate",
            json!({"purpose": "nope"}),
            400,
            "bad_request",
        ),
        (
            "/v1/admin/keys/rotate",
            json!({"purpose": "jwt", "alg": "RS256"}),
            400,
            "bad_request",
        ),
        (
            "/v1/admin/keys/rotate",
            json!({"purpose": "audit", "alg": "HS256"}),
            400,
            "bad_request",
        ),
        (
            "/v1/admin/keys/rotate",
            json!({"purpose": "jwt", "extra": 1}),
            400,
            "bad_request",
        ),
        (
            "/v1/admin/keys/retire",
            json!({"kid": "jwt-doesnotexist"}),
            404,
            "unknown_key",
        ),
        ("/v1/admin/keys/rollback", json!({}), 400, "bad_request"),
    ];
    for (path, body, status, code) in cases {
        let r = d.post_json(path, &body);
        assert_eq!(
            (r.status, r.error_code()),
            (status, code.to_string()),
            "{path} {body}: {}",
            r.text()
        );
    }
    // Webhook keys are created on demand by rotating their purpose.
    let r = d.post_json(
        "/v1/admin/keys/rotate",
        &json!({"purpose": "webhook:bank", "alg": "HS256"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["key"]["state"], "active");
    assert_eq!(jwks_kids(&d).len(), 2, "HMAC keys are never published");
}

#[test]
fn status_and_metrics_report_key_ages() {
    let d = start();
    let s = d.get("/v1/status").json();
    let keys = s["keys"].as_array().unwrap();
    let purposes: Vec<&str> = keys
        .iter()
        .map(|k| k["purpose"].as_str().unwrap())
        .collect();
    for p in ["jwt", "task", "audit"] {
        assert!(purposes.contains(&p), "{s}");
    }
    for k in keys {
        assert_eq!(k["state"], "active");
        assert_eq!(k["age_days"], 0);
        assert_eq!(k["rotation_due"], false);
    }
    assert_eq!(s["kek"], "development");
    let metrics = d.get("/metrics").text();
    assert!(
        metrics.contains("warden_key_age_seconds{kid=\"jwt-"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warden_key_rotation_due{purpose=\"jwt\"} 0"),
        "{metrics}"
    );
    assert!(d.log().contains("DEVELOPMENT KEY-ENCRYPTION KEY"));
}

#[test]
fn production_refuses_to_start_without_a_kek_and_uses_the_one_given() {
    let d = builder().set("mode", "production").no_wait().start();
    let mut d = d;
    let status = d.wait_exit(std::time::Duration::from_secs(20));
    assert!(!status.success());
    assert!(d.log().contains("no key-encryption key"), "{}", d.log());

    let dir = d.into_dir();
    let kek = dir.path().join("kek");
    std::fs::write(&kek, [42u8; 32]).unwrap();
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let d = Daemon::builder()
        .in_dir(dir)
        .own_registry()
        .set("mode", "production")
        .env("WARDEN_KEK_FILE", &kek.to_string_lossy())
        .start();
    assert_eq!(d.get("/v1/status").json()["kek"], "file");
    let t = login(&d, "alice", "acme");
    assert_eq!(
        verify(&d, t["access_token"].as_str().unwrap())["valid"],
        true
    );
    // The sealed keys do not open under another KEK: start-up fails clearly.
    let mut d = d;
    assert!(d.stop().success());
    std::fs::write(&kek, [43u8; 32]).unwrap();
    let out = std::process::Command::new(crate::support::warden_bin())
        .args(["serve", "--config"])
        .arg(&d.config_path)
        .current_dir(&d.dir)
        .env_clear()
        .env("WARDEN_KEK_FILE", &kek)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = String::from_utf8_lossy(&out.stderr);
    assert!(out.contains("wrong key-encryption key"), "{out}");
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn forge(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(sig)
    )
}

#[test]
fn jwt_attacks_fail_over_the_socket() {
    let d = start();
    let t = login(&d, "alice", "acme");
    let good = t["access_token"].as_str().unwrap().to_string();
    let kid = kid_of(&good);
    let parts: Vec<&str> = good.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let jwks = d.get("/v1/jwks").json();
    let x = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()["x"]
        .as_str()
        .unwrap()
        .to_string();
    let public = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let hs = |secret: &[u8], header: &Value, claims: &Value| {
        let msg = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            msg.as_bytes(),
        );
        format!("{msg}.{}", b64(tag.as_ref()))
    };
    let mut admin = claims.clone();
    admin["roles"] = json!(["admin"]);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            forge(&json!({"alg": "none", "kid": kid}), &admin, b""),
            "bad_algorithm",
        ),
        (
            "alg NoNe",
            forge(&json!({"alg": "NoNe", "kid": kid}), &admin, b""),
            "bad_algorithm",
        ),
        (
            "HS256 with the JWKS public key",
            hs(&public, &json!({"alg": "HS256", "kid": kid}), &admin),
            "bad_algorithm",
        ),
        (
            "HS256 with the base64 x",
            hs(x.as_bytes(), &json!({"alg": "HS256", "kid": kid}), &admin),
            "bad_algorithm",
        ),
        (
            "unknown kid",
            forge(
                &json!({"alg": "EdDSA", "kid": "jwt-ffffffffffffffff"}),
                &claims,
                &sig,
            ),
            "unknown_kid",
        ),
        (
            "missing kid",
            forge(&json!({"alg": "EdDSA"}), &claims, &sig),
            "malformed",
        ),
        (
            "kid injection",
            forge(
                &json!({"alg": "EdDSA", "kid": "x' OR '1'='1"}),
                &claims,
                &sig,
            ),
            "malformed",
        ),
        (
            "escalated claims, original signature",
            forge(
                &json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
                &admin,
                &sig,
            ),
            "bad_signature",
        ),
        ("garbage", "eyJhbGciOi.x.y".to_string(), "malformed"),
        ("empty", String::new(), "malformed"),
    ];
    for (name, token, expected) in cases {
        assert_eq!(reason(&d, &token), expected, "{name}");
    }
    assert_eq!(verify(&d, &good)["valid"], true);
    let metrics = d.get("/metrics").text();
    assert!(
        metrics.contains("warden_token_rejected_total{reason=\"bad_algorithm\"} 4"),
        "{metrics}"
    );
}
