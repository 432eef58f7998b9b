//! In-process token benchmarks: issue (Ed25519 signature plus the durable
//! session and refresh-token write), first verification (signature check),
//! repeated verification (cache hit, revocation still checked) and refresh.
//!
//! `cargo bench --bench tokens` prints p50/p99 from a plain timing loop
//! first (criterion reports means and medians, not tails), then runs the
//! criterion groups. `-- --quick` shortens both.

use criterion::{black_box, Criterion};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden::clock::SystemClock;
use warden::keys::{Algorithm, Kek, KeyRing, NoEvents, Purpose};
use warden::store::Store;
use warden::tokens::{self, Config, IssueRequest, StaticDirectory, Tokens};

struct Bench {
    _dir: tempfile::TempDir,
    tokens: Tokens,
}

fn setup(alg: Algorithm, cache_capacity: usize) -> Bench {
    // On the real disk (not tmpfs), so issue pays the fsync it pays in production.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let clock: warden::clock::SharedClock = Arc::new(SystemClock);
    let keys = Arc::new(
        KeyRing::open(
            store.clone(),
            clock.clone(),
            Kek::generate().unwrap(),
            warden::keys::Config {
                token_algorithm: alg,
                ..warden::keys::Config::default()
            },
            Arc::new(NoEvents),
        )
        .unwrap(),
    );
    keys.ensure(&Purpose::jwt(), alg).unwrap();
    keys.ensure(&Purpose::task(), alg).unwrap();
    let directory = Arc::new(StaticDirectory::default());
    for i in 0..100 {
        directory.set(&format!("u-{i}"), "acme", &["inventory_clerk", "viewer"]);
    }
    let tokens = Tokens::new(
        Config {
            cache_capacity,
            ..Config::default()
        },
        keys,
        store,
        clock,
        directory,
        Arc::new(tokens::NoEvents),
    )
    .unwrap();
    Bench { _dir: dir, tokens }
}

fn login(t: &Tokens, i: usize) -> tokens::Issued {
    t.issue(&IssueRequest {
        user_id: format!("u-{}", i % 100),
        org_id: "acme".into(),
        amr: vec!["pwd".into()],
        device_id: None,
    })
    .unwrap()
}

fn percentiles(name: &str, n: usize, mut f: impl FnMut(usize)) {
    for i in 0..n / 10 {
        f(i); // warm-up
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name:<40} n={n:<6} p50={:>9.2?} p99={:>9.2?} max={:>9.2?}",
        p(0.50),
        p(0.99),
        samples[samples.len() - 1]
    );
}

fn tail_latencies(quick: bool) {
    let n = if quick { 500 } else { 5_000 };
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let b = setup(alg, 65_536);
        let nc = setup(alg, 0);
        percentiles(&format!("issue ({})", alg.as_str()), n / 5, |i| {
            black_box(login(&b.tokens, i));
        });
        let access: Vec<String> = (0..n).map(|i| login(&nc.tokens, i).access_token).collect();
        percentiles(
            &format!("verify first, signature ({})", alg.as_str()),
            n,
            |i| {
                black_box(nc.tokens.verify_access(&access[i % access.len()]).unwrap());
            },
        );
        let one = login(&b.tokens, 0).access_token;
        b.tokens.verify_access(&one).unwrap();
        percentiles(
            &format!("verify repeated, cached ({})", alg.as_str()),
            n,
            |_| {
                black_box(b.tokens.verify_access(&one).unwrap());
            },
        );
        let mut refresh: Vec<tokens::RefreshToken> = (0..n / 5)
            .map(|i| login(&b.tokens, i).refresh_token)
            .collect();
        percentiles(&format!("refresh ({})", alg.as_str()), n / 5, |i| {
            let next = b.tokens.refresh(refresh[i].expose()).unwrap();
            refresh[i] = next.refresh_token;
        });
    }
}

fn criterion_groups(c: &mut Criterion) {
    let b = setup(Algorithm::EdDSA, 65_536);
    let nc = setup(Algorithm::EdDSA, 0);
    let mut g = c.benchmark_group("tokens_eddsa");
    let mut i = 0usize;
    g.bench_function("issue", |bench| {
        bench.iter(|| {
            i += 1;
            black_box(login(&b.tokens, i))
        })
    });
    let token = login(&nc.tokens, 0).access_token;
    g.bench_function("verify_signature", |bench| {
        bench.iter(|| black_box(nc.tokens.verify_access(&token).unwrap()))
    });
    let cached = login(&b.tokens, 1).access_token;
    g.bench_function("verify_cached", |bench| {
        bench.iter(|| black_box(b.tokens.verify_access(&cached).unwrap()))
    });
    let mut current = login(&b.tokens, 2).refresh_token;
    g.bench_function("refresh", |bench| {
        bench.iter(|| {
            let next = b.tokens.refresh(current.expose()).unwrap();
            current = next.refresh_token.clone();
            black_box(next)
        })
    });
    g.finish();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    tail_latencies(quick);
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(if quick { 1 } else { 3 }))
        .warm_up_time(Duration::from_millis(500));
    criterion_groups(&mut c);
    c.final_summary();
}
