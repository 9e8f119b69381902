//! The blue/green steps (EXTERNAL controller, task sets): create green beside blue, verify
//! it, make it primary, retire blue; or remove a failed green while blue keeps serving.

use std::time::Duration;

use tokio::time::Instant;

use crate::ecs::{EcsError, ServiceState};
use crate::rollout::decide::{Role, Step, Verdict};
use crate::rollout::verify::{Scope, VerifyError};
use crate::rollout::{
    Desired, Engine, Flow, Learned, Outcome, RollbackVia, RolloutError, now_epoch, tags,
};

/// How often a clean-up looks whether the old task set's tasks have stopped.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// An idempotency token for CreateTaskSet (ECS allows 36 characters): the same rollout of
/// the same revision asks for the same task set, however often the call is repeated.
fn client_token(service_arn: &str, revision: &str, started: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{service_arn}\n{revision}\n{started}").as_bytes(),
    );
    d.as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A task set to verify (`Step::VerifyTaskSet`).
struct TaskSetCheck {
    task_set: String,
    revision: String,
    role: Role,
    baseline: Option<String>,
}

/// A green task set to remove (`Step::RemoveGreen`).
struct Green {
    task_set: Option<String>,
    failed: String,
    restored: String,
    inconclusive: bool,
}

impl Engine {
    /// A blue/green step (EXTERNAL controller, task sets).
    pub(super) async fn act_blue_green(
        &self,
        step: Step,
        svc: &ServiceState,
        desired: &Desired,
        learned: &mut Learned,
    ) -> Result<Flow, RolloutError> {
        match step {
            Step::CreateTaskSet { revision, primary } => {
                self.create_task_set(svc, revision, primary, desired).await
            }
            Step::MakePrimary { task_set } | Step::Promote { task_set } => {
                self.make_primary(&task_set, learned).await
            }
            Step::VerifyTaskSet {
                task_set,
                revision,
                role,
                baseline,
            } => {
                let check = TaskSetCheck {
                    task_set,
                    revision,
                    role,
                    baseline,
                };
                let verdict = self.verify_task_set(svc, check, desired, learned).await?;
                self.aws.tag(&svc.arn, &tags::verdict(&verdict)).await?;
                Ok(Flow::Again)
            }
            Step::FinishPromotion { revision, others } => {
                self.finish_promotion(svc, revision, &others, learned).await
            }
            Step::RemoveGreen {
                task_set,
                failed,
                restored,
                inconclusive,
            } => {
                let green = Green {
                    task_set,
                    failed,
                    restored,
                    inconclusive,
                };
                self.remove_green(svc, green, learned).await
            }
            Step::RemoveTaskSets { task_sets } => {
                tracing::warn!(task_sets = ?task_sets, "removing task sets no rollout accounts for");
                self.retire(&task_sets).await?;
                Ok(Flow::Again)
            }
            Step::ScalePrimary { task_set } => {
                tracing::warn!(task_set = %task_set, "the primary task set was scaled down outside a rollout; scaling it back to 100 %");
                let (cluster, service) = (self.spec.cluster.as_str(), self.spec.service.as_str());
                self.aws
                    .update_task_set(cluster, service, &task_set, 100.0)
                    .await?;
                Ok(Flow::Again)
            }
            other => unreachable!("not a blue/green step: {other}"),
        }
    }

    /// Blue/green: a task set at 100 % of the revision in flight, or of the desired revision
    /// (registered and tagged as the rollout first); made primary on a service without one.
    async fn create_task_set(
        &self,
        svc: &ServiceState,
        revision: Option<String>,
        primary: bool,
        desired: &Desired,
    ) -> Result<Flow, RolloutError> {
        let (revision, started) = match revision {
            Some(r) => (
                r,
                svc.tags
                    .get(tags::ROLLOUT_STARTED)
                    .cloned()
                    .unwrap_or_default(),
            ),
            None => {
                let to = self.register(desired).await?;
                let from = svc.primary_task_set().map(|t| t.task_definition.clone());
                let started = now_epoch().to_string();
                tracing::info!(from = ?from, to = %to, image = %desired.image, "rolling out: a green task set beside blue");
                self.mark(svc, from.as_deref(), &to, &started).await?;
                (to, started)
            }
        };
        let doc = self.service_document(&desired.image)?;
        let set = self
            .aws
            .create_task_set(
                &doc,
                &revision,
                100.0,
                tags::EXTERNAL_ID,
                &client_token(&svc.arn, &revision, &started),
            )
            .await?;
        tracing::info!(task_set = %set.id, revision = %revision, "created a task set");
        if primary && set.status != "PRIMARY" {
            self.aws
                .update_service_primary_task_set(&self.spec.cluster, &self.spec.service, &set.id)
                .await?;
        }
        Ok(Flow::Again)
    }

    /// Blue/green: makes the task set primary (a promotion, or a service's first set).
    async fn make_primary(
        &self,
        task_set: &str,
        learned: &mut Learned,
    ) -> Result<Flow, RolloutError> {
        self.report_connected(learned);
        tracing::info!(task_set = %task_set, "making the task set primary");
        self.aws
            .update_service_primary_task_set(&self.spec.cluster, &self.spec.service, task_set)
            .await?;
        Ok(Flow::Again)
    }

