//! Every call goes through [`Aws::call`]: the one place that retries (with backoff and
//! jitter) and counts calls, retries, throttles and failures per operation.

use std::collections::BTreeMap;
use std::future::Future;

use super::{Aws, EcsError};

/// Calls, retries and throttles per operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CallCount {
    pub calls: u64,
    pub retries: u64,
    pub throttled: u64,
    pub failed: u64,
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

    /// Runs one call, retrying what is retriable with exponential backoff and jitter.
    pub(super) async fn call<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, EcsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, EcsError>>,
    {
        let mut attempt = 0;
        loop {
            self.count(op, |c| c.calls += 1);
            match f().await {
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
