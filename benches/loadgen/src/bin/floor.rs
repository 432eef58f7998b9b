//! `floor`: the trivial hyper server the agent's endpoints are compared
//! against. Serves `{"status":"ok"}` on a Unix socket until SIGTERM/SIGINT,
//! then removes the socket.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser, Debug)]
#[command(
    name = "floor",
    version,
    about = "Trivial hyper HTTP/1.1 server on a Unix socket"
)]
struct Cli {
    /// Socket path to create (an existing file there is replaced).
    #[arg(long, short = 's')]
    socket: PathBuf,
    /// Runtime worker threads (0 = one per core, tokio's default, as the
    /// agent uses).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if cli.threads > 0 {
        builder.worker_threads(cli.threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("floor: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let _ = std::fs::remove_file(&cli.socket);
        let listener = UnixListener::bind(&cli.socket)
            .map_err(|e| format!("cannot bind {}: {e}", cli.socket.display()))?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        eprintln!("floor: listening on {}", cli.socket.display());
        warden_loadgen::floor::serve(listener, async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
        .await;
        Ok::<(), String>(())
    });
    let _ = std::fs::remove_file(&cli.socket);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {e}");
            ExitCode::FAILURE
        }
    }
}
