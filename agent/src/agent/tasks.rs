//! The long-running background tasks `run` starts: signals, the systemd
//! watchdog, key maintenance; and the helpers they share.

use super::*;

/// Applies due key transitions and prunes ended sessions, every 10 s.
pub(super) async fn key_maintenance(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
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

pub(super) async fn host_id(store: &Store) -> Result<String, crate::store::Error> {
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

pub(super) fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// SIGTERM, SIGINT and SIGHUP streams, registered with the kernel at once.
pub(super) struct SignalHandlers {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl SignalHandlers {
    pub(super) fn install() -> Result<SignalHandlers, Error> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(SignalHandlers {
            term: signal(SignalKind::terminate()).map_err(Error::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(Error::Signals)?,
            hup: signal(SignalKind::hangup()).map_err(Error::Signals)?,
        })
    }
}

pub(super) async fn signals(ctx: Arc<Ctx>, handlers: SignalHandlers, shutdown: Shutdown) {
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
pub(super) fn watchdog_period() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| std::time::Duration::from_micros(usec / 2))
}

pub(super) async fn watchdog(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
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
