//! Retrying a reconcile that failed for a passing reason (AWS throttling, a
//! 5xx, a dropped connection, a busy service, a registry that did not answer).
//!
//! This is not a second layer of AWS retries: `ecs::call` retries each call
//! within one reconcile; this retries the whole reconcile, later, when those
//! attempts ran out — the requeue of kube-runtime's `error_policy`. Without it a
//! target with no schedule would wait for the next SIGHUP or trigger.
//!
//! A retry continues a reconcile that was already allowed to start, so it is
//! not held back by the maintenance window or a spent error budget (those
//! apply to scheduled runs only). The decisions here are pure; the target's
//! loop sleeps until `Retries::pending` and runs them.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How long to wait before retrying: `base`, doubled after every further
/// consecutive retriable failure, never more than `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    /// 15 s, 30 s, 60 s, 120 s, 240 s, then 300 s.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(15),
            cap: Duration::from_secs(300),
        }
    }
}

/// At most this share of a delay is taken off at random, so that targets that
/// failed together (one throttled account) do not all retry at the same instant.
pub const JITTER: f64 = 0.1;

impl Backoff {
    /// The wait before retry `attempt` (1: after the first failure).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }

    /// `delay(attempt)` shortened by `jitter` (0..=1) times `JITTER`: never
    /// later than the backoff, at most 10 % earlier.
    pub fn jittered(&self, attempt: u32, jitter: f64) -> Duration {
        self.delay(attempt)
            .mul_f64(1.0 - JITTER * jitter.clamp(0.0, 1.0))
    }
}

/// How a run of the target's loop ended, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Not run (outside the maintenance window, error budget spent): a pending retry stays.
    Skipped,
    /// The reconcile finished, whatever its outcome.
    Finished,
    /// The reconcile could not finish; `retriable` from the error's own policy.
    Failed { retriable: bool },
}

/// A retry the loop waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub at: DateTime<Utc>,
    /// The wait it was armed with (jitter included).
    pub backoff: Duration,
}

/// One target's retry state: consecutive retriable failures and the retry armed after them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retries {
    /// Consecutive retriable failures (0 after a finished reconcile or a failure not worth retrying).
    pub attempt: u32,
    pub pending: Option<Pending>,
}

impl Retries {
    /// Takes the pending retry when its time came, so that it fires once.
    pub fn fire(&mut self) -> Option<Pending> {
        self.pending.take()
    }

    /// The state after a run that ended at `now`. A finished reconcile and a
    /// failure that needs a person (or a new config) reset the backoff and drop
    /// any pending retry; a retriable failure arms the next retry.
    pub fn after(&mut self, ended: Ended, now: DateTime<Utc>, backoff: &Backoff, jitter: f64) {
        match ended {
            Ended::Skipped => {}
            Ended::Finished | Ended::Failed { retriable: false } => *self = Retries::default(),
            Ended::Failed { retriable: true } => {
                self.attempt = self.attempt.saturating_add(1);
                let wait = backoff.jittered(self.attempt, jitter);
                let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                self.pending = Some(Pending { at, backoff: wait });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_backoff_doubles_from_15_s_and_stops_at_5_min() {
        let b = Backoff::default();
        let got: Vec<u64> = (1..=8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(got, [15, 30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(b.delay(0), secs(15), "attempt 0 is read as the first");
        assert_eq!(
            b.delay(u32::MAX),
            secs(300),
            "no overflow however long it fails"
        );
    }

    #[test]
    fn an_injected_base_and_cap_are_followed() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(350),
        };
        let got: Vec<u128> = (1..=4).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
    }

    #[test]
    fn jitter_only_shortens_and_by_10_percent_at_most() {
        let b = Backoff::default();
        assert_eq!(b.jittered(2, 0.0), secs(30));
        assert_eq!(b.jittered(2, 1.0), secs(27));
        assert_eq!(b.jittered(9, 1.0), secs(270), "the cap is never passed");
        assert_eq!(
            b.jittered(1, 7.0),
            b.jittered(1, 1.0),
            "out of range is clamped"
        );
    }

    #[test]
    fn retriable_failures_arm_a_growing_retry_and_anything_else_resets_it() {
        let b = Backoff::default();
        let t0 = Utc
            .with_ymd_and_hms(2026, 12, 1, 3, 30, 0)
            .single()
            .expect("a valid time");
        let mut r = Retries::default();
        let retriable = Ended::Failed { retriable: true };

        r.after(retriable, t0, &b, 0.0);
        assert_eq!(r.attempt, 1);
        assert_eq!(
            r.pending,
            Some(Pending {
                at: t0 + chrono::Duration::seconds(15),
                backoff: secs(15)
            })
        );
        assert_eq!(r.fire().map(|p| p.backoff), Some(secs(15)));
        assert_eq!(r.fire(), None, "a retry fires once");

        for want in [30, 60, 120, 240, 300, 300] {
            r.after(retriable, t0, &b, 0.0);
            assert_eq!(r.pending.map(|p| p.backoff), Some(secs(want)));
        }
        assert_eq!(r.attempt, 7);

        // A scheduled run skipped (window, budget) leaves the retry as it was.
        let before = r.clone();
        r.after(Ended::Skipped, t0, &b, 0.0);
        assert_eq!(r, before);

        // A failure that needs a person arms nothing and resets the backoff.
        r.after(Ended::Failed { retriable: false }, t0, &b, 0.0);
        assert_eq!(r, Retries::default());
        r.after(retriable, t0, &b, 0.0);
        assert_eq!(r.pending.map(|p| p.backoff), Some(secs(15)));

        // So does a finished reconcile, e.g. a trigger that ran while the retry was pending.
        r.after(Ended::Finished, t0, &b, 0.0);
        assert_eq!(r, Retries::default());
    }
}
