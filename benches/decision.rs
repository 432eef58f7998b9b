//! In-process decision latency and compile time with the large generated
//! registry (500 permissions x 30 roles x 1,000 orgs, 100,000 users).
//! Run: `cargo bench --bench decision`. RSS and p99: `cargo run --release
//! --example policy_scale`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use std::time::Duration;

#[path = "registry_gen.rs"]
mod registry_gen;

fn benches(c: &mut Criterion) {
    let files = registry_gen::files(&registry_gen::LARGE);
    let snapshot = warden::policy::load(&files).expect("generated registry compiles");
    let work = registry_gen::workload(&registry_gen::LARGE, &snapshot, 4096);

    let mut g = c.benchmark_group("decision");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("decide_large_registry", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(snapshot.decide(black_box(&work.request(i))))
        })
    });
    g.bench_function("unknown_permission", |b| {
        let mut req = work.request(0);
        req.permission = "nope.nope";
        b.iter(|| black_box(snapshot.decide(black_box(&req))))
    });
    g.bench_function("explain_large_registry", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(snapshot.explain(black_box(&work.request(i))))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("parse_validate_compile_large_registry", |b| {
        b.iter_batched(
            || files.clone(),
            |f| black_box(warden::policy::load(&f).expect("compiles")),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(decision, benches);
criterion_main!(decision);