    /// Blue/green: probes every task of the set, then bakes; the verdict, for the tag. A
    /// failed green is quarantined here.
    async fn verify_task_set(
        &self,
        svc: &ServiceState,
        check: TaskSetCheck,
        desired: &Desired,
        learned: &mut Learned,
    ) -> Result<Verdict, RolloutError> {
        let TaskSetCheck {
            task_set,
            revision,
            role,
            baseline,
        } = check;
        let (task_set, revision) = (task_set.as_str(), revision.as_str());
        let verified = self
            .verify(
                revision,
                Scope::TaskSet(task_set),
                baseline.as_deref(),
                true,
            )
            .await;
        let task_set = task_set.to_owned();
        Ok(match verified {
            Ok(v) => {
                tracing::info!(task_set = %task_set, revision = %revision, "verified and baked");
                for w in &v.warnings {
                    tracing::warn!(revision = %revision, "{w}");
                }
                learned.warnings = v.warnings;
                learned.connected = v.connected;
                Verdict::Passed(task_set)
            }
            Err(VerifyError::Aws(e)) => return Err(e.into()),
            Err(VerifyError::Inconclusive(f)) => {
                tracing::warn!(task_set = %task_set, revision = %revision, reasons = ?f.reasons, "the new task set could not be judged; removing it without quarantine");
                learned.reasons = f.reasons;
                Verdict::Inconclusive(task_set)
            }
            Err(VerifyError::Failed(f)) => {
                tracing::warn!(task_set = %task_set, revision = %revision, reasons = ?f.reasons, "the new task set failed");
                learned.logs = self.failure_logs(&desired.image, &f.tasks).await;
                learned.reasons = f.reasons;
                if role == Role::Green {
                    // Quarantine before removing green, so that a crash now does not
                    // roll the bad image out again.
                    self.quarantine(svc, revision, &desired.image).await?;
                }
                Verdict::Failed(task_set)
            }
        })
    }

    /// Blue/green: the primary set is the verified new revision: last good, the old sets
    /// retired, the rollout cleared.
    async fn finish_promotion(
        &self,
        svc: &ServiceState,
        revision: String,
        others: &[String],
        learned: &mut Learned,
    ) -> Result<Flow, RolloutError> {
        self.report_connected(learned);
        self.aws.tag(&svc.arn, &tags::last_good(&revision)).await?;
        self.retire(others).await?;
        self.clear_mark(svc).await?;
        tracing::info!(revision = %revision, "promoted; kept as last good, the old task set removed");
        if let Err(e) = self.prune(&revision).await {
            tracing::warn!(error = %e, "cannot deregister old revisions");
        }
        Ok(Flow::Done(Outcome::Verified {
            from: svc.tags.get(tags::ROLLOUT_FROM).cloned(),
            to: revision,
            warnings: std::mem::take(&mut learned.warnings),
        }))
    }

    /// Blue/green: the green set failed (or could not be judged): deleted, the rollout
    /// cleared; blue never stopped serving.
    async fn remove_green(
        &self,
        svc: &ServiceState,
        green: Green,
        learned: &mut Learned,
    ) -> Result<Flow, RolloutError> {
        let Green {
            task_set,
            failed,
            restored,
            inconclusive,
        } = green;
        if let Some(id) = &task_set {
            self.aws
                .delete_task_set(&self.spec.cluster, &self.spec.service, id)
                .await?;
        }
        self.clear_mark(svc).await?;
        if inconclusive {
            tracing::warn!(revision = %failed, serving = %restored, "the new revision could not be judged; its task set is deleted, not quarantined: the next run tries it again");
            let reasons = learned.take_reasons("an earlier run could not judge the new task set");
            return Ok(Flow::Done(Outcome::Inconclusive {
                revision: failed,
                serving: restored,
                reasons,
            }));
        }
        tracing::error!(failed = %failed, serving = %restored, "the new revision failed; its task set is deleted, the last good one never stopped serving, the image is quarantined");
        let reasons = learned.take_reasons("an earlier run found the new task set unhealthy");
        Ok(Flow::Done(Outcome::RolledBack {
            failed,
            restored,
            reasons,
            logs: std::mem::take(&mut learned.logs),
            via: RollbackVia::GreenDeleted,
        }))
    }

    /// Old task sets out: scale to 0, wait (within the verify deadline) until their tasks
    /// stopped, delete. The primary set is never among them.
    async fn retire(&self, task_sets: &[String]) -> Result<(), EcsError> {
        let (cluster, service) = (self.spec.cluster.as_str(), self.spec.service.as_str());
        if task_sets.is_empty() {
            return Ok(());
        }
        for id in task_sets {
            self.aws.update_task_set(cluster, service, id, 0.0).await?;
        }
        let until = Instant::now() + self.spec.verify.deadline;
        loop {
            let Some(svc) = self.service().await? else {
                return Ok(());
            };
            let busy = svc
                .task_sets
                .iter()
                .filter(|t| task_sets.contains(&t.id))
                .any(|t| t.running_count + t.pending_count > 0);
            if !busy || Instant::now() >= until {
                if busy {
                    tracing::warn!(task_sets = ?task_sets, "old task sets still have tasks at the deadline; deleting them anyway");
                }
                break;
            }
            tokio::time::sleep(
                DRAIN_POLL.min(self.spec.verify.interval.max(Duration::from_millis(20))),
            )
            .await;
        }
        for id in task_sets {
            self.aws.delete_task_set(cluster, service, id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::client_token;

    #[test]
    fn client_tokens_fit_ecs_and_repeat_for_the_same_rollout() {
        let a = client_token("svc", "td:2", "1700000000");
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| (33..=126).contains(&b)));
        assert_eq!(a, client_token("svc", "td:2", "1700000000"));
        assert_ne!(a, client_token("svc", "td:2", "1700000001"));
    }
}
