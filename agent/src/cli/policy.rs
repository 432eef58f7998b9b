//! `warden check` (a client of the running agent) and the offline
//! `warden policy validate|test|diff` tools, which read policy directories
//! directly so they run in CI without an agent.

use super::{print_json, with_client, ClientArgs, EXIT_CONFIG, EXIT_FAILURE};
use crate::config::Env;
use crate::policy::{self, Snapshot};
use crate::sync::{files, load_dir};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Directory user acting (with --org).
    #[arg(long, requires = "org", conflicts_with = "peer")]
    pub user: Option<String>,
    /// Org the user acts in.
    #[arg(long)]
    pub org: Option<String>,
    /// Check as the calling OS user (CLI identity) instead of --user/--org.
    #[arg(long)]
    pub peer: bool,
    /// The user has a verified second factor.
    #[arg(long)]
    pub mfa: bool,
    /// PERMISSION:ACTION, e.g. inventory.adjust_stock:write
    pub check: String,
    /// Surface the action comes from.
    #[arg(long, default_value = "cli")]
    pub surface: String,
    /// Resource attribute key=value (org_id, owner_id, assignee_id, region); repeatable.
    #[arg(long = "resource", value_name = "KEY=VALUE")]
    pub resource: Vec<String>,
    /// Print the full evaluation trace.
    #[arg(long)]
    pub explain: bool,
    /// Print the raw JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy directory offline; errors carry file and line.
    Validate {
        dir: PathBuf,
        /// Compare with this (previous) directory and warn about lockouts.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Lockout warning threshold (share of an org's users losing a grant);
        /// default: the registry's settings.lockout_share.
        #[arg(long)]
        lockout_share: Option<f64>,
        /// Exit non-zero on lockout warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Run the policy test cases in DIR/tests/ against DIR.
    Test { dir: PathBuf },
    /// List every (org, role, permission, action) whose outcome changes.
    Diff { old: PathBuf, new: PathBuf },
}

/// Builds the check request body from the command line.
pub fn check_body(args: &CheckArgs) -> Result<serde_json::Value, String> {
    let (permission, action) = args
        .check
        .rsplit_once(':')
        .filter(|(p, a)| !p.is_empty() && !a.is_empty())
        .ok_or_else(|| format!("{:?} is not PERMISSION:ACTION", args.check))?;
    let subject = match (&args.user, &args.org, args.peer) {
        (Some(u), Some(o), false) => {
            serde_json::json!({"user_id": u, "org_id": o, "mfa": args.mfa})
        }
        (None, None, true) => serde_json::json!({"peer": true}),
        _ => return Err("give --user and --org, or --peer".into()),
    };
    let mut resource = serde_json::Map::new();
    for kv in &args.resource {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--resource {kv:?} is not key=value"))?;
        if !["org_id", "owner_id", "assignee_id", "region"].contains(&k) {
            return Err(format!(
                "--resource key {k:?} is not one of org_id, owner_id, assignee_id, region"
            ));
        }
        resource.insert(k.to_string(), v.into());
    }
    let mut body = serde_json::json!({
        "subject": subject,
        "permission": permission,
        "action": action,
        "surface": args.surface,
        "explain": args.explain,
    });
    if !resource.is_empty() {
        body["resource"] = serde_json::Value::Object(resource);
    }
    Ok(body)
}

pub fn check(args: CheckArgs, env: &Env) -> ExitCode {
    let body = match check_body(&args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let json_out = args.json;
    with_client(&args.client, env, |client| async move {
        let answer = client.post("/v1/check", &body).await?;
        if json_out {
            print_json(&answer);
        } else {
            print_answer(&answer);
        }
        Ok(if answer["allow"] == serde_json::Value::Bool(true) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILURE)
        })
    })
}

