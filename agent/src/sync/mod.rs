//! The policy file source: turns a directory of registry files into the
//! snapshot the API serves, and keeps it current.
//!
//! Design:
//! - **Publication**: the current [`Snapshot`] lives in an `ArcSwapOption`;
//!   a check loads it without a lock and keeps its `Arc` for the whole
//!   request, so a reload never changes a decision half-way.
//! - **Validation before swap**: a change is read, parsed, validated and
//!   compiled off to the side; only a snapshot that compiled replaces the
//!   current one. An invalid change keeps the last good snapshot serving and
//!   is reported in `/v1/status` (`last_error`, `stale_seconds`), the
//!   `warden_policy_reload_ok` gauge, `warden_reloads_total` and the log.
//! - **Local cache**: every snapshot that goes live has its source saved in
//!   the store (one transaction). At start, if the files are missing or
//!   broken, the cached source is compiled instead and the agent is ready
//!   from it (status `source: "cache"`). Fail closed: with neither, the agent
//!   is not ready and denies nothing it has not decided.
//! - **Watching**: `notify` with `notify-debouncer-mini` on the directory,
//!   recursively, and on its parent, so a directory that appears later or is
//!   replaced by a rename is re-watched; events are coalesced for
//!   `policy.debounce` and then one reload runs on the loader thread. SIGHUP and `POST /v1/admin/reload`
//!   call [`PolicySource::reload_now`] directly. Reloads are serialised.
//! - **One loader thread**: every load (start, watcher, SIGHUP, API) runs on
//!   one dedicated thread. Parsing a 100k-user directory has a transient
//!   peak of tens of MiB; glibc keeps a per-thread arena's freed memory, so
//!   loads spread over many threads would each leave their peak resident.
//! - **Ordering**: the cache is written only after the new snapshot is
//!   published, and a failed cache write is logged but does not undo the
//!   swap: serving the operator's valid change matters more than the cache.

mod config;
pub mod files;

pub use config::{Config, RawConfig, DEFAULT_DEBOUNCE, DEFAULT_DIR};

use crate::clock::SharedClock;
use crate::policy::{self, Reason, Snapshot, SourceFile};
use crate::store::Store;
use arc_swap::ArcSwapOption;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, Weak};

/// What went wrong loading policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read policy directory {dir}: {source}")]
    Read {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("policy in {dir} is invalid: {source}")]
    Policy { dir: PathBuf, source: policy::Error },
    #[error("cannot watch policy directory {dir}: {detail}")]
    Watch { dir: PathBuf, detail: String },
    #[error("cannot set up policy metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Where the serving snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    File,
    Cache,
}

/// The policy part of `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub loaded: bool,
    pub version: Option<String>,
    pub source: Option<Origin>,
    pub dir: PathBuf,
    pub loaded_at: Option<String>,
    /// Seconds the served snapshot has been behind its source: 0 when the
    /// files compiled on the last attempt; otherwise since the first failure.
    pub stale_seconds: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Lockout warnings of the last change that went live.
    pub warnings: Vec<String>,
    pub permissions: usize,
    pub users: usize,
    pub orgs: usize,
}

/// Outcome of one reload attempt.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Reload {
    /// A new snapshot is serving.
    Applied {
        version: String,
        warnings: Vec<String>,
        role_changes: usize,
    },
    /// The files compiled to the snapshot already serving.
    Unchanged { version: String },
    /// The change was rejected; `version` (if any) keeps serving.
    Rejected {
        error: String,
        version: Option<String>,
    },
}

/// Called with (old, new) after a new snapshot goes live; the tokens work
/// uses it to revoke sessions of users whose roles changed.
pub type ChangeHook = Box<dyn Fn(&Snapshot, &Snapshot) + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    origin: Option<Origin>,
    loaded_at_ms: Option<i64>,
    last_error: Option<String>,
    last_error_at_ms: Option<i64>,
    /// First failure since the last success (for `stale_seconds`).
    failing_since_ms: Option<i64>,
    warnings: Vec<String>,
}

/// Policy metrics (see `docs/telemetry.md`).
#[derive(Clone)]
pub struct Metrics {
    reloads: IntCounterVec,
    reload_ok: IntGauge,
    loaded_at: IntGauge,
    /// Decisions by reason and enforcement, pre-resolved for the check path.
    decisions: Vec<[IntCounter; 2]>,
}

