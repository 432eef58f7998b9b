//! Helpers shared by the token end-to-end tests.

use crate::support::{Builder, Daemon};
use serde_json::{json, Value};

/// A daemon on its own copy of the example registry (alice and bob in acme,
/// carol in globex) with keys rotating at once.
pub fn builder() -> Builder {
    Daemon::builder()
        .own_registry()
        .set("keys.propagation_delay", "0s")
}

pub fn start() -> Daemon {
    builder().start()
}

/// The directory file of the daemon's registry copy (roles live here).
pub fn directory_file(d: &Daemon) -> std::path::PathBuf {
    d.dir.join("policies/directory.toml")
}

/// Logs `user` into `org`; asserts success.
pub fn login(d: &Daemon, user: &str, org: &str) -> Value {
    let r = d.post_json(
        "/v1/tokens/issue",
        &json!({"user_id": user, "org_id": org, "amr": ["pwd"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

pub fn verify(d: &Daemon, token: &str) -> Value {
    let r = d.post_json("/v1/tokens/verify", &json!({ "token": token }));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// The `reason` of a failed verification (panics if it verified).
pub fn reason(d: &Daemon, token: &str) -> String {
    let v = verify(d, token);
    assert_eq!(v["valid"], false, "{v}");
    v["reason"].as_str().unwrap().to_string()
}

pub fn refresh(d: &Daemon, refresh_token: &str) -> crate::support::Response {
    d.post_json(
        "/v1/tokens/refresh",
        &json!({ "refresh_token": refresh_token }),
    )
}

pub fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let h = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h)
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_string()
}
