//! The daemon's own load, as its probes see it. A probe that timed out says nothing about an
//! ActiveGate when the daemon itself was too busy to send it or read the answer in time, so
//! the verdict on a new version needs to know how late the daemon runs.
//!
//! Both values here are process-wide by nature — there is one event loop and one network
//! path — so they are process statics, not per-target state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Probes in flight at once across every target: enough for 1,000 targets' rounds spread
/// over an interval, few enough that a 2-vCPU task does not spend its time in TLS handshakes.
pub const MAX_PROBES_IN_FLIGHT: usize = 64;

static PROBE_SLOTS: Semaphore = Semaphore::const_new(MAX_PROBES_IN_FLIGHT);

/// Lateness of the event loop in microseconds: the largest recent one, decaying.
static LATENESS_MICROS: AtomicU64 = AtomicU64::new(0);

/// How often the lateness watch wakes up.
pub const TICK: Duration = Duration::from_millis(1000);

/// A slot for one probe; waits while `MAX_PROBES_IN_FLIGHT` are out.
pub async fn probe_slot() -> SemaphorePermit<'static> {
    PROBE_SLOTS
        .acquire()
        .await
        .expect("the probe semaphore is never closed")
}

/// How late the event loop ran recently (0 when nothing watches it).
pub fn event_loop_lateness() -> Duration {
    Duration::from_micros(LATENESS_MICROS.load(Ordering::Relaxed))
}

/// The next published value: a new peak at once, then 20 % less per tick, so one slow tick
/// is seen for about a second and not forever.
fn decayed(previous_micros: u64, late: Duration) -> u64 {
    let now = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
    now.max(previous_micros.saturating_mul(4) / 5)
}

/// Watches the event loop the way tokio users do: a task that sleeps `TICK` and measures
/// how much later than asked it woke up. Runs until `stop` resolves.
pub async fn watch_event_loop(stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let asked = Instant::now() + TICK;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep_until(asked) => {}
        }
        let late = Instant::now().saturating_duration_since(asked);
        let previous = LATENESS_MICROS.load(Ordering::Relaxed);
        LATENESS_MICROS.store(decayed(previous, late), Ordering::Relaxed);
    }
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
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let watch = tokio::spawn(watch_event_loop(async {
            let _ = rx.await;
        }));
        tokio::time::sleep(TICK * 3).await;
        let _ = tx.send(());
        watch.await.expect("the watch ends");
    }
}
