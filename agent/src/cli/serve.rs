//! `warden serve`: load config, start logging, bind the socket, run.

use super::{ServeArgs, EXIT_CONFIG, EXIT_FAILURE};
use crate::config::{Config, Env, Source};
use crate::shutdown::Shutdown;
use std::process::ExitCode;

pub fn run(args: ServeArgs, env: Env) -> ExitCode {
    let source = Source::resolve(args.config.as_deref(), &env);
    let config = match Config::load(&source, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let log = crate::telemetry::init_logging(&config.log);
    if source == Source::Embedded {
        tracing::warn!("running on the embedded development config; use --config for production");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.worker_threads)
        .thread_name("warden-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(async move {
        let server = &config.server;
        let bound = match crate::server::bind(
            &server.socket,
            server.socket_mode,
            server.socket_group.as_deref(),
        ) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        match crate::run(config, bound, Shutdown::new(), log, env).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "agent failed");
                eprintln!("error: {e}");
                ExitCode::from(EXIT_FAILURE)
            }
        }
    })
}