fn print_answer(a: &serde_json::Value) {
    let allow = a["allow"].as_bool().unwrap_or(false);
    let enforced = a["enforced"].as_bool().unwrap_or(true);
    println!(
        "{} ({}){}",
        if allow { "allow" } else { "deny" },
        a["reason"].as_str().unwrap_or("?"),
        if enforced {
            ""
        } else {
            " [report mode: not enforced]"
        }
    );
    let m = &a["matched"];
    if m.is_object() {
        println!(
            "matched: role {} grants {}:{} scope {} ({})",
            m["role"].as_str().unwrap_or("?"),
            m["permission"].as_str().unwrap_or("?"),
            m["action"].as_str().unwrap_or("?"),
            m["scope"].as_str().unwrap_or("?"),
            m["source"].as_str().unwrap_or("?"),
        );
    } else {
        println!("matched: none");
    }
    println!(
        "policy {} decision {}",
        a["policy_version"].as_str().unwrap_or("?"),
        a["decision_id"].as_str().unwrap_or("?")
    );
    if let Some(steps) = a["explain"].as_array() {
        for s in steps {
            println!(
                "  {:<10} {}",
                s["step"].as_str().unwrap_or(""),
                s["detail"].as_str().unwrap_or("")
            );
        }
    }
}

fn load_or_report(dir: &Path) -> Result<(Snapshot, Vec<policy::SourceFile>), ExitCode> {
    load_dir(dir).map(|l| (l.snapshot, l.cases)).map_err(|e| {
        match &e {
            crate::sync::Error::Policy { source, .. } => {
                for p in source.problems() {
                    eprintln!("error: {}", prefix(dir, &p));
                }
            }
            other => eprintln!("error: {other}"),
        }
        ExitCode::from(EXIT_FAILURE)
    })
}

fn prefix(dir: &Path, p: &policy::Problem) -> String {
    let mut p = p.clone();
    if !p.file.is_empty() {
        p.file = dir.join(&p.file).display().to_string();
    }
    p.to_string()
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Validate {
            dir,
            baseline,
            lockout_share,
            strict,
        } => {
            let (snap, _) = match load_or_report(&dir) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let mut warned = false;
            if let Some(base) = baseline {
                let (old, _) = match load_or_report(&base) {
                    Ok(s) => s,
                    Err(code) => return code,
                };
                for w in policy::lockout(&old, &snap, lockout_share) {
                    warned = true;
                    eprintln!("warning: lockout: {w}");
                }
            }
            println!(
                "{}: valid; version {} ({} permissions, {} orgs, {} users)",
                dir.display(),
                snap.version(),
                snap.permission_count(),
                snap.org_count(),
                snap.user_count()
            );
            if warned && strict {
                ExitCode::from(EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            }
        }
        PolicyCommand::Test { dir } => {
            let (snap, case_files) = match load_or_report(&dir) {
                Ok(s) => s,
                Err(code) => return code,
            };
            if case_files.is_empty() {
                eprintln!(
                    "error: no test cases in {}/{}/",
                    dir.display(),
                    files::TESTS_DIR
                );
                return ExitCode::from(EXIT_FAILURE);
            }
            let cases = match policy::parse_cases(&case_files) {
                Ok(c) => c,
                Err(e) => {
                    for p in e.problems() {
                        eprintln!("error: {}", prefix(&dir, &p));
                    }
                    return ExitCode::from(EXIT_FAILURE);
                }
            };
            let report = policy::run_cases(&snap, &cases);
            for o in &report.outcomes {
                if o.passed {
                    println!("ok     {}", o.name);
                } else {
                    println!(
                        "FAILED {} ({}:{}): expected {}, got {}",
                        o.name,
                        dir.join(&o.file).display(),
                        o.line,
                        o.expected,
                        o.got
                    );
                }
            }
            println!(
                "{} passed, {} failed (policy {})",
                report.passed(),
                report.failed(),
                snap.version()
            );
            if report.failed() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        PolicyCommand::Diff { old, new } => {
            let (a, _) = match load_or_report(&old) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let (b, _) = match load_or_report(&new) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let scopes = |s: &[policy::Scope]| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join("|")
                }
            };
            let changes = policy::diff(&a, &b);
            for c in &changes {
                println!(
                    "{}\t{}\t{}:{}\t{} -> {}",
                    c.org,
                    c.role,
                    c.permission,
                    c.action,
                    scopes(&c.before),
                    scopes(&c.after)
                );
            }
            for r in policy::changed_users(&a, &b) {
                println!("role change\t{}\t{}", r.org_id, r.user_id);
            }
            for w in policy::lockout(&a, &b, None) {
                eprintln!("warning: lockout: {w}");
            }
            eprintln!("{} grant change(s)", changes.len());
            ExitCode::SUCCESS
        }
    }
}
