//! What a run measured, as text for people and JSON for scripts, plus the
//! side-by-side table that compares a target with the floor.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::run::{new_histogram, RunConfig};

/// Latency percentiles in microseconds (fractional, so sub-microsecond
/// differences between the floor and a target stay visible).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// Percentiles of a histogram recorded in nanoseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1_000.0;
        if h.is_empty() {
            return Self {
                min: 0.0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            min: us(h.min()),
            mean: h.mean() / 1_000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// What the connections counted in the measured window; adds up across
/// connections of one run and across rounds.
#[derive(Clone, Debug, Serialize)]
pub struct Counts {
    /// Completed requests (any status).
    pub requests: u64,
    /// Transport failures and timeouts: no answer at all.
    pub errors: u64,
    /// Answers whose status was not 2xx.
    pub non_2xx: u64,
    pub reconnects: u64,
    pub statuses: BTreeMap<u16, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Latency of every completed request, in nanoseconds.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            requests: 0,
            errors: 0,
            non_2xx: 0,
            reconnects: 0,
            statuses: BTreeMap::new(),
            first_error: None,
            histogram: new_histogram(),
        }
    }
}

impl Counts {
    /// Notes a failure; only failures in the measured window are counted,
    /// but the first one is kept either way to explain the run.
    pub fn error(&mut self, measured: bool, what: String) {
        if measured {
            self.errors += 1;
        }
        self.first_error.get_or_insert(what);
    }

    pub fn merge(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.non_2xx += other.non_2xx;
        self.reconnects += other.reconnects;
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        // Both histograms have the same fixed bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }
}

/// The outcome of one run against one socket.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub socket: String,
    pub method: String,
    pub path: String,
    pub connections: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub throughput_rps: f64,
    #[serde(flatten)]
    pub counts: Counts,
    pub latency_us: Latency,
}

fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

impl Report {
    pub fn new(cfg: &RunConfig, elapsed: Duration, counts: Counts) -> Self {
        let secs = elapsed.as_secs_f64();
        Self {
            socket: cfg.socket.display().to_string(),
            method: cfg.request.method.to_string(),
            path: cfg.request.path.clone(),
            connections: cfg.connections,
            warmup_s: cfg.warmup.as_secs_f64(),
            duration_s: secs,
            throughput_rps: per_second(counts.requests, secs),
            latency_us: Latency::from_histogram(&counts.histogram),
            counts,
        }
    }

    /// Folds another run of the same request and concurrency into this one
    /// (counts and histograms add up, throughput is over the summed time),
    /// so interleaved rounds against a floor and a target compare under the
    /// same background load.
    pub fn merge(&mut self, other: &Report) {
        self.duration_s += other.duration_s;
        self.counts.merge(&other.counts);
        self.latency_us = Latency::from_histogram(&self.counts.histogram);
        self.throughput_rps = per_second(self.counts.requests, self.duration_s);
    }

    /// True when every measured request got a 2xx answer and none failed.
    pub fn is_clean(&self) -> bool {
        let c = &self.counts;
        c.errors == 0 && c.non_2xx == 0 && c.requests > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_us;
        writeln!(
            f,
            "target       unix:{} {} {}",
            self.socket, self.method, self.path
        )?;
        writeln!(
            f,
            "load         {} connection(s), {:.2} s measured after {:.2} s warm-up",
            self.connections, self.duration_s, self.warmup_s
        )?;
        writeln!(
            f,
            "requests     {} ({:.0} req/s), errors {}, non-2xx {}, reconnects {}",
            self.counts.requests,
            self.throughput_rps,
            self.counts.errors,
            self.counts.non_2xx,
            self.counts.reconnects
        )?;
        let statuses: Vec<String> = self
            .counts
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        writeln!(f, "statuses     {}", statuses.join(", "))?;
        writeln!(
            f,
            "latency (us) p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )?;
        if let Some(e) = &self.counts.first_error {
            writeln!(f, "first error  {e}")?;
        }
        Ok(())
    }
}

/// A target and the floor measured at the same concurrency.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub connections: usize,
    pub floor: Report,
    pub target: Report,
    /// target / floor for latencies, floor / target for throughput: above 1.0
    /// means the target is slower.
    pub ratio_p50: f64,
    pub ratio_p99: f64,
    pub ratio_throughput: f64,
}

fn ratio(slow: f64, fast: f64) -> f64 {
    if fast > 0.0 {
        slow / fast
    } else {
        f64::INFINITY
    }
}

impl Comparison {
    pub fn new(floor: Report, target: Report) -> Self {
        Self {
            connections: target.connections,
            ratio_p50: ratio(target.latency_us.p50, floor.latency_us.p50),
            ratio_p99: ratio(target.latency_us.p99, floor.latency_us.p99),
            ratio_throughput: ratio(floor.throughput_rps, target.throughput_rps),
            floor,
            target,
        }
    }

    /// A fixed-width table, one floor row and one target row per
    /// concurrency, latencies in microseconds.
    pub fn table(rows: &[Comparison], floor_name: &str, target_name: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>5}  {:<8} {:>9} {:>9} {:>9} {:>9} {:>11} {:>6} {:>6}  vs floor (p50 / p99 / req/s)",
            "conns",
            "server",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "req/s",
            "errors",
            "non2xx"
        );
        for row in rows {
            for (name, r, cmp) in [
                (floor_name, &row.floor, String::new()),
                (
                    target_name,
                    &row.target,
                    format!(
                        "{:.2}x / {:.2}x / {:.2}x",
                        row.ratio_p50, row.ratio_p99, row.ratio_throughput
                    ),
                ),
            ] {
                let l = &r.latency_us;
                let _ = writeln!(
                    out,
                    "{:>5}  {:<8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>11.0} {:>6} {:>6}  {}",
                    r.connections,
                    name,
                    l.p50,
                    l.p99,
                    l.p999,
                    l.max,
                    r.throughput_rps,
                    r.counts.errors,
                    r.counts.non_2xx,
                    cmp
                );
            }
        }
        out
    }
}
