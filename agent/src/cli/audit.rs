//! `warden audit tail|verify|export`: offline tools over the state
//! directory's database, opened read-only. They do not need the agent to be
//! running (an investigation often starts when it is not), and they never
//! modify what they inspect.

use super::{EXIT_CONFIG, EXIT_FAILURE};
use crate::audit::tools;
use crate::audit::TrustedKeys;
use crate::config::{Config, Env, Source};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the newest records as JSON Lines; with -f, keep printing new ones.
    Tail {
        #[command(flatten)]
        state: StateArgs,
        /// How many of the newest records to print first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u64,
        /// Keep running and print records as they are committed.
        #[arg(short, long)]
        follow: bool,
    },
    /// Check the hash chain and the signed checkpoints; exit 3 naming the
    /// first bad record on any edit, deletion, reordering or truncation.
    Verify {
        #[command(flatten)]
        state: StateArgs,
        /// Start at this record (trusting the stored hash of the one before).
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        /// Require checkpoints to be signed by this key (repeatable):
        /// KID=PUBLIC_KEY with the raw Ed25519 key in base64url, as in the JWKS.
        #[arg(long, value_name = "KID=KEY")]
        trust: Vec<String>,
    },
    /// Print every record since TIME as JSON Lines.
    Export {
        #[command(flatten)]
        state: StateArgs,
        /// An RFC 3339 time (2026-12-04T20:00:00Z) or a duration ago (90m, 7d).
        #[arg(long, value_name = "TIME")]
        since: String,
    },
}

#[derive(Debug, Args, Clone)]
pub struct StateArgs {
    /// State directory (default: $WARDEN_STATE_DIR, else the config's state.dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Config file used to find the state directory.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

fn state_dir(args: &StateArgs, env: &Env) -> Result<PathBuf, String> {
    if let Some(dir) = &args.state_dir {
        return Ok(dir.clone());
    }
    let source = Source::resolve(args.config.as_deref(), env);
    Config::load(&source, env)
        .map(|c| c.state.dir)
        .map_err(|e| e.to_string())
}

fn trusted(specs: &[String]) -> Result<TrustedKeys, String> {
    use base64::Engine as _;
    let mut keys = TrustedKeys::default();
    for spec in specs {
        let (kid, key) = spec
            .split_once('=')
            .ok_or_else(|| format!("--trust {spec:?}: expected KID=BASE64URL_PUBLIC_KEY"))?;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key.trim_end_matches('='))
            .map_err(|e| format!("--trust {kid}: public key is not base64url: {e}"))?;
        if key.len() != 32 {
            return Err(format!(
                "--trust {kid}: an Ed25519 public key is 32 bytes, got {}",
                key.len()
            ));
        }
        keys.0.insert(kid.to_string(), key);
    }
    Ok(keys)
}

pub fn run(cmd: AuditCommand, env: &Env) -> ExitCode {
    let state = match &cmd {
        AuditCommand::Tail { state, .. }
        | AuditCommand::Verify { state, .. }
        | AuditCommand::Export { state, .. } => state,
    };
    let dir = match state_dir(state, env) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match cmd {
        AuditCommand::Tail { lines, follow, .. } => tools::tail(
            &dir,
            lines,
            follow,
            std::time::Duration::from_millis(200),
            &mut out,
            &|| false,
        )
        .map(|()| ExitCode::SUCCESS),
        AuditCommand::Verify { from, trust, .. } => {
            let keys = match trusted(&trust) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            tools::verify_command(&dir, from, &keys, &mut out).map(|report| {
                if report.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(tools::EXIT_TAMPERED)
                }
            })
        }
        AuditCommand::Export { since, .. } => {
            let now = crate::clock::system();
            match tools::parse_since(&since, now.now_ms()) {
                Ok(ms) => tools::export(&dir, ms, &mut out).map(|_| ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
