//! `warden keys ...`: the key ring, through the running agent's admin
//! endpoints (so the agent that holds the KEK does the work, and the caller
//! ACL decides who may).

use super::{print_json, with_client, ClientArgs};
use crate::config::Env;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: KeysCommand,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List every key with its purpose, state and age.
    List,
    /// Start a rotation: a new key is published now and signs after the
    /// propagation delay; the current key then verifies for the grace period.
    Rotate {
        /// jwt, task, audit, webhook:<name> or outbound:<name>.
        #[arg(long)]
        purpose: String,
        /// EdDSA, ES256 or HS256 (default: the current key's).
        #[arg(long)]
        alg: Option<String>,
    },
    /// Cancel a pending rotation, or re-activate the previous key while it is
    /// still in its grace period.
    Rollback {
        #[arg(long)]
        purpose: String,
    },
    /// Retire a key now: it leaves the JWKS and its tokens stop verifying.
    Retire {
        /// The key id.
        kid: String,
    },
}

pub fn run(args: KeysArgs, env: &Env) -> ExitCode {
    let as_json = args.json;
    with_client(&args.client, env, |client| async move {
        let (path, body) = match &args.command {
            KeysCommand::List => {
                let v = client.get("/v1/admin/keys").await?;
                if as_json {
                    print_json(&v);
                } else {
                    print_table(&v);
                }
                return Ok(ExitCode::SUCCESS);
            }
            KeysCommand::Rotate { purpose, alg } => (
                "/v1/admin/keys/rotate",
                json!({"purpose": purpose, "alg": alg}),
            ),
            KeysCommand::Rollback { purpose } => {
                ("/v1/admin/keys/rollback", json!({"purpose": purpose}))
            }
            KeysCommand::Retire { kid } => ("/v1/admin/keys/retire", json!({"kid": kid})),
        };
        let body = match body {
            Value::Object(mut m) => {
                m.retain(|_, v| !v.is_null());
                Value::Object(m)
            }
            other => other,
        };
        let v = client.post(path, &body).await?;
        if as_json {
            print_json(&v);
        } else {
            let k = &v["key"];
            println!(
                "{} {} {} {}",
                k["kid"].as_str().unwrap_or("?"),
                k["purpose"].as_str().unwrap_or("?"),
                k["alg"].as_str().unwrap_or("?"),
                k["state"].as_str().unwrap_or("?"),
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_table(v: &Value) {
    println!(
        "{:<32} {:<20} {:<6} {:<9} {:>8}  NOTE",
        "KID", "PURPOSE", "ALG", "STATE", "AGE_DAYS"
    );
    for k in v["keys"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let note = if k["rotation_due"] == true {
            "rotation due".to_string()
        } else if let Some(at) = k["retire_at"].as_str() {
            format!("verifies until {at}")
        } else if let Some(at) = k["activate_at"]
            .as_str()
            .filter(|_| k["state"] == "pending")
        {
            format!("signs from {at}")
        } else {
            String::new()
        };
        println!(
            "{:<32} {:<20} {:<6} {:<9} {:>8}  {note}",
            k["kid"].as_str().unwrap_or("?"),
            k["purpose"].as_str().unwrap_or("?"),
            k["alg"].as_str().unwrap_or("?"),
            k["state"].as_str().unwrap_or("?"),
            k["age_days"].as_i64().unwrap_or(0),
        );
    }
}
