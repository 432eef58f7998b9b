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

    /// Re-reads what can change live: the config file's log level and caller
    /// ACL and the users file (a config that no longer validates is rejected
    /// as a whole; sessions of users whose roles changed are revoked), and the
    /// policy directory (an invalid policy keeps the serving snapshot).
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
        // Key and token settings are read at start (the users file itself is
        // reloaded, its path is not).
        if toml::to_string(&fresh.keys).ok() != toml::to_string(&old.keys).ok() {
            restart_needed.push("keys");
        }
        if toml::to_string(&fresh.tokens).ok() != toml::to_string(&old.tokens).ok() {
            restart_needed.push("tokens");
        }
        ReloadOutcome::Applied { restart_needed }
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
    // The recorder starts before the key ring (so the ring's events can be
    // recorded from the first one once they are wired in); it signs
    // checkpoints with the ring's `audit` key once the ring is built.
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
        let (config, store, clock, env, policy) = (
            config.clone(),
            store.clone(),
            clock.clone(),
            env.clone(),
            policy.clone(),
        );
        tokio::task::spawn_blocking(move || build_tokens(&config, store, clock, &env, policy))
            .await
            .map_err(|e| crate::store::Error::Task(e.to_string()))??
    };
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

struct TokenParts {
    keys: Arc<KeyRing>,
    tokens: Arc<Tokens>,
    kek_source: KekSource,
}

/// Opens the key ring (refusing to start without a KEK in production), makes
/// sure every built-in purpose can sign, and builds the token service.
fn build_tokens(
    config: &Config,
    store: Store,
    clock: SharedClock,
    env: &Env,
    policy: Arc<PolicySource>,
) -> Result<TokenParts, Error> {
    let production = config.mode == crate::config::Mode::Production;
    let (kek, kek_source) = crate::keys::Kek::resolve(
        config.keys.kek_file.as_deref(),
        &|k| env.get(k).map(str::to_string),
        production,
        &config.state.dir,
    )?;
    let keys = Arc::new(KeyRing::open(
        store.clone(),
        clock.clone(),
        kek,
        config.keys.clone(),
        Arc::new(LogKeyEvents),
    )?);
    let alg = config.keys.token_algorithm;
    keys.ensure(&Purpose::jwt(), alg)?;
    keys.ensure(&Purpose::task(), alg)?;
    keys.ensure(&Purpose::audit(), crate::keys::Algorithm::EdDSA)?;
    let directory = Arc::new(PolicyDirectory(policy.clone()));
    let tokens = Arc::new(Tokens::new(
        config.tokens.clone(),
        keys.clone(),
        store,
        clock,
        directory,
        Arc::new(LogTokenEvents),
    )?);
    Ok(TokenParts {
        keys,
        tokens,
        kek_source,
    })
}

/// Signs audit checkpoints with the key ring's active `audit` key (Ed25519).
/// The ring is built after the recorder, so it is set once built; a
/// checkpoint due before that fails to sign and is retried at the next
/// commit (no records are appended before the socket serves anyway).
struct KeyRingCheckpointSigner(Arc<std::sync::OnceLock<Arc<KeyRing>>>);

impl KeyRingCheckpointSigner {
    fn key(&self) -> Result<crate::keys::Signer, crate::audit::Error> {
        let ring = self
            .0
            .get()
            .ok_or_else(|| crate::audit::Error::Signing("the key ring is not ready".into()))?;
        ring.signer(&Purpose::audit())
            .map_err(|e| crate::audit::Error::Signing(e.to_string()))
    }
}

