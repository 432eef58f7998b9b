//! Assembles the agent: opens the store, builds every capability into one
//! shared [`Ctx`], and runs the long-running tasks until shutdown.
//!
//! Every long-running task is started here and only here, each with a clone
//! of the one [`Shutdown`] handle:
//! - `server`: the socket accept loop and its connections;
//! - `signals`: SIGTERM/SIGINT trigger shutdown, SIGHUP reloads;
//! - `watchdog`: systemd watchdog pings, sent only while the store answers;
//! - `audit`: the recorder's writer, shipper and WAL checkpointer threads
//!   (`audit::Recorder`),
//!   drained and stopped after the server, so requests still in flight at
//!   shutdown get their records made durable.
//! - `keys`: applies due key transitions (activation, retirement, automatic
//!   rotation) and prunes ended sessions.

use crate::api::Api;
use crate::caller::{Acl, Op, Peer};
use crate::clock::{self, SharedClock};
use crate::config::{Config, Env};
use crate::keys::{KekSource, KeyRing, Purpose};
use crate::server::BoundSocket;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::sync::PolicySource;
use crate::telemetry::{LogHandle, Metrics};
use crate::tokens::Tokens;
use arc_swap::ArcSwap;
use hyper::header::HeaderValue;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;

mod reload;
mod status;
mod tasks;
mod wiring;

