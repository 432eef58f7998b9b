//! The `warden` command line: `serve` runs the agent; every other subcommand
//! except `config check` is a client of a running agent's socket, so the CLI
//! sees exactly what the ERP sees and is subject to the same caller ACL.

mod audit;
mod client;
mod keys;
mod policy;
mod serve;

pub use client::{AgentClient, ClientError};

use crate::config::{Config, Env, Source};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for an invalid config or invalid arguments (sysexits EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit status for a runtime failure.
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "Per-host security sidecar for the ERP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent in the foreground (systemd runs this).
    Serve(ServeArgs),
    /// Show the running agent's status.
    Status(ClientArgs),
    /// Print this binary's version and the running agent's, if reachable.
    Version(ClientArgs),
    /// Work with config files offline.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Read and verify the local audit log offline (read-only).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// List, rotate, roll back and retire keys (through the running agent).
    Keys(keys::KeysArgs),
    /// Ask the running agent for a permission decision (exit 0 allow, 1 deny).
    Check(policy::CheckArgs),
    /// Validate, test and diff policy directories offline.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (default: $WARDEN_CONFIG, else the embedded development config).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Agent socket (default: $WARDEN_SOCKET, else the config's server.socket).
    #[arg(long, env = "WARDEN_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Config file used to find the socket when --socket is not given.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and print the effective config.
    Check {
        /// The config file to check.
        file: PathBuf,
    },
}

/// Runs a parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> ExitCode {
    let env = Env::from_process();
    match cli.command {
        Command::Serve(args) => serve::run(args, env),
        Command::Status(args) => with_client(&args, &env, |client| async move {
            let status = client.get("/v1/status").await?;
            print_json(&status);
            Ok(ExitCode::SUCCESS)
        }),
        Command::Version(args) => {
            println!("warden {}", env!("CARGO_PKG_VERSION"));
            with_client(&args, &env, |client| async move {
                match client.get("/v1/status").await {
                    Ok(status) => {
                        println!("agent  {}", status["version"].as_str().unwrap_or("unknown"))
                    }
                    Err(e) => println!("agent  unreachable ({e})"),
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Config(ConfigCommand::Check { file }) => config_check(&file, &env),
        Command::Audit(cmd) => audit::run(cmd, &env),
        Command::Keys(args) => keys::run(args, &env),
        Command::Check(args) => policy::check(args, &env),
        Command::Policy(cmd) => policy::run(cmd),
    }
}

fn config_check(file: &std::path::Path, env: &Env) -> ExitCode {
    match Config::load(&Source::File(file.to_path_buf()), env) {
        Ok(config) => {
            // Names in the caller ACL and socket group resolve only on the
            // host that runs the agent; warn rather than fail here.
            if let Err(e) = config.callers.resolve() {
                eprintln!("warning: {e}");
            }
            println!("# {} is valid; effective config:", file.display());
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Resolves the agent socket for client subcommands.
pub fn socket_for(args: &ClientArgs, env: &Env) -> Result<PathBuf, String> {
    if let Some(socket) = &args.socket {
        return Ok(socket.clone());
    }
    let source = Source::resolve(args.config.as_deref(), env);
    Config::load(&source, env)
        .map(|c| c.server.socket)
        .map_err(|e| e.to_string())
}

/// Runs `f` with a client of the agent on a small single-threaded runtime.
pub fn with_client<F, Fut>(args: &ClientArgs, env: &Env, f: F) -> ExitCode
where
    F: FnOnce(AgentClient) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, ClientError>>,
{
    let socket = match socket_for(args, env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(f(AgentClient::new(socket))) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Prints a JSON value for humans (and `jq`).
pub fn print_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(_) => println!("{value}"),
    }
}
