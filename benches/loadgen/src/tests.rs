use std::time::Duration;

use crate::report::{Comparison, Counts, Latency};
use crate::request::{RequestSpec, SpecError};
use crate::run::{new_histogram, parse_duration};

#[test]
fn durations() {
    fn check(input: &str, expected: Option<Duration>) {
        assert_eq!(parse_duration(input).ok(), expected, "{input}");
    }
    check("5s", Some(Duration::from_secs(5)));
    check("500ms", Some(Duration::from_millis(500)));
    check("2m", Some(Duration::from_secs(120)));
    check("1.5", Some(Duration::from_millis(1500)));
    check(" 0s ", Some(Duration::ZERO));
    check("", None);
    check("fast", None);
    check("-1s", None);
    check("2h", None);
    check("NaN", None);
    check("61m", None);
}

#[test]
fn request_spec_rejects_bad_parts() {
    assert!(matches!(
        RequestSpec::new("G ET", "/x"),
        Err(SpecError::Method(_))
    ));
    assert!(matches!(
        RequestSpec::new("GET", "x"),
        Err(SpecError::Path(_))
    ));
    let spec = RequestSpec::new("post", "/v1/check").unwrap();
    assert!(matches!(
        spec.clone().header("novalue"),
        Err(SpecError::Header(_))
    ));
    assert!(matches!(
        spec.clone().header("bad name: v"),
        Err(SpecError::Header(_))
    ));
    assert!(matches!(
        spec.clone().json_body("{nope"),
        Err(SpecError::Json(_))
    ));
    assert!(matches!(
        spec.json_body("@/nonexistent/body.json"),
        Err(SpecError::BodyFile { .. })
    ));
}

#[test]
fn request_spec_builds_json_post() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, br#"{"permission":"inventory.adjust_stock"}"#).unwrap();
    let spec = RequestSpec::new("post", "/v1/check")
        .unwrap()
        .header("x-request-id: bench")
        .unwrap()
        .json_body(&format!("@{}", file.display()))
        .unwrap();
    let req = spec.build();
    assert_eq!(req.method(), hyper::Method::POST);
    assert_eq!(req.uri().path(), "/v1/check");
    let h = req.headers();
    assert_eq!(h["host"], "localhost");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["content-length"], "39");
    assert_eq!(h["x-request-id"], "bench");
}

#[test]
fn explicit_content_type_wins() {
    let spec = RequestSpec::new("POST", "/x")
        .unwrap()
        .header("content-type: application/merge-patch+json")
        .unwrap()
        .json_body("{}")
        .unwrap();
    let req = spec.build();
    assert_eq!(
        req.headers()["content-type"],
        "application/merge-patch+json"
    );
    assert_eq!(req.headers().get_all("content-type").iter().count(), 1);
}

#[test]
fn latency_of_empty_and_filled_histograms() {
    let mut h = new_histogram();
    assert_eq!(Latency::from_histogram(&h).p99, 0.0);
    for us in 1..=1000u64 {
        h.record(us * 1_000).unwrap();
    }
    let l = Latency::from_histogram(&h);
    assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
    assert!((l.p99 - 990.0).abs() < 1.0, "{l:?}");
    assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
    assert!(l.min <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
}

#[test]
fn comparison_ratios_mean_slower_above_one() {
    let report = |p50: f64, rps: f64| crate::Report {
        socket: "s".into(),
        method: "GET".into(),
        path: "/v1/health".into(),
        connections: 4,
        warmup_s: 0.0,
        duration_s: 1.0,
        throughput_rps: rps,
        counts: Counts {
            requests: rps as u64,
            ..Counts::default()
        },
        latency_us: Latency {
            min: p50,
            mean: p50,
            p50,
            p90: p50,
            p99: p50 * 2.0,
            p999: p50 * 3.0,
            max: p50 * 4.0,
        },
    };
    let c = Comparison::new(report(20.0, 50_000.0), report(25.0, 40_000.0));
    assert!((c.ratio_p50 - 1.25).abs() < 1e-9);
    assert!((c.ratio_p99 - 1.25).abs() < 1e-9);
    assert!((c.ratio_throughput - 1.25).abs() < 1e-9);
    let table = Comparison::table(&[c], "floor", "agent");
    assert!(table.contains("agent"), "{table}");
    assert!(table.contains("1.25x / 1.25x / 1.25x"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[test]
fn merged_reports_add_counts_and_histograms() {
    let cfg = crate::RunConfig {
        socket: "/tmp/x.sock".into(),
        request: RequestSpec::new("GET", "/v1/health").unwrap(),
        connections: 2,
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(1),
    };
    let mut fast = new_histogram();
    let mut slow = new_histogram();
    for _ in 0..100 {
        fast.record(10_000).unwrap();
        slow.record(1_000_000).unwrap();
    }
    let statuses = |n| [(200u16, n)].into_iter().collect();
    let one = Counts {
        requests: 100,
        errors: 1,
        statuses: statuses(100),
        histogram: fast,
        ..Counts::default()
    };
    let other = Counts {
        requests: 100,
        non_2xx: 5,
        reconnects: 2,
        statuses: statuses(100),
        first_error: Some("x".into()),
        histogram: slow,
        ..Counts::default()
    };
    let mut a = crate::Report::new(&cfg, Duration::from_secs(1), one);
    let b = crate::Report::new(&cfg, Duration::from_secs(3), other);
    a.merge(&b);
    assert_eq!(a.counts.requests, 200);
    assert_eq!(
        (a.counts.errors, a.counts.non_2xx, a.counts.reconnects),
        (1, 5, 2)
    );
    assert_eq!(a.counts.statuses[&200], 200);
    assert_eq!(a.counts.first_error.as_deref(), Some("x"));
    assert!((a.duration_s - 4.0).abs() < 1e-9);
    assert!((a.throughput_rps - 50.0).abs() < 1e-9);
    assert!((a.latency_us.p50 - 10.0).abs() < 0.1, "{:?}", a.latency_us);
    assert!(
        (a.latency_us.max - 1000.0).abs() < 1.0,
        "{:?}",
        a.latency_us
    );
}

#[test]
fn shipped_bodies_are_valid_json() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bodies");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            RequestSpec::new("POST", "/v1/check")
                .unwrap()
                .json_body(&format!("@{}", path.display()))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 2, "no bodies found in {}", dir.display());
}
