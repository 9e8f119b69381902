//! Proving a revision healthy from the outside: every RUNNING task of it
//! answers its HTTPS probe `healthy_after` times in a row, ECS calls the
//! deployment COMPLETED, and then nothing fails for the bake time.
//!
//! Judged against a baseline: the tasks of the revision being replaced are probed in the
//! same rounds, with the same settings. A round in which the new tasks' failures cannot be
//! told from the daemon's own trouble — the old tasks failed too, every probe failed to
//! connect, the round started late, the event loop runs late — is inconclusive: it counts
//! toward the deadline, never toward a roll-back, so a busy or cut-off daemon never blames
//! a good version.
//!
//! With `[target.verify.dynatrace]`, a new task also needs the Dynatrace environment to list
//! its ActiveGate online as rolled out ([`super::dynatrace`]): one request per round for the
//! whole target, in parallel with the probes.
//!
//! [`verify`] steps a `round::Verification` (what the rounds carry) until it decides:
//! `round` observes, probes new and baseline tasks, classifies the round and counts;
//! `verdict` turns the counts into a failure, progress, the proof or the deadline's verdict;
//! `environment` is the Dynatrace side of both.

mod environment;
mod round;
mod verdict;

use std::time::Duration;

use tokio::time::Instant;

use super::dynatrace::{Asker, Connected, EnvironmentCheck, OnApiError, judge};
use crate::ecs::{Aws, EcsError};
use crate::health::Prober;
use round::Verification;

/// How a revision is verified.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    pub interval: Duration,
    pub grace: Duration,
    pub healthy_after: u32,
    pub unhealthy_after: u32,
    pub bake: Duration,
    pub deadline: Duration,
}

/// Where verification stands, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub revision: String,
    pub elapsed: Duration,
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
    pub baking: bool,
    pub probes_ok: u64,
    pub probes_failed: u64,
    /// New tasks the Dynatrace environment lists as rolled out; `None` without the check.
    pub listed: Option<u32>,
}

/// A revision proven healthy, and what the proof leaves to say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verified {
    /// What the verdict could not check (the Dynatrace environment out of reach with
    /// `on_api_error = "probe-only"`, an image tag that names no version).
    pub warnings: Vec<String>,
    /// What the new ActiveGates reported in the environment's last answer.
    pub connected: Option<Connected>,
}

/// Why a revision was not verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reasons: Vec<String>,
    /// Tasks whose logs tell more.
    pub tasks: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("not verified: {}", .0.reasons.join("; "))]
    Failed(Failure),
    /// The deadline passed with only inconclusive evidence against the revision: nothing
    /// says it is bad, nothing proved it good.
    #[error("not proven either way: {}", .0.reasons.join("; "))]
    Inconclusive(Failure),
    #[error(transparent)]
    Aws(#[from] EcsError),
}

pub use crate::health::load::LATE_EVENT_LOOP;

/// What one probe round saw, for [`inconclusive`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    pub interval: Duration,
    /// How much later than planned the round started.
    pub started_late: Duration,
    /// The event loop's recent lateness.
    pub event_loop_late: Duration,
    pub new_probes: usize,
    pub new_failed: usize,
    pub old_probes: usize,
    pub old_failed: usize,
    /// Failures (old and new) that were connection errors: refused, unreachable, no DNS.
    pub connect_failed: usize,
}

/// Why the new tasks' failures in this round prove nothing, if they do not. A round
/// without new failures is never inconclusive: success is evidence whatever the load.
pub fn inconclusive(r: &Round) -> Option<String> {
    if r.new_failed == 0 {
        return None;
    }
    if r.started_late > r.interval.max(Duration::from_millis(250)) {
        return Some(format!(
            "the probe round started {:.1} s late: the daemon is overloaded",
            r.started_late.as_secs_f64()
        ));
    }
    if r.event_loop_late > LATE_EVENT_LOOP {
        return Some(format!(
            "the daemon's event loop runs {:.1} s late: the daemon is overloaded",
            r.event_loop_late.as_secs_f64()
        ));
    }
    if r.old_probes > 0 && r.old_failed == r.old_probes {
        return Some(
            "probes of old and new tasks failed together: the daemon cannot reach the tasks or is overloaded"
                .into(),
        );
    }
    let all = r.new_probes + r.old_probes;
    if all > 1 && r.connect_failed == all {
        return Some("every probe failed to connect: the daemon cannot reach the tasks".into());
    }
    None
}

fn fail(reasons: Vec<String>, tasks: Vec<String>) -> VerifyError {
    VerifyError::Failed(Failure { reasons, tasks })
}

/// What is being verified: the service's current ECS deployment of a revision (rolling), or
/// one task set of an EXTERNAL service (blue/green), which may serve beside another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Deployment,
    TaskSet(&'a str),
}

/// The revision of a service being verified, and in which scope.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub revision: &'a str,
    pub scope: Scope<'a>,
    /// The revision being replaced, whose running tasks are probed alongside as a baseline.
    pub baseline: Option<&'a str>,
    /// The Dynatrace-side check, and what an API error does to this verification.
    pub environment: Option<(&'a EnvironmentCheck, OnApiError)>,
}

/// Verifies that `revision` runs healthy on the service: round after round, observe what ECS
/// shows, probe the new tasks and the baseline, classify the round, count, decide — until the
/// bake is over, something proves the revision bad, or the deadline passes.
pub async fn verify(
    aws: &Aws,
    prober: &Prober,
    subject: Subject<'_>,
    policy: &VerifyPolicy,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<Verified, VerifyError> {
    let mut verification = Verification::start(aws, prober, subject, policy, progress).await?;
    loop {
        if let Some(verified) = verification.round().await? {
            return Ok(verified);
        }
        tokio::time::sleep(policy.interval).await;
        verification.planned = Instant::now();
    }
}

#[cfg(test)]
mod tests;
