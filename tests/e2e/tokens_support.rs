//! Helpers shared by the token end-to-end tests.

use crate::support::{short_tempdir, Builder, Daemon};
use serde_json::{json, Value};

/// The users file every token test starts from.
pub const USERS: &str = r#"
[[users]]
id = "alice"
org = "acme"
roles = ["inventory_supervisor"]

[[users]]
id = "bob"
org = "acme"
roles = ["inventory_clerk"]

[[users]]
id = "carol"
org = "globex"
roles = ["org_admin"]
"#;

/// A daemon builder with the users file written and keys rotating at once.
pub fn builder() -> Builder {
    let tmp = short_tempdir();
    let users = tmp.path().join("users.toml");
    std::fs::write(&users, USERS).unwrap();
    Daemon::builder()
        .in_dir(tmp)
        .set("tokens.directory", users.to_string_lossy().to_string())
        .set("keys.propagation_delay", "0s")
}

pub fn start() -> Daemon {
    builder().start()
}

pub fn users_file(d: &Daemon) -> std::path::PathBuf {
    d.dir.join("users.toml")
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
