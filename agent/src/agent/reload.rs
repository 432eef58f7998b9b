//! Live reload (SIGHUP, `POST /v1/admin/reload`): what can change without a
//! restart, applied all-or-nothing per part, and a report of what changed.

use super::*;

/// What a reload changed.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub trigger: &'static str,
    pub config: ReloadOutcome,
    pub policy: crate::sync::Reload,
}

/// Outcome of reloading one part.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// Applied; `restart_needed` lists changed options that only apply at start.
    Applied { restart_needed: Vec<&'static str> },
    /// Rejected; the previous version stays in force.
    Rejected { error: String },
}

impl Ctx {
    /// Re-reads what can change live: the config file's log level and caller
    /// ACL (a config that no longer validates is rejected as a whole), and
    /// the policy directory (an invalid policy keeps the serving snapshot; a
    /// new one that changes users' roles revokes their sessions).
    pub async fn reload(&self, trigger: &'static str) -> ReloadReport {
        let policy = self.policy.clone();
        let policy = tokio::task::spawn_blocking(move || policy.reload_now(trigger))
            .await
            .unwrap_or_else(|e| crate::sync::Reload::Rejected {
                error: format!("policy reload task failed: {e}"),
                version: self.policy.snapshot().map(|s| s.version().to_string()),
            });
        let outcome = self.reload_config();
        let label = match &outcome {
            ReloadOutcome::Applied { .. } => "applied",
            ReloadOutcome::Rejected { .. } => "rejected",
        };
        self.metrics
            .reloads
            .with_label_values(&["config", label])
            .inc();
        let event = crate::audit::Event {
            kind: "config.reload".into(),
            outcome: label.into(),
            reason: match &outcome {
                ReloadOutcome::Rejected { error } => Some(error.chars().take(1000).collect()),
                ReloadOutcome::Applied { .. } => None,
            },
            attrs: [("trigger".to_string(), serde_json::json!(trigger))]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        if let Err(e) = self.audit.submit(event) {
            tracing::error!(error = %e, "cannot record a reload in the audit log");
        }
        match &outcome {
            ReloadOutcome::Applied { restart_needed } if !restart_needed.is_empty() => {
                tracing::warn!(
                    trigger,
                    ?restart_needed,
                    "config reloaded; some changes need a restart"
                )
            }
            ReloadOutcome::Applied { .. } => tracing::info!(trigger, "config reloaded"),
            ReloadOutcome::Rejected { error } => {
                tracing::error!(trigger, %error, "config reload rejected; keeping the running config")
            }
        }
        ReloadReport {
            trigger,
            config: outcome,
            policy,
        }
    }

    fn reload_config(&self) -> ReloadOutcome {
        let fresh = match Config::load(&self.config.source, &self.env) {
            Ok(c) => c,
            Err(e) => {
                return ReloadOutcome::Rejected {
                    error: e.to_string(),
                }
            }
        };
        let acl = match fresh.callers.resolve() {
            Ok(acl) => acl,
            Err(e) => {
                return ReloadOutcome::Rejected {
                    error: e.to_string(),
                }
            }
        };
        let generation = self.acl_generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.acl.store(Arc::new(AclState { generation, acl }));
        self.log.set_level(&fresh.log.level);
        let mut restart_needed = Vec::new();
        let old = &self.config;
        if fresh.server.socket != old.server.socket
            || fresh.server.socket_mode != old.server.socket_mode
            || fresh.server.socket_group != old.server.socket_group
        {
            restart_needed.push("server.socket");
        }
        if fresh.state.dir != old.state.dir {
            restart_needed.push("state.dir");
        }
        if fresh.log.format != old.log.format {
            restart_needed.push("log.format");
        }
        if fresh.audit != old.audit {
            restart_needed.push("audit");
        }
        // Key and token settings are read at start.
        if toml::to_string(&fresh.keys).ok() != toml::to_string(&old.keys).ok() {
            restart_needed.push("keys");
        }
        if toml::to_string(&fresh.tokens).ok() != toml::to_string(&old.tokens).ok() {
            restart_needed.push("tokens");
        }
        ReloadOutcome::Applied { restart_needed }
    }
}
