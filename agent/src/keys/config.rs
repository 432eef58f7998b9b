//! `[keys]`: where the KEK is, which algorithm new token keys use, and the
//! rotation timings. Defaults follow from the token lifetimes so that a
//! rotation never cuts a token in flight short.

use super::Algorithm;
use crate::config::Problems;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Key-ring settings (`[keys]`).
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// KEK file; falls back to `WARDEN_KEK_FILE`, then the systemd credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kek_file: Option<PathBuf>,
    /// Algorithm of new `jwt` and `task` keys. HS256 only when explicitly set.
    pub token_algorithm: Algorithm,
    /// How long a rotated-in key is published (JWKS) before it signs, so every
    /// verifier has fetched it by the time tokens carry its kid.
    #[serde(rename = "propagation_delay", serialize_with = "ser_ms")]
    pub propagation_delay_ms: i64,
    /// How long a replaced key keeps verifying: the longest token lifetime
    /// plus leeway, so no token in flight is cut short by a rotation.
    #[serde(rename = "grace", serialize_with = "ser_ms")]
    pub grace_ms: i64,
    /// Keys older than this are flagged (and rotated when `auto_rotate`).
    #[serde(rename = "rotation_period", serialize_with = "ser_ms")]
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
            // 10 min; 30 s leeway on top.
            grace_ms: 15 * 60_000 + 30_000,
            rotation_period_ms: 90 * DAY_MS,
            auto_rotate: false,
        }
    }
}

/// `[keys]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub kek_file: Option<PathBuf>,
    pub token_algorithm: Option<String>,
    pub propagation_delay: Option<String>,
    pub grace: Option<String>,
    pub rotation_period: Option<String>,
    pub auto_rotate: Option<bool>,
}

impl Config {
    /// Builds the typed section; `default_grace_ms` comes from the token
    /// lifetimes (longest lifetime plus leeway).
    pub fn from_raw(raw: RawConfig, default_grace_ms: i64, p: &mut Problems) -> Option<Config> {
        let d = Config::default();
        let token_algorithm = match raw.token_algorithm.as_deref() {
            None => Some(d.token_algorithm),
            Some(s) => match Algorithm::parse(s) {
                Ok(a) => Some(a),
                Err(e) => {
                    p.add("keys.token_algorithm", e);
                    None
                }
            },
        };
        let propagation = duration_ms(
            p,
            "keys.propagation_delay",
            raw.propagation_delay,
            d.propagation_delay_ms,
            true,
        );
        let grace = duration_ms(p, "keys.grace", raw.grace, default_grace_ms, false);
        let period = duration_ms(
            p,
            "keys.rotation_period",
            raw.rotation_period,
            d.rotation_period_ms,
            false,
        );
        if let (Some(g), Some(per)) = (grace, period) {
            if g >= per {
                p.add("keys.grace", "must be shorter than keys.rotation_period");
            }
        }
        Some(Config {
            kek_file: raw.kek_file,
            token_algorithm: token_algorithm?,
            propagation_delay_ms: propagation?,
            grace_ms: grace?,
            rotation_period_ms: period?,
            auto_rotate: raw.auto_rotate.unwrap_or(false),
        })
    }
}

/// Parses an optional human duration (`"90d"`, `"5m"`, `"0s"`) into ms.
pub(crate) fn duration_ms(
    p: &mut Problems,
    path: &str,
    text: Option<String>,
    default_ms: i64,
    allow_zero: bool,
) -> Option<i64> {
    let Some(text) = text else {
        return Some(default_ms);
    };
    match humantime::parse_duration(&text) {
        Ok(d) if d.is_zero() && !allow_zero => {
            p.add(path, "must be greater than zero");
            None
        }
        Ok(d) => match i64::try_from(d.as_millis()) {
            Ok(ms) => Some(ms),
            Err(_) => {
                p.add(path, "is too long");
                None
            }
        },
        Err(e) => {
            p.add(
                path,
                format!("{text:?} is not a duration ({e}); use e.g. \"5m\""),
            );
            None
        }
    }
}

/// Serialises milliseconds in the human form the config accepts, in days,
/// hours, minutes, seconds and milliseconds (`"90d"`, `"15m30s"`), never in
/// months or years, whose length humantime only approximates.
pub(crate) fn ser_ms<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&human_ms(*ms))
}

pub(crate) fn human_ms(ms: i64) -> String {
    if ms <= 0 {
        return "0s".to_string();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, size) in [
        ("d", DAY_MS),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}