impl crate::audit::CheckpointSigner for KeyRingCheckpointSigner {
    fn kid(&self) -> String {
        self.key().map(|k| k.kid().to_string()).unwrap_or_default()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::audit::Error> {
        self.key()?
            .sign(message)
            .map_err(|e| crate::audit::Error::Signing(e.to_string()))
    }

    fn public_key(&self) -> Vec<u8> {
        self.key()
            .map(|k| k.public_key().to_vec())
            .unwrap_or_default()
    }
}

/// The token service's view of the directory: the serving policy snapshot.
/// With no snapshot loaded nobody has roles, so nobody can log in (fail
/// closed).
struct PolicyDirectory(Arc<PolicySource>);

impl crate::tokens::Directory for PolicyDirectory {
    fn roles_of(&self, user_id: &str, org_id: &str) -> Option<Vec<String>> {
        let snap = self.0.snapshot()?;
        let roles = snap.roles_of(user_id, org_id)?;
        Some(roles.into_iter().map(str::to_string).collect())
    }
}

/// Sessions carry the roles they were issued with; when a new policy
/// snapshot changes a user's roles, that user's sessions are revoked so the
/// next request re-authenticates under the new roles.
fn revoke_on_role_change(policy: &PolicySource, tokens: &Arc<Tokens>) {
    let tokens = Arc::downgrade(tokens);
    policy.on_change(Box::new(move |old, new| {
        let Some(tokens) = tokens.upgrade() else {
            return;
        };
        if crate::policy::changed_users(old, new).is_empty() {
            return;
        }
        match tokens.reconcile_roles() {
            Ok(users) if !users.is_empty() => {
                tracing::info!(?users, "roles changed; sessions revoked")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot revoke sessions after a role change"),
        }
    }));
}

/// Key and token events go to the log until the audit log is wired in.
struct LogKeyEvents;

impl crate::keys::EventSink for LogKeyEvents {
    fn key_event(&self, e: &crate::keys::KeyEvent) {
        tracing::info!(target: "warden::audit", action = e.action, kid = %e.kid, purpose = %e.purpose, "key event");
    }
}

struct LogTokenEvents;

impl crate::tokens::EventSink for LogTokenEvents {
    fn token_event(&self, e: &crate::tokens::TokenEvent) {
        if e.kind == "refresh_reused" {
            tracing::warn!(target: "warden::audit", kind = e.kind, user_id = %e.user_id, session_id = ?e.session_id, reason = %e.reason, "token event: suspicious");
        } else {
            tracing::info!(target: "warden::audit", kind = e.kind, user_id = %e.user_id, session_id = ?e.session_id, reason = %e.reason, count = e.count, "token event");
        }
    }
}

/// Applies due key transitions and prunes ended sessions, every 10 s.
async fn key_maintenance(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    let period = std::time::Duration::from_secs(10);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(period) => {
                let (keys, tokens) = (ctx.keys.clone(), ctx.tokens.clone());
                let r = tokio::task::spawn_blocking(move || -> Result<(), Error> {
                    keys.advance()?;
                    tokens.prune()?;
                    Ok(())
                })
                .await;
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "key maintenance failed"),
                    Err(e) => tracing::error!(error = %e, "key maintenance task failed"),
                }
            }
        }
    }
}

async fn host_id(store: &Store) -> Result<String, crate::store::Error> {
    store
        .run(|s| {
            if let Some(id) = s.meta("host_id")? {
                return Ok(id);
            }
            let bytes = crate::random::bytes::<16>()
                .map_err(|e| crate::store::Error::Invalid(e.to_string()))?;
            let id = hex::encode(bytes);
            s.set_meta("host_id", &id)?;
            Ok(id)
        })
        .await
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// SIGTERM, SIGINT and SIGHUP streams, registered with the kernel at once.
struct SignalHandlers {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl SignalHandlers {
    fn install() -> Result<SignalHandlers, Error> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(SignalHandlers {
            term: signal(SignalKind::terminate()).map_err(Error::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(Error::Signals)?,
            hup: signal(SignalKind::hangup()).map_err(Error::Signals)?,
        })
    }
}

async fn signals(ctx: Arc<Ctx>, handlers: SignalHandlers, shutdown: Shutdown) {
    let SignalHandlers {
        mut term,
        mut int,
        mut hup,
    } = handlers;
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            () = stop.wait() => return,
            _ = term.recv() => {
                tracing::info!("SIGTERM received; shutting down");
                shutdown.trigger();
            }
            _ = int.recv() => {
                tracing::info!("SIGINT received; shutting down");
                shutdown.trigger();
            }
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                ctx.reload("sighup").await;
                notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
}

/// Half the watchdog interval systemd asked for, if it asked. Follows
/// sd_watchdog_enabled(3): `WATCHDOG_USEC` set, and `WATCHDOG_PID` either
/// unset or ours.
fn watchdog_period() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| std::time::Duration::from_micros(usec / 2))
}

async fn watchdog(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    let Some(period) = watchdog_period() else {
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(period) => {
                // Only claim liveness if the store still answers: a wedged
                // database should get us restarted.
                let alive = ctx
                    .store
                    .run(|s| Ok(s.conn().query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
                    .await
                    .is_ok();
                if alive {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                } else {
                    tracing::error!("store did not answer; withholding watchdog ping");
                }
            }
        }
    }
}

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
