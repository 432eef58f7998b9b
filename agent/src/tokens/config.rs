//! `[tokens]`: lifetimes, leeway, refresh policy and the verified-token
//! cache. Bounds are enforced here (access tokens 5-60 min) so a typo cannot
//! mint day-long tokens.

use crate::config::Problems;
use crate::keys::{duration_ms, ser_ms};
use serde::{Deserialize, Serialize};

/// Token settings (`[tokens]`).
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `iss` of every token, and the only issuer accepted.
    pub issuer: String,
    /// Access-token lifetime (5-60 min; default 15).
    #[serde(rename = "access_ttl", serialize_with = "ser_ms")]
    pub access_ttl_ms: i64,
    /// Task-token lifetime: a Celery task must start within it.
    #[serde(rename = "task_ttl", serialize_with = "ser_ms")]
    pub task_ttl_ms: i64,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    #[serde(rename = "leeway", serialize_with = "ser_ms")]
    pub leeway_ms: i64,
    /// A refresh token unused this long dies (default 8 h).
    #[serde(rename = "refresh_idle", serialize_with = "ser_ms")]
    pub refresh_idle_ms: i64,
    /// A session dies this long after login, refreshed or not (default 7 d).
    #[serde(rename = "refresh_absolute", serialize_with = "ser_ms")]
    pub refresh_absolute_ms: i64,
    /// Concurrent refreshes of one token within this window get the same
    /// successor instead of tripping reuse detection (browser tabs racing).
    #[serde(rename = "reuse_grace", serialize_with = "ser_ms")]
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
            // ~1 KiB per entry at most: 16 MiB worst case.
            cache_capacity: 16_384,
        }
    }
}

/// `[tokens]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub issuer: Option<String>,
    pub access_ttl: Option<String>,
    pub task_ttl: Option<String>,
    pub leeway: Option<String>,
    pub refresh_idle: Option<String>,
    pub refresh_absolute: Option<String>,
    pub reuse_grace: Option<String>,
    pub cache_capacity: Option<usize>,
}

impl Config {
    /// Builds the typed section, reporting every problem.
    pub fn from_raw(raw: RawConfig, p: &mut Problems) -> Option<Config> {
        let d = Config::default();
        let access = duration_ms(
            p,
            "tokens.access_ttl",
            raw.access_ttl,
            d.access_ttl_ms,
            false,
        );
        let task = duration_ms(p, "tokens.task_ttl", raw.task_ttl, d.task_ttl_ms, false);
        let leeway = duration_ms(p, "tokens.leeway", raw.leeway, d.leeway_ms, true);
        let idle = duration_ms(
            p,
            "tokens.refresh_idle",
            raw.refresh_idle,
            d.refresh_idle_ms,
            false,
        );
        let absolute = duration_ms(
            p,
            "tokens.refresh_absolute",
            raw.refresh_absolute,
            d.refresh_absolute_ms,
            false,
        );
        let grace = duration_ms(
            p,
            "tokens.reuse_grace",
            raw.reuse_grace,
            d.reuse_grace_ms,
            true,
        );
        let cfg = Config {
            issuer: raw.issuer.unwrap_or(d.issuer),
            access_ttl_ms: access?,
            task_ttl_ms: task?,
            leeway_ms: leeway?,
            refresh_idle_ms: idle?,
            refresh_absolute_ms: absolute?,
            reuse_grace_ms: grace?,
            cache_capacity: raw.cache_capacity.unwrap_or(d.cache_capacity),
        };
        let problems = cfg.problems();
        for (path, msg) in &problems {
            p.add(path, msg);
        }
        problems.is_empty().then_some(cfg)
    }

    /// Checks the bounds, reporting every problem as (option, message).
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if self.issuer.is_empty() {
            out.push(("tokens.issuer", "must not be empty"));
        }
        if !(5 * 60_000..=60 * 60_000).contains(&self.access_ttl_ms) {
            out.push(("tokens.access_ttl", "must be between 5 and 60 minutes"));
        }
        if !(1_000..=24 * 3_600_000).contains(&self.task_ttl_ms) {
            out.push(("tokens.task_ttl", "must be between 1 second and 24 hours"));
        }
        if !(0..=5 * 60_000).contains(&self.leeway_ms) {
            out.push(("tokens.leeway", "must be at most 5 minutes"));
        }
        if self.refresh_idle_ms <= 0 || self.refresh_idle_ms > self.refresh_absolute_ms {
            out.push((
                "tokens.refresh_idle",
                "must be positive and at most refresh_absolute",
            ));
        }
        if !(0..=60_000).contains(&self.reuse_grace_ms) {
            out.push(("tokens.reuse_grace", "must be at most 60 seconds"));
        }
        out
    }

    /// The longest lifetime of any token plus leeway: how long a replaced
    /// signing key must keep verifying.
    pub fn key_grace_ms(&self) -> i64 {
        self.access_ttl_ms.max(self.task_ttl_ms) + self.leeway_ms
    }
}
