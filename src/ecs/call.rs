//! Every call goes through [`Aws::call`]: the one place that waits for the rate budget,
//! retries (with backoff and jitter) and counts calls, retries, throttles, failures and
//! budget waits per operation.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use super::{Aws, EcsError};

/// Calls, retries and throttles per operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CallCount {
    pub calls: u64,
    pub retries: u64,
    pub throttled: u64,
    pub failed: u64,
    /// Attempts that waited for a token of the client-side rate budget, and how long in all.
    pub budget_waits: u64,
    #[serde(serialize_with = "seconds")]
    pub budget_waited: Duration,
}

impl CallCount {
    /// What was counted since `before` (an earlier reading of the same counter).
    pub fn since(&self, before: &CallCount) -> CallCount {
        CallCount {
            calls: self.calls.saturating_sub(before.calls),
            retries: self.retries.saturating_sub(before.retries),
            throttled: self.throttled.saturating_sub(before.throttled),
            failed: self.failed.saturating_sub(before.failed),
            budget_waits: self.budget_waits.saturating_sub(before.budget_waits),
            budget_waited: self.budget_waited.saturating_sub(before.budget_waited),
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &CallCount) {
        self.calls += other.calls;
        self.retries += other.retries;
        self.throttled += other.throttled;
        self.failed += other.failed;
        self.budget_waits += other.budget_waits;
        self.budget_waited += other.budget_waited;
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Aws {
    /// Calls, retries and throttles per operation so far.
    pub fn counts(&self) -> BTreeMap<&'static str, CallCount> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn count(&self, op: &'static str, f: impl FnOnce(&mut CallCount)) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(counts.entry(op).or_default());
    }

    /// Runs one call, each attempt after a token of its family's rate budget, retrying
    /// what is retriable with exponential backoff and jitter.
    pub(super) async fn call<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, EcsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, EcsError>>,
    {
        let mut attempt = 0;
        loop {
            let result = {
                // One of the calls in flight of this (identity, region), held for the attempt
                // (not for a backoff): a burst of a thousand monitors' writes goes out a few
                // dozen at a time, not as a thousand SDK futures and connections at once.
                let _slot = self.budget.in_flight(op).await;
                // Before every attempt, retries included: a retry after a throttle must not
                // spend a token the bucket does not have.
                if let Some(waited) = self.budget.acquire(op).await {
                    self.count(op, |c| {
                        c.budget_waits += 1;
                        c.budget_waited += waited;
                    });
                }
                self.count(op, |c| c.calls += 1);
                // On the heap for the call's duration: an SDK operation's future is several
                // KiB, and inline it would make every future that awaits a call (a target's
                // loop, its monitor: each held for the daemon's life) that much larger.
                Box::pin(f()).await
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let throttled = e.is_throttling();
                    self.count(op, |c| c.throttled += u64::from(throttled));
                    attempt += 1;
                    if !e.is_retriable() || attempt >= self.settings.max_attempts {
                        self.count(op, |c| c.failed += 1);
                        return Err(e);
                    }
                    self.count(op, |c| c.retries += 1);
                    let exp = self
                        .settings
                        .initial_backoff
                        .saturating_mul(1 << (attempt - 1).min(16));
                    let backoff = exp
                        .min(self.settings.max_backoff)
                        .mul_f64(0.5 + fastrand::f64() / 2.0);
                    tracing::debug!(op, attempt, error = %e, backoff_ms = backoff.as_millis() as u64, "retrying");
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }
}
