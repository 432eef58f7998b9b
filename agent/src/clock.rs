//! Time, injected.
//!
//! Token expiry, TOTP windows, replay windows, key rotation and audit
//! timestamps all depend on "now". Code asks a [`Clock`] instead of the system
//! so tests move time explicitly (never sleep) and stay deterministic.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;

    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// Shared clock handle used across the agent.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // A clock before 1970 is a broken host; report the epoch rather
            // than panic, and let expiry checks fail closed.
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            ms: AtomicI64::new(start_ms),
        })
    }

    pub fn advance_ms(&self, delta: i64) {
        self.ms.fetch_add(delta, Ordering::SeqCst);
    }

    pub fn set_ms(&self, ms: i64) {
        self.ms.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// The system clock moved by an adjustable offset, so end-to-end tests can
/// expire tokens and age keys in the real binary without sleeping. The agent
/// builds it only in debug builds, in development mode, with
/// `WARDEN_TEST_CLOCK=1`; release builds never do.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    pub fn advance_ms(&self, delta: i64) {
        self.offset_ms.fetch_add(delta, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        SystemClock
            .now_ms()
            .saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Formats Unix milliseconds as RFC 3339 UTC (`2026-12-04T19:52:55.123Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    match u64::try_from(secs) {
        Ok(s) => {
            let t = UNIX_EPOCH + std::time::Duration::from_secs(s);
            let base = humantime::format_rfc3339_seconds(t).to_string();
            // base ends with 'Z'; splice milliseconds in before it.
            format!("{}.{millis:03}Z", base.trim_end_matches('Z'))
        }
        Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
    }
}
