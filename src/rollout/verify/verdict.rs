//! What a round decides: a failure (tasks listed wrong, tasks unhealthy), progress, the proof
//! once the bake is over, or the verdict after the deadline.

use tokio::time::Instant;

use super::environment::connected_hosts;
use super::round::{Shown, Tasks, Verification};
use super::{Failure, Progress, Verified, VerifyError, fail};
use crate::ecs::TaskState;
use crate::rollout::dynatrace::Listing;

/// Where the new tasks stand after a round.
pub(super) struct Tally {
    pub(super) healthy: u32,
    /// Tasks the environment lists as rolled out; `None` without the check.
    pub(super) listed: Option<u32>,
    /// Every task the service (or task set) wants runs, all of them healthy.
    pub(super) ready: bool,
    pub(super) desired: u32,
}

impl Verification<'_> {
    /// A failure when the environment lists new tasks as something else than rolled out,
    /// answer after answer: Dynatrace's proof.
    pub(super) fn listed_wrong(&self, running: &[TaskState], now: Instant) -> Option<VerifyError> {
        let a = self.asker.as_ref()?;
        let wrong: Vec<&TaskState> = running
            .iter()
            .filter(|t| {
                self.seen.get(&t.arn).is_some_and(|s| {
                    s.wrong >= self.policy.unhealthy_after && matches!(s.listing, Listing::Wrong(_))
                })
            })
            .collect();
        if wrong.is_empty() {
            return None;
        }
        let reasons = wrong
            .iter()
            .filter_map(|t| {
                let s = self.seen.get(&t.arn)?;
                a.task_reason(&ip_of(t), &s.listing, now.duration_since(s.first))
            })
            .collect();
        Some(fail(
            reasons,
            wrong.iter().map(|t| t.id().to_owned()).collect(),
        ))
    }

    /// A failure when new tasks past their grace failed `unhealthy_after` probes in a row.
    pub(super) fn unhealthy(&self, running: &[TaskState], now: Instant) -> Option<VerifyError> {
        let policy = self.policy;
        let unhealthy: Vec<String> = running
            .iter()
            .filter_map(|t| {
                let s = self.seen.get(&t.arn)?;
                (s.failed >= policy.unhealthy_after && now.duration_since(s.first) >= policy.grace)
                    .then(|| {
                        format!(
                            "task {} failed {} probes in a row: {}",
                            t.id(),
                            s.failed,
                            s.last_error.as_deref().unwrap_or("?")
                        )
                    })
            })
            .collect();
        if unhealthy.is_empty() {
            return None;
        }
        let ids = running
            .iter()
            .filter(|t| {
                self.seen
                    .get(&t.arn)
                    .is_some_and(|s| s.failed >= policy.unhealthy_after)
            })
            .map(|t| t.id().to_owned())
            .collect();
        Some(fail(unhealthy, ids))
    }

    /// Whether the task passed `healthy_after` probes in a row.
    pub(super) fn probed_ok(&self, t: &TaskState) -> bool {
        self.seen
            .get(&t.arn)
            .is_some_and(|s| s.ok >= self.policy.healthy_after)
    }

    pub(super) fn tally(&self, shown: &Shown, running: &[TaskState]) -> Tally {
        let healthy = running
            .iter()
            .filter(|t| {
                self.probed_ok(t) && self.seen.get(&t.arn).is_some_and(|s| self.dynatrace_ok(s))
            })
            .count() as u32;
        let listed = self.asker.as_ref().map(|_| {
            running
                .iter()
                .filter(|t| {
                    self.seen
                        .get(&t.arn)
                        .is_some_and(|s| matches!(s.listing, Listing::Confirmed { .. }))
                })
                .count() as u32
        });
        let (ready, desired) = match &shown.task_set {
            // A task set is ready when it runs its share of the service, all of it healthy;
            // other task sets (blue) may serve beside it.
            Some(t) => (
                t.running_count >= t.computed_desired_count
                    && healthy >= t.computed_desired_count
                    && healthy as usize == running.len(),
                t.computed_desired_count,
            ),
            None => (
                shown
                    .deployment
                    .as_ref()
                    .is_some_and(|d| d.rollout_state == "COMPLETED")
                    && shown.svc.deployments.len() == 1
                    && healthy >= shown.svc.desired_count
                    && healthy as usize == running.len(),
                shown.svc.desired_count,
            ),
        };
        Tally {
            healthy,
            listed,
            ready,
            desired,
        }
    }

    pub(super) fn report(&self, tally: &Tally, running: usize, now: Instant) {
        (self.progress)(&Progress {
            revision: self.revision.to_owned(),
            elapsed: now.duration_since(self.started),
            desired: tally.desired,
            running: running as u32,
            healthy: tally.healthy,
            baking: self.bake_until.is_some(),
            probes_ok: self.probes_ok,
            probes_failed: self.probes_failed,
            listed: tally.listed,
        });
    }

    /// The proof after the bake: what it could not check, and what the new ActiveGates report.
    pub(super) fn verified(&mut self, tasks: &Tasks, listed: Option<u32>) -> Verified {
        let mut connected = None;
        if let Some(a) = &self.asker {
            let running = tasks.running.len();
            let unconfirmed = running as u32 - listed.unwrap_or(0);
            if unconfirmed > 0 {
                self.warnings.push(format!(
                    "{unconfirmed} of {running} new ActiveGates verified by their HTTPS probe alone: {} (verify.dynatrace.on_api_error = \"probe-only\")",
                    a.error_reason()
                        .unwrap_or_else(|| "the Dynatrace environment could not be asked".into())
                ));
            }
            connected = self
                .last_answer
                .as_ref()
                .map(|gates| connected_hosts(gates, self.revision, tasks));
        }
        Verified {
            warnings: std::mem::take(&mut self.warnings),
            connected,
        }
    }

    /// The deadline passed unproven: a failure, or inconclusive when nothing says the
    /// revision is bad (the environment could not confirm what the probes passed, or rounds
    /// proved nothing).
    pub(super) fn past_deadline(
        &self,
        shown: &Shown,
        tasks: &Tasks,
        tally: &Tally,
        now: Instant,
    ) -> VerifyError {
        let running = &tasks.running;
        let mut reasons = vec![self.deadline_summary(shown, running, tally)];
        // The last probe error of the tasks whose probes do not pass now (a task that
        // answered 503 while it started and has passed since is no probe failure).
        reasons.extend(
            running
                .iter()
                .filter(|t| !self.probed_ok(t))
                .filter_map(|t| {
                    Some(format!(
                        "task {}: {}",
                        t.id(),
                        self.seen.get(&t.arn)?.last_error.as_deref()?
                    ))
                }),
        );
        let ids = running.iter().map(|t| t.id().to_owned()).collect();
        if let Some(a) = &self.asker
            && self.environment_to_blame(a, tasks, now, &mut reasons)
        {
            return VerifyError::Inconclusive(Failure {
                reasons,
                tasks: ids,
            });
        }
        if let Some(why) = &self.unsure_why {
            reasons.push(format!(
                "{} of {} probe rounds were inconclusive ({why}); the revision is not blamed",
                self.unsure_rounds, self.rounds
            ));
            return VerifyError::Inconclusive(Failure {
                reasons,
                tasks: ids,
            });
        }
        fail(reasons, ids)
    }

    /// The first reason after the deadline: how many tasks are healthy, and where ECS stands.
    pub(super) fn deadline_summary(
        &self,
        shown: &Shown,
        running: &[TaskState],
        tally: &Tally,
    ) -> String {
        let Tally {
            healthy,
            desired,
            listed,
            ..
        } = tally;
        format!(
            "not verified within {} s: {healthy} of {desired} tasks healthy{}, {}",
            self.policy.deadline.as_secs(),
            match listed {
                Some(l) => format!(
                    " ({} pass their probes, {l} listed by the Dynatrace environment)",
                    running.iter().filter(|t| self.probed_ok(t)).count()
                ),
                None => String::new(),
            },
            match &shown.task_set {
                Some(t) => format!("task set {} {}", t.id, t.stability_status),
                None => format!(
                    "deployment {}",
                    shown
                        .deployment
                        .as_ref()
                        .map_or("missing", |d| d.rollout_state.as_str())
                ),
            }
        )
    }
}

/// A task's address, or its id when it has none.
pub(super) fn ip_of(t: &TaskState) -> String {
    t.ip.clone().unwrap_or_else(|| t.id().to_owned())
}
