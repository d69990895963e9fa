//! A shutdown signal shared by the tasks of a long-running Serena.

use std::sync::Arc;

use tokio::sync::watch;

/// Cloneable shutdown signal: [`Shutdown::trigger`] once, every [`Shutdown::wait`] returns.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        Shutdown {
            tx: Arc::new(tx),
            rx,
        }
    }

    /// Fires the signal (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether it has fired.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until it fires (returns at once if it has). Cancel-safe.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // The sender lives in `self`, so `wait_for` cannot fail with a closed channel.
        let _ = rx.wait_for(|fired| *fired).await;
    }
}
