//! Readiness and the `/v1/status` document, assembled from every
//! capability's own status.

use super::*;

impl Ctx {
    /// `None` when the agent can answer checks; otherwise why not.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.policy.snapshot().is_some() {
            return None;
        }
        let status = self.policy.status();
        Some(format!(
            "no policy snapshot loaded (files unusable, no cache): {}",
            status.last_error.as_deref().unwrap_or("not loaded yet")
        ))
    }

    /// The `/v1/status` document. Each capability contributes its section.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "mode": self.config.mode,
            "host": self.host,
            "host_id": self.host_id,
            "pid": std::process::id(),
            "started_at": clock::rfc3339(self.started_at_ms),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "socket": self.config.server.socket,
            "state_dir": self.config.state.dir,
            "connections": {"open": self.metrics.open_connections.get()},
            "central_store": {"configured": false, "connected": false, "lag_seconds": null},
            "audit": crate::api::audit::status_json(&self.audit.status()),
            "keys": self.keys.list().into_iter().filter(|k| k.state != crate::keys::KeyState::Retired).map(|k| serde_json::json!({
                "kid": k.kid,
                "purpose": k.purpose,
                "alg": k.alg,
                "state": k.state,
                "age_days": k.age_days,
                "rotation_due": k.rotation_due,
            })).collect::<Vec<_>>(),
            "kek": match &self.kek_source {
                KekSource::File(_) => "file",
                KekSource::Dev(_) => "development",
            },
            "policy": self.policy.status(),
        })
    }
}
