//! The one way long-lived tasks learn that they should end (mini-redis's `Shutdown`): a
//! `watch` receiver plus a flag, so that a task can both wait for the stop and ask whether it
//! already came. Whoever owns the [`Stop`] decides when; every task holds a [`Shutdown`].

use tokio::sync::watch;

/// The sending side: fires once, for every [`Shutdown`] subscribed to it.
#[derive(Debug)]
pub struct Stop {
    tx: watch::Sender<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    pub fn new() -> Stop {
        let (tx, _) = watch::channel(false);
        Stop { tx }
    }

    /// A receiver for one task.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            is_shutdown: *self.tx.borrow(),
            notify: self.tx.subscribe(),
        }
    }

    /// Tells every subscriber to end. Later subscribers see the stop at once.
    pub fn fire(&self) {
        // `send_replace` stores the value even when nobody listens yet.
        self.tx.send_replace(true);
    }
}

/// The receiving side, one per task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    is_shutdown: bool,
    notify: watch::Receiver<bool>,
}

impl Shutdown {
    /// Whether the stop has come (received or not).
    pub fn is_shutdown(&self) -> bool {
        self.is_shutdown || *self.notify.borrow()
    }

    /// Waits for the stop. A dropped [`Stop`] counts as one: nobody could fire it any more,
    /// and a task left waiting forever would hold the daemon's exit.
    pub async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        let _ = self.notify.wait_for(|stopped| *stopped).await;
        self.is_shutdown = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_sees_the_stop_even_late_ones() {
        let stop = Stop::new();
        let mut early = stop.subscribe();
        assert!(!early.is_shutdown());
        stop.fire();
        early.recv().await;
        assert!(early.is_shutdown());
        let mut late = stop.subscribe();
        assert!(late.is_shutdown());
        late.recv().await;
    }

    #[tokio::test]
    async fn a_dropped_stop_ends_the_wait() {
        let stop = Stop::new();
        let mut s = stop.subscribe();
        drop(stop);
        s.recv().await;
        assert!(s.is_shutdown());
    }
}