impl Metrics {
    /// Registers the policy metrics. `reloads` is the agent-wide
    /// `warden_reloads_total{what,outcome}`.
    pub fn new(registry: &Registry, reloads: IntCounterVec) -> Result<Metrics, prometheus::Error> {
        let reload_ok = IntGauge::new(
            "warden_policy_reload_ok",
            "1 if the last policy load attempt compiled, 0 if it was rejected",
        )?;
        let loaded_at = IntGauge::new(
            "warden_policy_loaded_timestamp_seconds",
            "Unix time the serving policy snapshot went live",
        )?;
        let decisions_vec = IntCounterVec::new(
            Opts::new(
                "warden_policy_decisions_total",
                "Permission decisions by reason and whether they were enforced (report mode: false)",
            ),
            &["reason", "enforced"],
        )?;
        registry.register(Box::new(reload_ok.clone()))?;
        registry.register(Box::new(loaded_at.clone()))?;
        registry.register(Box::new(decisions_vec.clone()))?;
        let decisions = Reason::ALL
            .iter()
            .map(|r| {
                [
                    decisions_vec.with_label_values(&[r.as_str(), "false"]),
                    decisions_vec.with_label_values(&[r.as_str(), "true"]),
                ]
            })
            .collect();
        Ok(Metrics {
            reloads,
            reload_ok,
            loaded_at,
            decisions,
        })
    }

    /// Counts one decision.
    pub fn decision(&self, d: &policy::Decision) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == d.reason) {
            self.decisions[i][usize::from(d.enforced)].inc();
        }
    }
}

/// The live policy: current snapshot, status and reload.
pub struct PolicySource {
    config: Config,
    store: Store,
    clock: SharedClock,
    metrics: Metrics,
    current: ArcSwapOption<Snapshot>,
    state: Mutex<State>,
    reload_lock: Mutex<()>,
    hooks: Mutex<Vec<ChangeHook>>,
    watcher: Mutex<Option<Debouncer<notify::RecommendedWatcher>>>,
    loader: Mutex<Option<mpsc::Sender<Job>>>,
}

/// Work for the loader thread.
type Job = Box<dyn FnOnce(&PolicySource) + Send>;

