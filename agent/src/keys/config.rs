use super::Algorithm;
use std::path::PathBuf;

/// Key-ring settings (`[keys]`).
#[derive(Debug, Clone)]
pub struct Config {
    /// KEK file; falls back to `WARDEN_KEK_FILE`, then the systemd credential.
    pub kek_file: Option<PathBuf>,
    /// Algorithm of new `jwt` and `task` keys. HS256 only when explicitly set.
    pub token_algorithm: Algorithm,
    /// How long a rotated-in key is published (JWKS) before it signs, so every
    /// verifier has fetched it by the time tokens carry its kid.
    pub propagation_delay_ms: i64,
    /// How long a replaced key keeps verifying: the longest token lifetime
    /// plus leeway, so no token in flight is cut short by a rotation.
    pub grace_ms: i64,
    /// Keys older than this are flagged (and rotated when `auto_rotate`).
    pub rotation_period_ms: i64,
    pub auto_rotate: bool,
}

pub const DAY_MS: i64 = 86_400_000;

impl Default for Config {
    fn default() -> Config {
        Config {
            kek_file: None,
            token_algorithm: Algorithm::EdDSA,
            propagation_delay_ms: 5 * 60_000,
            // Default access-token lifetime is 15 min and the task-token one
            // 10 min; 60 s leeway on top.
            grace_ms: 16 * 60_000,
            rotation_period_ms: 90 * DAY_MS,
            auto_rotate: false,
        }
    }
}
