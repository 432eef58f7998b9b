use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Buckets from 25 µs to 1 s: checks answer in microseconds, durable audit
/// appends in milliseconds, and both must be visible in one histogram.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

/// The agent's metrics registry and the foundation's own metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub open_connections: IntGauge,
    pub connections: IntCounter,
    pub connections_rejected: IntCounter,
    pub caller_denied: IntCounterVec,
    pub reloads: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Pre-resolved per-route handles so the request path skips label hashing.
#[derive(Clone)]
pub struct RouteMetrics {
    pub duration: prometheus::Histogram,
    requests: IntCounterVec,
    route: &'static str,
}

impl RouteMetrics {
    pub fn observe(&self, status: u16, seconds: f64) {
        self.duration.observe(seconds);
        let buf = itoa_status(status);
        let status = std::str::from_utf8(&buf).unwrap_or("0");
        self.requests.with_label_values(&[self.route, status]).inc();
    }
}

fn itoa_status(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "warden_requests_total",
                "Socket requests by route and status",
            ),
            &["route", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "warden_request_duration_seconds",
                "Time from request head to response, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let open_connections = IntGauge::new(
            "warden_open_connections",
            "Socket connections currently open",
        )?;
        let connections =
            IntCounter::new("warden_connections_total", "Socket connections accepted")?;
        let connections_rejected = IntCounter::new(
            "warden_connections_rejected_total",
            "Connections closed at once because max_connections was reached",
        )?;
        let caller_denied = IntCounterVec::new(
            Opts::new(
                "warden_caller_denied_total",
                "Requests refused by the caller ACL, by operation class",
            ),
            &["op"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "warden_reloads_total",
                "Live reloads by trigger and outcome",
            ),
            &["what", "outcome"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("warden_build_info", "Build information; always 1"),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(open_connections.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(connections_rejected.clone()))?;
        registry.register(Box::new(caller_denied.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            open_connections,
            connections,
            connections_rejected,
            caller_denied,
            reloads,
        })
    }

    /// The registry, for capabilities to register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Handles for one route label.
    pub fn route(&self, route: &'static str) -> RouteMetrics {
        RouteMetrics {
            duration: self.request_duration.with_label_values(&[route]),
            requests: self.requests.clone(),
            route,
        }
    }

    /// Everything in Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