pub use reload::{ReloadOutcome, ReloadReport};
use tasks::{host_id, key_maintenance, notify, signals, watchdog, SignalHandlers};
pub use wiring::DecisionRecord;
use wiring::{build_tokens, revoke_on_role_change, KeyRingCheckpointSigner};

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Caller(#[from] crate::caller::Error),
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Keys(#[from] crate::keys::Error),
    #[error(transparent)]
    Tokens(#[from] crate::tokens::Error),
    #[error(transparent)]
    Policy(#[from] crate::sync::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot start the audit recorder: {0}")]
    Audit(#[from] crate::audit::Error),
}

/// The caller ACL currently in force and its generation (bumped on reload so
/// per-connection caches notice).
#[derive(Debug)]
pub struct AclState {
    pub generation: u64,
    pub acl: Acl,
}

/// Everything the API layer may call, shared by all connections.
pub struct Ctx {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Metrics,
    /// The one audit recorder every capability records through.
    pub audit: crate::audit::Recorder,
    pub clock: SharedClock,
    /// This host's name, recorded in audit events and status.
    pub host: String,
    /// Stable random id of this installation (survives restarts).
    pub host_id: String,
    pub started: Instant,
    pub started_at_ms: i64,
    pub keys: Arc<KeyRing>,
    pub tokens: Arc<Tokens>,
    pub kek_source: KekSource,
    /// The adjustable clock of end-to-end tests; `None` in every real run.
    pub test_clock: Option<Arc<clock::OffsetClock>>,
    /// The live permission registry (snapshot, status, reload).
    pub policy: Arc<PolicySource>,
    env: Env,
    log: LogHandle,
    acl: ArcSwap<AclState>,
    acl_generation: AtomicU64,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// The caller ACL in force.
    pub fn acl(&self) -> arc_swap::Guard<Arc<AclState>> {
        self.acl.load()
    }

    /// Value of `x-warden-policy-version` on every response.
    pub fn policy_version_header(&self) -> HeaderValue {
        match self.policy.snapshot() {
            Some(s) => HeaderValue::from_str(s.version())
                .unwrap_or_else(|_| HeaderValue::from_static("none")),
            None => HeaderValue::from_static("none"),
        }
    }

    /// Records a caller refused by the ACL.
    pub fn caller_denied(&self, peer: Peer, op: Op, route: &'static str) {
        self.metrics
            .caller_denied
            .with_label_values(&[op.name()])
            .inc();
        tracing::warn!(
            uid = peer.uid,
            gid = peer.gid,
            pid = peer.pid,
            op = op.name(),
            route,
            "caller not allowed"
        );
        let event = crate::audit::Event {
            kind: "caller.denied".into(),
            identity: crate::audit::Identity {
                uid: Some(peer.uid),
                pid: peer.pid.and_then(|p| u32::try_from(p).ok()),
                ..Default::default()
            },
            target: Some(route.to_string()),
            outcome: "deny".into(),
            reason: Some("caller_not_allowed".into()),
            attrs: [
                ("op".to_string(), serde_json::json!(op.name())),
                ("gid".to_string(), serde_json::json!(peer.gid)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        if let Err(e) = self.audit.submit(event) {
            tracing::error!(error = %e, "cannot record a caller denial in the audit log");
        }
    }
}

/// Runs the agent on an already bound socket until `shutdown` fires.
///
/// The caller binds the socket first so a second instance is refused before
/// anything touches the state directory.
pub async fn run(
    config: Config,
    bound: BoundSocket,
    shutdown: Shutdown,
    log: LogHandle,
    env: Env,
) -> Result<(), Error> {
    let BoundSocket { listener, path } = bound;
    let result = run_inner(config, listener, shutdown, log, env).await;
    crate::server::remove_socket_file(&path);
    result
}

async fn run_inner(
    config: Config,
    listener: tokio::net::UnixListener,
    shutdown: Shutdown,
    log: LogHandle,
    env: Env,
) -> Result<(), Error> {
    let state_dir = config.state.dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&state_dir))
        .await
        .map_err(|e| crate::store::Error::Task(e.to_string()))??;
    let host_id = host_id(&store).await?;
    let acl = config.callers.resolve()?;
    let metrics = Metrics::new()?;
    let test_clock = test_clock(&config, &env);
    let clock: SharedClock = match &test_clock {
        Some(c) => c.clone(),
        None => clock::system(),
    };
    let policy_metrics = crate::sync::Metrics::new(metrics.registry(), metrics.reloads.clone())?;
    let policy = {
        let (config, store, clock) = (config.policy.clone(), store.clone(), clock.clone());
        tokio::task::spawn_blocking(move || {
            PolicySource::open(config, store, clock, policy_metrics)
        })
        .await
        .map_err(|e| crate::store::Error::Task(e.to_string()))?
    };
    if let Err(e) = policy.watch() {
        // Not fatal: SIGHUP and /v1/admin/reload still reload.
        tracing::warn!(error = %e, "policy directory is not watched; reload with SIGHUP");
    }
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string());
    // The recorder starts before the key ring so the ring's events are
    // recorded from the first one; it signs checkpoints with the ring's
    // `audit` key once the ring is built.
    let audit_ring = Arc::new(std::sync::OnceLock::new());
    let audit = {
        let store = store.clone();
        let host = host.clone();
        let config = config.audit.clone();
        let clock = clock.clone();
        let audit_metrics = crate::audit::Metrics::register(metrics.registry())?;
        let signer = Arc::new(KeyRingCheckpointSigner(audit_ring.clone()));
        tokio::task::spawn_blocking(move || {
            crate::audit::Recorder::start(&store, &host, config, signer, clock, audit_metrics)
        })
        .await
        .map_err(|e| crate::store::Error::Task(e.to_string()))??
    };
    let parts = {
        let (config, store, clock, env, policy, audit) = (
            config.clone(),
            store.clone(),
            clock.clone(),
            env.clone(),
            policy.clone(),
            audit.clone(),
        );
        tokio::task::spawn_blocking(move || {
            build_tokens(&config, store, clock, &env, policy, audit)
        })
        .await
        .map_err(|e| crate::store::Error::Task(e.to_string()))??
    };
    // Start-up events (keys created) are durable before the socket answers.
    if let Err(e) = audit.flush().await {
        tracing::error!(error = %e, "cannot flush start-up audit events");
    }
    // Cannot be set already: this is the only place that sets it.
    let _ = audit_ring.set(parts.keys.clone());
    revoke_on_role_change(&policy, &parts.tokens);
    metrics
        .registry()
        .register(Box::new(crate::keys::KeyMetrics::new(parts.keys.clone())?))?;
    parts.tokens.register(metrics.registry())?;
    let ctx = Arc::new(Ctx {
        config: Arc::new(config),
        store,
        metrics,
        audit,
        keys: parts.keys,
        tokens: parts.tokens,
        kek_source: parts.kek_source,
        test_clock,
        started_at_ms: clock.now_ms(),
        clock,
        host,
        host_id,
        started: Instant::now(),
        policy,
        env,
        log,
        acl: ArcSwap::from_pointee(AclState { generation: 1, acl }),
        acl_generation: AtomicU64::new(1),
    });
    let api = Arc::new(Api::new(ctx.clone()));

    // Install the handlers before the socket answers anything: a SIGTERM that
    // arrives before them would kill the process with the default action.
    let handlers = SignalHandlers::install()?;
    let mut tasks = JoinSet::new();
    tasks.spawn(signals(ctx.clone(), handlers, shutdown.clone()));
    tasks.spawn(watchdog(ctx.clone(), shutdown.clone()));
    tasks.spawn(key_maintenance(ctx.clone(), shutdown.clone()));

    tracing::info!(
        socket = %ctx.config.server.socket.display(),
        state_dir = %ctx.config.state.dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "warden agent ready"
    );
    notify(&[sd_notify::NotifyState::Ready]);
    let drained = crate::server::serve(listener, api, shutdown.clone()).await;
    notify(&[sd_notify::NotifyState::Stopping]);
    shutdown.trigger();
    while tasks.join_next().await.is_some() {}
    ctx.policy.stop_watching();

    let recorder = ctx.audit.clone();
    match tokio::task::spawn_blocking(move || recorder.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "audit recorder did not shut down cleanly"),
        Err(e) => tracing::error!(error = %e, "audit recorder shutdown task failed"),
    }
    let store = ctx.store.clone();
    if let Err(e) = store.run(|s| s.checkpoint()).await {
        tracing::warn!(error = %e, "cannot checkpoint the store at shutdown");
    }
    tracing::info!(drained, "warden agent stopped");
    Ok(())
}

/// The adjustable test clock: debug builds only, development mode only, and
/// only when `WARDEN_TEST_CLOCK=1`. A release binary cannot be talked into it.
fn test_clock(config: &Config, env: &Env) -> Option<Arc<clock::OffsetClock>> {
    let wanted = cfg!(debug_assertions)
        && config.mode == crate::config::Mode::Development
        && env.get(crate::config::TEST_CLOCK) == Some("1");
    if wanted {
        tracing::warn!("TEST CLOCK in use: POST /v1/admin/test/clock moves time; never run production like this");
        return Some(Arc::new(clock::OffsetClock::default()));
    }
    None
}
