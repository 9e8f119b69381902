//! The daemon's own load, as its probes see it. A probe that timed out says nothing about an
//! ActiveGate when the daemon itself was too busy to send it or read the answer in time, so
//! the verdict on a new version needs to know how late the daemon runs.
//!
//! There is one event loop and one network path per process, so one [`Load`] per daemon run:
//! the daemon owns it (on its board) and hands it to every prober it builds. A prober built
//! alone (a CLI command) has a load of its own, never watched: lateness 0, as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Probes in flight at once across every target: enough for 1,000 targets' rounds spread
/// over an interval, few enough that a 2-vCPU task does not spend its time in TLS handshakes.
pub const MAX_PROBES_IN_FLIGHT: usize = 64;

/// Event-loop lateness above which the daemon's own probes are not to be trusted: neither a
/// verdict on a version nor downtime is drawn from their timeouts.
pub const LATE_EVENT_LOOP: Duration = Duration::from_secs(1);

/// How often the lateness watch wakes up.
pub const TICK: Duration = Duration::from_millis(1000);

/// The probe slots and the event loop's lateness of one daemon run.
#[derive(Debug)]
pub struct Load {
    slots: Arc<Semaphore>,
    /// Lateness of the event loop in microseconds: the largest recent one, decaying.
    lateness_micros: AtomicU64,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            slots: Arc::new(Semaphore::new(MAX_PROBES_IN_FLIGHT)),
            lateness_micros: AtomicU64::new(0),
        }
    }
}

impl Load {
    /// A slot for one probe; waits while `MAX_PROBES_IN_FLIGHT` are out.
    pub async fn probe_slot(&self) -> OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the probe semaphore is never closed")
    }

    /// How late the event loop ran recently (0 when nothing watches it).
    pub fn event_loop_lateness(&self) -> Duration {
        Duration::from_micros(self.lateness_micros.load(Ordering::Relaxed))
    }

    /// Sets the lateness, for tests of what reads it.
    #[cfg(test)]
    pub fn set_lateness(&self, late: Duration) {
        let micros = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.lateness_micros.store(micros, Ordering::Relaxed);
    }

    /// Watches the event loop the way tokio users do: a task that sleeps `TICK` and measures
    /// how much later than asked it woke up. Runs until `stop` resolves.
    pub async fn watch_event_loop(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let asked = Instant::now() + TICK;
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep_until(asked) => {}
            }
            let late = Instant::now().saturating_duration_since(asked);
            let previous = self.lateness_micros.load(Ordering::Relaxed);
            self.lateness_micros
                .store(decayed(previous, late), Ordering::Relaxed);
        }
    }
}

/// The next published value: a new peak at once, then 20 % less per tick, so one slow tick
/// is seen for about a second and not forever.
fn decayed(previous_micros: u64, late: Duration) -> u64 {
    let now = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
    now.max(previous_micros.saturating_mul(4) / 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peak_is_seen_at_once_and_fades() {
        let peak = decayed(0, Duration::from_millis(1500));
        assert_eq!(peak, 1_500_000);
        let mut v = peak;
        for _ in 0..10 {
            v = decayed(v, Duration::ZERO);
        }
        assert!(v < 200_000, "{v}");
        assert_eq!(decayed(v, Duration::from_secs(2)), 2_000_000);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_stops_when_told() {
        let load = Arc::new(Load::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let watched = load.clone();
        let watch = tokio::spawn(async move {
            watched
                .watch_event_loop(async {
                    let _ = rx.await;
                })
                .await
        });
        tokio::time::sleep(TICK * 3).await;
        let _ = tx.send(());
        watch.await.expect("the watch ends");
    }

    #[tokio::test]
    async fn two_loads_do_not_share_slots() {
        let (a, b) = (Load::default(), Load::default());
        let mut held = Vec::new();
        for _ in 0..MAX_PROBES_IN_FLIGHT {
            held.push(a.probe_slot().await);
        }
        // `a` is full; `b` still hands out a slot at once.
        let _b = b.probe_slot().await;
        assert_eq!(a.slots.available_permits(), 0);
    }
}
