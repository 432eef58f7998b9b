//! Prints compile time, RSS and decision latency percentiles with the large
//! generated registry: `cargo run --release --example policy_scale`.

use std::time::Instant;

#[path = "registry_gen.rs"]
mod registry_gen;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let base = rss_kib();
    let files = registry_gen::files(&registry_gen::LARGE);
    // `--write DIR`: write the registry out, e.g. to run the agent on it.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--write") {
        let dir = std::path::Path::new(args.get(i + 1).expect("--write DIR"));
        std::fs::create_dir_all(dir).expect("create dir");
        for f in &files {
            std::fs::write(dir.join(&f.name), &f.text).expect("write");
        }
        println!("wrote {} files to {}", files.len(), dir.display());
        return;
    }
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();
    if std::env::args().any(|a| a == "--parse-only") {
        for f in &files {
            let t = Instant::now();
            let v: toml1::Table = toml1::from_str(&f.text).unwrap();
            println!(
                "{}: toml parse {:?} ({} keys), RSS {:.1} MiB",
                f.name,
                t.elapsed(),
                v.len(),
                rss_kib() as f64 / 1024.0
            );
        }
        return;
    }
    let t = Instant::now();
    let snapshot = warden::policy::load(&files).expect("generated registry compiles");
    let compile = t.elapsed();
    drop(files);
    let after = rss_kib();
    println!(
        "registry: {} permissions, {} orgs, {} users, {:.1} MiB of TOML",
        snapshot.permission_count(),
        snapshot.org_count(),
        snapshot.user_count(),
        bytes as f64 / 1048576.0
    );
    println!("parse+validate+compile: {compile:?}");
    println!(
        "RSS: {:.1} MiB before, {:.1} MiB with the snapshot",
        base as f64 / 1024.0,
        after as f64 / 1024.0
    );
    if std::env::args().any(|a| a == "--second") {
        // A second snapshot while the first is alive: the parse reuses the
        // memory the first parse freed, so the growth approximates the live
        // size of one snapshot.
        let files = registry_gen::files(&registry_gen::LARGE);
        let second = warden::policy::load(&files).expect("compiles");
        drop(files);
        println!(
            "RSS with a second snapshot: {:.1} MiB (+{:.1} MiB)",
            rss_kib() as f64 / 1024.0,
            (rss_kib() - after) as f64 / 1024.0
        );
        drop(second);
    }
    if std::env::args().any(|a| a == "--reload") {
        // What a reload costs beyond compiling: lockout and role-change
        // analysis against the serving snapshot, after a one-line edit.
        let mut files = registry_gen::files(&registry_gen::LARGE);
        // Remove one grant of role r0 outright (in every org): the first one
        // that no org override also removes (that would be invalid).
        let roles = files[1].text.clone();
        let mut edited = None;
        let mut from = 0;
        while edited.is_none() {
            let start = from + roles[from..].find("  { permission").expect("a grant");
            let end = start + roles[start..].find('\n').expect("line end") + 1;
            files[1].text = format!("{}{}", &roles[..start], &roles[end..]);
            edited = warden::policy::load(&files).ok();
            from = end;
        }
        let edited = edited.expect("an edit compiled");
        let t = Instant::now();
        let warnings = warden::policy::lockout(&snapshot, &edited, None);
        println!(
            "lockout analysis: {:?} ({} warnings)",
            t.elapsed(),
            warnings.len()
        );
        let t = Instant::now();
        let changed = warden::policy::changed_users(&snapshot, &edited);
        println!(
            "role-change analysis: {:?} ({} users)",
            t.elapsed(),
            changed.len()
        );
        let t = Instant::now();
        let diff = warden::policy::diff(&snapshot, &edited);
        println!("grant diff: {:?} ({} changes)", t.elapsed(), diff.len());
    }
    let work = registry_gen::workload(&registry_gen::LARGE, &snapshot, 4096);
    // Warm up, then time decisions in groups of 16 (Instant's own cost is
    // ~20 ns; grouping keeps it out of the figure).
    let mut allow = 0usize;
    for i in 0..200_000 {
        allow += usize::from(snapshot.decide(&work.request(i % work.len())).allow);
    }
    let mut samples = Vec::with_capacity(200_000);
    for round in 0..200_000usize {
        let t = Instant::now();
        for k in 0..16 {
            let d = snapshot.decide(&work.request((round * 16 + k) % work.len()));
            allow += usize::from(d.allow);
        }
        samples.push(t.elapsed().as_nanos() as f64 / 16.0);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "decision (per decision, groups of 16): p50 {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns ({} allowed)",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        allow
    );
}
