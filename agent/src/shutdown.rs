//! One shutdown signal shared by every long-running task.
//!
//! SIGTERM/SIGINT (or a test) calls [`Shutdown::trigger`]; the accept loop,
//! each connection and each background task wait on their clone and wind down.

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        Shutdown {
            tx: std::sync::Arc::new(tx),
            rx,
        }
    }

    /// Asks every holder to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has been triggered.
    pub async fn wait(&mut self) {
        // An error means every sender is gone, which also means "stop".
        let _ = self.rx.wait_for(|stopped| *stopped).await;
    }
}
