/// Token settings (`[tokens]`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `iss` of every token, and the only issuer accepted.
    pub issuer: String,
    /// Access-token lifetime (5-60 min; default 15).
    pub access_ttl_ms: i64,
    /// Task-token lifetime: a Celery task must start within it.
    pub task_ttl_ms: i64,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    pub leeway_ms: i64,
    /// A refresh token unused this long dies (default 8 h).
    pub refresh_idle_ms: i64,
    /// A session dies this long after login, refreshed or not (default 7 d).
    pub refresh_absolute_ms: i64,
    /// Concurrent refreshes of one token within this window get the same
    /// successor instead of tripping reuse detection (browser tabs racing).
    pub reuse_grace_ms: i64,
    /// Verified tokens remembered to skip the signature check on repeats.
    pub cache_capacity: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            issuer: "warden".to_string(),
            access_ttl_ms: 15 * 60_000,
            task_ttl_ms: 10 * 60_000,
            leeway_ms: 30_000,
            refresh_idle_ms: 8 * 3_600_000,
            refresh_absolute_ms: 7 * 86_400_000,
            reuse_grace_ms: 5_000,
            cache_capacity: 65_536,
        }
    }
}

impl Config {
    /// Checks the bounds, reporting every problem.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.issuer.is_empty() {
            out.push("tokens.issuer must not be empty".to_string());
        }
        if !(5 * 60_000..=60 * 60_000).contains(&self.access_ttl_ms) {
            out.push("tokens.access_ttl must be between 5 and 60 minutes".to_string());
        }
        if !(1_000..=24 * 3_600_000).contains(&self.task_ttl_ms) {
            out.push("tokens.task_ttl must be between 1 second and 24 hours".to_string());
        }
        if !(0..=5 * 60_000).contains(&self.leeway_ms) {
            out.push("tokens.leeway must be at most 5 minutes".to_string());
        }
        if self.refresh_idle_ms <= 0 || self.refresh_idle_ms > self.refresh_absolute_ms {
            out.push(
                "tokens.refresh_idle must be positive and at most refresh_absolute".to_string(),
            );
        }
        if !(0..=60_000).contains(&self.reuse_grace_ms) {
            out.push("tokens.reuse_grace must be at most 60 seconds".to_string());
        }
        out
    }

    /// The longest lifetime of any token plus leeway: how long a replaced
    /// signing key must keep verifying.
    pub fn key_grace_ms(&self) -> i64 {
        self.access_ttl_ms.max(self.task_ttl_ms) + self.leeway_ms
    }
}
