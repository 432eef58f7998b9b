//! Key age as metrics, computed when scraped so it is never stale.

use super::{KeyRing, KeyState};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};
use std::sync::Arc;

/// `warden_key_age_seconds` and `warden_key_rotation_due` per live key.
pub struct KeyMetrics {
    ring: Arc<KeyRing>,
    age: IntGaugeVec,
    due: IntGaugeVec,
}

impl KeyMetrics {
    pub fn new(ring: Arc<KeyRing>) -> Result<KeyMetrics, prometheus::Error> {
        Ok(KeyMetrics {
            ring,
            age: IntGaugeVec::new(
                Opts::new(
                    "warden_key_age_seconds",
                    "Age of each key that is not retired",
                ),
                &["kid", "purpose", "state"],
            )?,
            due: IntGaugeVec::new(
                Opts::new(
                    "warden_key_rotation_due",
                    "1 when the active key of a purpose is older than the rotation policy",
                ),
                &["purpose"],
            )?,
        })
    }
}

impl Collector for KeyMetrics {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.age.desc();
        d.extend(self.due.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.age.reset();
        self.due.reset();
        let now = self.ring.clock.now_ms();
        for k in self.ring.list() {
            if k.state == KeyState::Retired {
                continue;
            }
            self.age
                .with_label_values(&[k.kid.as_str(), k.purpose.as_str(), k.state.as_str()])
                .set(now.saturating_sub(k.created_at_ms).max(0) / 1000);
            if k.state == KeyState::Active {
                self.due
                    .with_label_values(&[k.purpose.as_str()])
                    .set(i64::from(k.rotation_due));
            }
        }
        let mut out = self.age.collect();
        out.extend(self.due.collect());
        out
    }
}
