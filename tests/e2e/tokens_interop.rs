//! Interop: a token issued by the agent verifies with PyJWT, an independent
//! implementation, given only the agent's `/v1/jwks`.
//!
//! Needs a Python with `pyjwt[crypto]`: `$WARDEN_TEST_PYTHON`, else
//! `.venv/bin/python` in the repository (`python3 -m venv .venv &&
//! .venv/bin/pip install 'pyjwt[crypto]'`). Without one the test says so and
//! passes, unless `WARDEN_REQUIRE_PYJWT` is set: `scripts/test.d/tokens-interop`
//! (run by `scripts/test`, hence CI) creates the venv and sets it.

use crate::support::repo_root;
use crate::tokens_support::{builder, login};
use std::io::Write as _;
use std::process::{Command, Stdio};

const SCRIPT: &str = r#"
import json, sys, jwt
data = json.load(sys.stdin)
jwks = jwt.PyJWKSet.from_dict(data["jwks"])
token = data["token"]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks.keys if k.key_id == kid)
claims = jwt.decode(token, key.key, algorithms=[data["alg"]], issuer="warden",
                    options={"require": ["exp", "iat", "iss", "sub"]})
# Tampering must fail in PyJWT too.
head, body, sig = token.split(".")
forged = head + "." + body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + sig
try:
    jwt.decode(forged, key.key, algorithms=[data["alg"]], issuer="warden")
    raise SystemExit("forged token verified")
except jwt.InvalidTokenError:
    pass
print(json.dumps(claims))
"#;

fn python() -> Option<std::path::PathBuf> {
    let candidate = std::env::var_os("WARDEN_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let ok = Command::new(&candidate)
        .args(["-c", "import jwt, cryptography"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(candidate)
}

#[test]
fn pyjwt_verifies_warden_tokens_with_only_the_jwks() {
    let Some(py) = python() else {
        assert!(
            std::env::var_os("WARDEN_REQUIRE_PYJWT").is_none(),
            "WARDEN_REQUIRE_PYJWT is set but no Python with pyjwt[crypto] was found"
        );
        eprintln!("SKIPPED: no Python with pyjwt[crypto] (set WARDEN_TEST_PYTHON or create .venv)");
        return;
    };
    for alg in ["EdDSA", "ES256"] {
        let d = builder().set("keys.token_algorithm", alg).start();
        let t = login(&d, "alice", "acme");
        let jwks = d.get("/v1/jwks").json();
        let input = serde_json::json!({"jwks": jwks, "token": t["access_token"], "alg": alg});
        let mut child = Command::new(&py)
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{alg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["org"], "acme");
        assert_eq!(claims["sid"], t["session_id"]);
    }
}
