//! `loadgen`: drive a fixed request at a Unix socket over N keep-alive
//! connections and report latency percentiles and throughput; with
//! `--baseline`, measure the floor at the same concurrency right before the
//! target and print both side by side.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use warden_loadgen::run::parse_duration;
use warden_loadgen::{run, Comparison, Report, RequestSpec, RunConfig};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Unix-socket HTTP/1.1 load generator for Warden"
)]
struct Cli {
    /// Socket of the server under test.
    #[arg(long, short = 's')]
    socket: PathBuf,
    /// Socket of a floor server to measure side by side (same request, same
    /// concurrency, run just before each target run).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Label of the target in the side-by-side table.
    #[arg(long, default_value = "target")]
    name: String,
    /// Concurrent keep-alive connections; a comma-separated list runs each.
    #[arg(long, short = 'c', value_delimiter = ',', default_value = "1")]
    connections: Vec<usize>,
    /// Measured duration per run (5s, 500ms, 1m).
    #[arg(long, short = 'd', default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before measuring, not counted.
    #[arg(long, short = 'w', default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Per-request timeout; a slower request counts as an error.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    #[arg(long, short = 'm', default_value = "GET")]
    method: String,
    #[arg(long, short = 'p', default_value = "/v1/health")]
    path: String,
    /// JSON body, inline or `@file.json`.
    #[arg(long, short = 'b')]
    body: Option<String>,
    /// Extra header `name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Runtime threads for the generator; 1 keeps it on one core so it
    /// competes less with the server on a small machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// With --baseline: alternate floor and target this many times per
    /// concurrency and merge the rounds, so slow drifts in background load
    /// hit both alike.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (text still goes to stdout).
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Exit 1 if any run saw errors or non-2xx answers.
    #[arg(long)]
    require_clean: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let request = match build_request(&cli) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(measure(&cli, request)) {
        Ok(clean) if clean || !cli.require_clean => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("loadgen: errors or non-2xx answers seen");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build_request(cli: &Cli) -> Result<RequestSpec, warden_loadgen::request::SpecError> {
    let mut spec = RequestSpec::new(&cli.method, &cli.path)?;
    for h in &cli.headers {
        spec = spec.header(h)?;
    }
    if let Some(body) = &cli.body {
        spec = spec.json_body(body)?;
    }
    Ok(spec)
}

fn config(cli: &Cli, socket: &std::path::Path, request: &RequestSpec, conns: usize) -> RunConfig {
    RunConfig {
        socket: socket.to_path_buf(),
        request: request.clone(),
        connections: conns,
        duration: cli.duration,
        warmup: cli.warmup,
        timeout: cli.timeout,
    }
}

/// Prints `value` if `--json`, and writes it to `--json-out` if given.
fn write_json(cli: &Cli, value: &serde_json::Value) -> Result<(), Failure> {
    if cli.json {
        println!("{value}");
    }
    if let Some(path) = &cli.json_out {
        std::fs::write(path, format!("{value}\n"))
            .map_err(|e| Failure::Write(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Why a measurement stopped.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Run(#[from] warden_loadgen::Error),
    #[error("{0}")]
    Write(String),
}

/// Runs every requested concurrency; returns whether all runs were clean.
async fn measure(cli: &Cli, request: RequestSpec) -> Result<bool, Failure> {
    let mut clean = true;
    if let Some(baseline) = &cli.baseline {
        let mut rows = Vec::new();
        for &conns in &cli.connections {
            let mut floor = run(config(cli, baseline, &request, conns)).await?;
            let mut target = run(config(cli, &cli.socket, &request, conns)).await?;
            for _ in 1..cli.rounds {
                floor.merge(&run(config(cli, baseline, &request, conns)).await?);
                target.merge(&run(config(cli, &cli.socket, &request, conns)).await?);
            }
            clean &= floor.is_clean() && target.is_clean();
            if !cli.json {
                eprintln!(
                    "loadgen: {conns} connection(s): floor {:.0} req/s, {} {:.0} req/s",
                    floor.throughput_rps, cli.name, target.throughput_rps
                );
            }
            rows.push(Comparison::new(floor, target));
        }
        write_json(cli, &serde_json::json!({ "comparisons": rows }))?;
        if !cli.json {
            print!("{}", Comparison::table(&rows, "floor", &cli.name));
            for row in &rows {
                for r in [&row.floor, &row.target] {
                    if let Some(e) = &r.counts.first_error {
                        println!(
                            "first error on {} at {} conns: {e}",
                            r.socket, r.connections
                        );
                    }
                }
            }
        }
    } else {
        let mut runs: Vec<Report> = Vec::new();
        for &conns in &cli.connections {
            let report = run(config(cli, &cli.socket, &request, conns)).await?;
            clean &= report.is_clean();
            if !cli.json {
                println!("{report}");
            }
            runs.push(report);
        }
        write_json(cli, &serde_json::json!({ "runs": runs }))?;
    }
    Ok(clean)
}