impl std::fmt::Debug for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySource")
            .field("dir", &self.config.dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data behind these locks stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A compiled policy directory.
pub struct Loaded {
    pub snapshot: Snapshot,
    /// The registry source (what the cache stores).
    pub registry: Vec<SourceFile>,
    /// Policy test case files (`tests/`).
    pub cases: Vec<SourceFile>,
}

/// Reads and compiles a policy directory (offline tools use this too).
pub fn load_dir(dir: &Path) -> Result<Loaded, Error> {
    let contents = files::read_dir(dir).map_err(|e| Error::Read {
        dir: dir.to_path_buf(),
        source: e,
    })?;
    let snapshot = policy::load(&contents.registry).map_err(|e| Error::Policy {
        dir: dir.to_path_buf(),
        source: e,
    })?;
    Ok(Loaded {
        snapshot,
        registry: contents.registry,
        cases: contents.cases,
    })
}

impl PolicySource {
    /// Loads the policy (files first, then the local cache). Blocking: call
    /// from a blocking thread. Never fails for a bad policy: the source then
    /// simply has no snapshot (not ready) and records why.
    pub fn open(
        config: Config,
        store: Store,
        clock: SharedClock,
        metrics: Metrics,
    ) -> Arc<PolicySource> {
        let source = Arc::new(PolicySource {
            config,
            store,
            clock,
            metrics,
            current: ArcSwapOption::empty(),
            state: Mutex::new(State::default()),
            reload_lock: Mutex::new(()),
            hooks: Mutex::new(Vec::new()),
            watcher: Mutex::new(None),
            loader: Mutex::new(None),
        });
        source.spawn_loader();
        source.on_loader(|s| {
            if let Reload::Rejected { error, .. } = s.reload_inner("start") {
                s.load_cache(&error);
            }
        });
        source
    }

    fn spawn_loader(self: &Arc<Self>) {
        let (tx, rx) = mpsc::channel::<Job>();
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("policy-loader".into())
            .spawn(move || {
                // Ends when the source (and with it the sender) is dropped.
                while let Ok(job) = rx.recv() {
                    let Some(source) = weak.upgrade() else { break };
                    job(&source);
                }
            });
        match spawned {
            Ok(_) => *lock(&self.loader) = Some(tx),
            // Loads then run on the caller's thread; correct, just leaner
            // memory lost.
            Err(e) => tracing::warn!(error = %e, "cannot start the policy loader thread"),
        }
    }

    /// Runs `f` on the loader thread and waits for its result (inline if
    /// the thread is unavailable); `None` if `f` panicked. Never call from
    /// the loader thread itself.
    fn on_loader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&PolicySource) -> T + Send + 'static,
    ) -> Option<T> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |s: &PolicySource| {
            let _ = reply_tx.send(f(s));
        });
        let sender = lock(&self.loader).clone();
        match sender {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(job) {
                    job(self);
                }
            }
            None => job(self),
        }
        reply_rx.recv().ok()
    }

    fn load_cache(&self, file_error: &str) {
        let cached = match self.store.cached_policy() {
            Ok(Some(c)) => c,
            Ok(None) => {
                tracing::error!(error = %file_error, "policy files unusable and no cached policy; not ready");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the cached policy; not ready");
                return;
            }
        };
        match policy::load(&cached.files) {
            Ok(snapshot) => {
                let now = self.clock.now_ms();
                tracing::warn!(
                    version = snapshot.version(),
                    cached_at = %crate::clock::rfc3339(cached.saved_at_ms),
                    error = %file_error,
                    "policy files unusable; serving the cached policy"
                );
                self.metrics.loaded_at.set(now / 1000);
                self.current.store(Some(Arc::new(snapshot)));
                let mut st = lock(&self.state);
                st.origin = Some(Origin::Cache);
                st.loaded_at_ms = Some(now);
            }
            Err(e) => {
                tracing::error!(error = %e, "the cached policy does not compile either; not ready")
            }
        }
    }

    /// The serving snapshot (lock-free), `None` until one is loaded.
    #[inline]
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Registers a hook run after each change goes live.
    pub fn on_change(&self, hook: ChangeHook) {
        lock(&self.hooks).push(hook);
    }

    /// The policy section of `/v1/status`.
    pub fn status(&self) -> Status {
        let snap = self.snapshot();
        let st = lock(&self.state);
        let now = self.clock.now_ms();
        let stale_since = st.failing_since_ms.or(match st.origin {
            Some(Origin::Cache) => st.loaded_at_ms,
            _ => None,
        });
        Status {
            loaded: snap.is_some(),
            version: snap.as_ref().map(|s| s.version().to_string()),
            source: st.origin,
            dir: self.config.dir.clone(),
            loaded_at: st.loaded_at_ms.map(crate::clock::rfc3339),
            stale_seconds: stale_since
                .map(|t| u64::try_from((now - t).max(0) / 1000).unwrap_or(0))
                .unwrap_or(0),
            last_error: st.last_error.clone(),
            last_error_at: st.last_error_at_ms.map(crate::clock::rfc3339),
            warnings: st.warnings.clone(),
            permissions: snap.as_ref().map_or(0, |s| s.permission_count()),
            users: snap.as_ref().map_or(0, |s| s.user_count()),
            orgs: snap.as_ref().map_or(0, |s| s.org_count()),
        }
    }

    /// Re-reads the directory now. Blocking (file and store I/O, on the
    /// loader thread).
    pub fn reload_now(&self, trigger: &'static str) -> Reload {
        self.on_loader(move |s| s.reload_inner(trigger))
            .unwrap_or_else(|| {
                tracing::error!(
                    trigger,
                    "policy reload failed unexpectedly; keeping the serving snapshot"
                );
                Reload::Rejected {
                    error: "policy reload failed unexpectedly; see the agent log".into(),
                    version: self.snapshot().map(|s| s.version().to_string()),
                }
            })
    }

    fn reload_inner(&self, trigger: &'static str) -> Reload {
        let _serial = lock(&self.reload_lock);
        let now = self.clock.now_ms();
        let outcome = match load_dir(&self.config.dir) {
            Ok(loaded) => self.publish(loaded.snapshot, &loaded.registry, trigger, now),
            Err(e) => {
                let error = e.to_string();
                let version = self.snapshot().map(|s| s.version().to_string());
                tracing::error!(trigger, %error, serving = version.as_deref().unwrap_or("nothing"), "policy change rejected; keeping the serving snapshot");
                let mut st = lock(&self.state);
                st.last_error = Some(error.clone());
                st.last_error_at_ms = Some(now);
                st.failing_since_ms.get_or_insert(now);
                Reload::Rejected { error, version }
            }
        };
        let (label, ok) = match &outcome {
            Reload::Applied { .. } => ("applied", 1),
            Reload::Unchanged { .. } => ("unchanged", 1),
            Reload::Rejected { .. } => ("rejected", 0),
        };
        self.metrics
            .reloads
            .with_label_values(&["policy", label])
            .inc();
        self.metrics.reload_ok.set(ok);
        outcome
    }

    fn publish(
        &self,
        snapshot: Snapshot,
        source: &[SourceFile],
        trigger: &'static str,
        now: i64,
    ) -> Reload {
        let old = self.snapshot();
        let from_cache = lock(&self.state).origin == Some(Origin::Cache);
        {
            let mut st = lock(&self.state);
            st.last_error = None;
            st.failing_since_ms = None;
        }
        if let Some(old) = &old {
            if old.version() == snapshot.version() {
                let mut st = lock(&self.state);
                if from_cache {
                    // The files are back and say what the cache said.
                    st.origin = Some(Origin::File);
                }
                return Reload::Unchanged {
                    version: snapshot.version().to_string(),
                };
            }
        }
        // Serve first; analyse after: a lockout or role-change analysis of a
        // large directory must not delay the change it describes.
        let snapshot = Arc::new(snapshot);
        self.current.store(Some(snapshot.clone()));
        self.metrics.loaded_at.set(now / 1000);
        {
            let mut st = lock(&self.state);
            st.origin = Some(Origin::File);
            st.loaded_at_ms = Some(now);
            st.warnings.clear();
        }
        let (warnings, role_changes) = match &old {
            Some(old) => (
                policy::lockout(old, &snapshot, None)
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                policy::changed_users(old, &snapshot).len(),
            ),
            None => (Vec::new(), 0),
        };
        for w in &warnings {
            tracing::warn!(warning = %w, "policy change removes grants from many users");
        }
        lock(&self.state).warnings = warnings.clone();
        tracing::info!(
            trigger,
            version = snapshot.version(),
            previous = old.as_ref().map(|o| o.version()).unwrap_or("none"),
            role_changes,
            "policy snapshot live"
        );
        if let Some(old) = &old {
            for hook in lock(&self.hooks).iter() {
                hook(old, &snapshot);
            }
        }
        if let Err(e) = self.store.save_policy(snapshot.version(), source, now) {
            tracing::error!(error = %e, "cannot cache the policy snapshot; it serves, but a restart with broken files will not find it");
        }
        Reload::Applied {
            version: snapshot.version().to_string(),
            warnings,
            role_changes,
        }
    }

    /// Starts watching the directory (if `policy.watch`), and its parent so
    /// the directory may appear later or be replaced by a rename (deploy
    /// tools do both). The watcher lives as long as this source (or until
    /// [`PolicySource::stop_watching`]).
    pub fn watch(self: &Arc<Self>) -> Result<(), Error> {
        if !self.config.watch {
            return Ok(());
        }
        let watch_error = |detail: String| Error::Watch {
            dir: self.config.dir.clone(),
            detail,
        };
        let dir = std::path::absolute(&self.config.dir).map_err(|e| watch_error(e.to_string()))?;
        let weak: Weak<PolicySource> = Arc::downgrade(self);
        let event_dir = dir.clone();
        let mut debouncer = new_debouncer(self.config.debounce, move |res: DebounceEventResult| {
            let Some(source) = weak.upgrade() else { return };
            match res {
                Ok(events) => {
                    // Parent events about other files are not ours.
                    if !events.iter().any(|e| e.path.starts_with(&event_dir)) {
                        return;
                    }
                    if events.iter().any(|e| e.path == event_dir) {
                        // The directory itself appeared or was replaced:
                        // watch the new one.
                        source.rearm(&event_dir);
                    }
                    source.reload_now("watch");
                }
                Err(e) => tracing::warn!(error = %e, "policy watcher error"),
            }
        })
        .map_err(|e| watch_error(e.to_string()))?;
        let parent_watched = dir
            .parent()
            .map(|p| {
                debouncer
                    .watcher()
                    .watch(p, notify::RecursiveMode::NonRecursive)
                    .is_ok()
            })
            .unwrap_or(false);
        if let Err(e) = debouncer
            .watcher()
            .watch(&dir, notify::RecursiveMode::Recursive)
        {
            if !parent_watched {
                return Err(watch_error(e.to_string()));
            }
            tracing::warn!(dir = %dir.display(), error = %e, "policy directory not watchable yet; watching for it to appear");
        }
        *lock(&self.watcher) = Some(debouncer);
        Ok(())
    }

    fn rearm(&self, dir: &Path) {
        if let Some(d) = lock(&self.watcher).as_mut() {
            let _ = d.watcher().unwatch(dir);
            if let Err(e) = d.watcher().watch(dir, notify::RecursiveMode::Recursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the policy directory");
            }
        }
    }

    /// Stops the watcher (at shutdown).
    pub fn stop_watching(&self) {
        lock(&self.watcher).take();
    }
}

#[cfg(test)]
mod tests;
