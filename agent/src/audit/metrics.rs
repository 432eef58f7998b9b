//! Audit metrics (listed in `docs/telemetry.md`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Handles to every audit metric; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// Records made durable.
    pub appended: IntCounter,
    /// Group commits (transactions, each one fsync).
    pub commits: IntCounter,
    /// Records per group commit.
    pub batch_size: Histogram,
    /// Seconds from enqueue to durable acknowledgement.
    pub ack_latency: Histogram,
    /// Records refused, by reason (`backpressure`, `hard_limit`, `invalid`,
    /// `write_failed`).
    pub rejected: IntCounterVec,
    /// Group commits that failed (nothing acknowledged).
    pub write_failures: IntCounter,
    /// Records accepted above the cap under policy `alert`.
    pub over_cap: IntCounter,
    pub checkpoints: IntCounter,
    pub head_seq: IntGauge,
    pub unshipped_records: IntGauge,
    pub unshipped_bytes: IntGauge,
    pub oldest_unshipped_age_seconds: IntGauge,
    pub shipped: IntCounter,
    pub ship_failures: IntCounter,
    pub pruned: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("audit::Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the metrics and registers them with `registry`.
    pub fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics::unregistered()?;
        registry.register(Box::new(m.appended.clone()))?;
        registry.register(Box::new(m.commits.clone()))?;
        registry.register(Box::new(m.batch_size.clone()))?;
        registry.register(Box::new(m.ack_latency.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.write_failures.clone()))?;
        registry.register(Box::new(m.over_cap.clone()))?;
        registry.register(Box::new(m.checkpoints.clone()))?;
        registry.register(Box::new(m.head_seq.clone()))?;
        registry.register(Box::new(m.unshipped_records.clone()))?;
        registry.register(Box::new(m.unshipped_bytes.clone()))?;
        registry.register(Box::new(m.oldest_unshipped_age_seconds.clone()))?;
        registry.register(Box::new(m.shipped.clone()))?;
        registry.register(Box::new(m.ship_failures.clone()))?;
        registry.register(Box::new(m.pruned.clone()))?;
        Ok(m)
    }

    /// Metrics not attached to any registry (tests, tools).
    pub fn unregistered() -> Result<Metrics, prometheus::Error> {
        Ok(Metrics {
            appended: IntCounter::new("warden_audit_appended_total", "audit records made durable")?,
            commits: IntCounter::new(
                "warden_audit_commits_total",
                "audit group commits (one transaction and fsync each)",
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "warden_audit_batch_records",
                    "records per audit group commit",
                )
                .buckets(vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0]),
            )?,
            ack_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "warden_audit_ack_seconds",
                    "time from enqueue to durable acknowledgement of an audit append",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                ]),
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "warden_audit_rejected_total",
                    "audit records refused, by reason",
                ),
                &["reason"],
            )?,
            write_failures: IntCounter::new(
                "warden_audit_write_failures_total",
                "audit group commits that failed; nothing in them was acknowledged",
            )?,
            over_cap: IntCounter::new(
                "warden_audit_over_cap_total",
                "audit records accepted above the unshipped cap under policy alert",
            )?,
            checkpoints: IntCounter::new(
                "warden_audit_checkpoints_total",
                "signed audit checkpoints written",
            )?,
            head_seq: IntGauge::new(
                "warden_audit_head_seq",
                "sequence number of the last durable audit record",
            )?,
            unshipped_records: IntGauge::new(
                "warden_audit_unshipped_records",
                "durable audit records not yet shipped to the sink",
            )?,
            unshipped_bytes: IntGauge::new(
                "warden_audit_unshipped_bytes",
                "bytes of durable audit records not yet shipped",
            )?,
            oldest_unshipped_age_seconds: IntGauge::new(
                "warden_audit_oldest_unshipped_age_seconds",
                "age of the oldest audit record not yet shipped (0 when none)",
            )?,
            shipped: IntCounter::new(
                "warden_audit_shipped_total",
                "audit records shipped to the sink",
            )?,
            ship_failures: IntCounter::new(
                "warden_audit_ship_failures_total",
                "failed attempts to ship audit records (retried with backoff)",
            )?,
            pruned: IntCounter::new(
                "warden_audit_pruned_total",
                "shipped audit records deleted by retention",
            )?,
        })
    }
}
