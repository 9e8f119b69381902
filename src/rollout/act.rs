//! Acting on the step `decide` chose: each step is a few ECS calls, with the tags that
//! record it written before and after, so a process killed between any two calls resumes
//! by observing again. A step ends the pass (`Flow::Done`) or asks for the next one.

use std::time::Duration;

use tokio::time::Instant;

use super::decide::{Role, Step, Strategy, Verdict};
use super::verify::{Scope, VerifyError};
use super::{
    Desired, Engine, Flow, Learned, Observed, Outcome, Pass, RollbackVia, RolloutError, now_epoch,
    tags,
};
use crate::ecs::{EcsError, ServiceState};
use crate::model::service::DeploymentController;

/// What a failed (or unproven) verification leaves to a roll-back.
#[derive(Debug, Default)]
pub(super) struct Evidence {
    pub reasons: Vec<String>,
    pub tasks: Vec<String>,
    /// Nothing proved the revision bad: no quarantine, outcome `inconclusive`.
    pub inconclusive: bool,
}

impl Evidence {
    pub fn failed(reasons: Vec<String>, tasks: Vec<String>) -> Evidence {
        Evidence {
            reasons,
            tasks,
            inconclusive: false,
        }
    }
}

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

impl Engine {
    pub(super) async fn act(
        &self,
        step: Step,
        observed: &Observed,
        desired: &Desired,
        pass: &mut Pass,
        learned: &mut Learned,
    ) -> Result<Flow, RolloutError> {
        let cluster = self.spec.cluster.as_str();
        let service = self.spec.service.as_str();
        let svc = match (&step, &observed.service) {
            (Step::CreateService { strategy }, _) => {
                self.create_service(desired, *strategy).await?;
                return Ok(Flow::Again);
            }
            (_, Some(svc)) => svc,
            (_, None) => {
                return Err(EcsError::Incomplete {
                    op: "DescribeServices",
                    what: "service",
                }
                .into());
            }
        };
        let last_good = svc.tags.get(tags::LAST_GOOD).cloned();
        match step {
            Step::CreateService { .. } => unreachable!("handled above"),
            Step::Nothing { revision } => {
                tracing::info!(revision = %revision, "nothing to do");
                Ok(Flow::Done(Outcome::Unchanged { revision }))
            }
            Step::Quarantined { image } => {
                tracing::warn!(image = %image, "the desired image is quarantined after an earlier failure; not rolling it out");
                Ok(Flow::Done(Outcome::Quarantined { image }))
            }
            Step::Adopt {
                revision,
                task_set,
                then_done,
            } => {
                let scope = task_set
                    .as_deref()
                    .map_or(Scope::Deployment, Scope::TaskSet);
                match self.verify(&revision, scope, None, false).await {
                    Ok(v) => {
                        for w in &v.warnings {
                            tracing::warn!(revision = %revision, "{w}");
                        }
                        self.aws
                            .tag(&svc.arn, &[(tags::LAST_GOOD.into(), revision.clone())])
                            .await?;
                        tracing::info!(revision = %revision, "adopted the running revision as last good");
                        Ok(if then_done {
                            Flow::Done(Outcome::Adopted { revision })
                        } else {
                            Flow::Again
                        })
                    }
                    Err(VerifyError::Aws(e)) => Err(e.into()),
                    // The daemon cannot judge the serving revision now: change nothing.
                    Err(VerifyError::Inconclusive(f)) => Ok(Flow::Done(Outcome::Inconclusive {
                        serving: revision.clone(),
                        revision,
                        reasons: f.reasons,
                    })),
                    Err(VerifyError::Failed(f)) if then_done => match last_good {
                        Some(good) if task_set.is_none() && good != revision => {
                            let r = self
                                .roll_back(
                                    svc,
                                    &revision,
                                    &good,
                                    Evidence::failed(f.reasons, f.tasks),
                                    &desired.image,
                                )
                                .await?;
                            Ok(Flow::Done(r))
                        }
                        _ => Err(RolloutError::NoLastGood {
                            failed: revision,
                            reasons: f.reasons,
                        }),
                    },
                    Err(VerifyError::Failed(f)) => {
                        tracing::warn!(reasons = ?f.reasons, "the running revision is not healthy; rolling out without a revision to return to");
                        pass.adopt_failed = true;
                        Ok(Flow::Again)
                    }
                }
            }
            Step::StartRolling => {
                let to = self.register(desired).await?;
                let from = svc.task_definition.clone();
                tracing::info!(from = %from, to = %to, image = %desired.image, "rolling out");
                self.mark(svc, Some(&from), &to, &now_epoch().to_string())
                    .await?;
                self.aws
                    .update_service(cluster, service, &to, &self.spec.deployment)
                    .await?;
                Ok(Flow::Again)
            }
            Step::VerifyRolling { to, from } => {
                let outcome = self
                    .verify_and_settle(svc, from, &to, last_good.as_deref(), &desired.image)
                    .await?;
                Ok(Flow::Done(outcome))
            }
            Step::RollBack {
                failed,
                good,
                reason,
            } => {
                let outcome = self
                    .roll_back(
                        svc,
                        &failed,
                        &good,
                        Evidence::failed(reason.into_iter().collect(), vec![]),
                        &desired.image,
                    )
                    .await?;
                Ok(Flow::Done(outcome))
            }
            Step::ClearMark => {
                self.clear_mark(svc).await?;
                Ok(Flow::Again)
            }
            Step::GiveUp { failed } => {
                self.clear_mark(svc).await?;
                let reasons = if learned.reasons.is_empty() {
                    vec!["an earlier run found it unhealthy".into()]
                } else {
                    std::mem::take(&mut learned.reasons)
                };
                Err(RolloutError::NoLastGood { failed, reasons })
            }
            Step::CreateTaskSet { revision, primary } => {
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
                        .update_service_primary_task_set(cluster, service, &set.id)
                        .await?;
                }
                Ok(Flow::Again)
            }
            Step::MakePrimary { task_set } | Step::Promote { task_set } => {
                self.report_connected(learned);
                tracing::info!(task_set = %task_set, "making the task set primary");
                self.aws
                    .update_service_primary_task_set(cluster, service, &task_set)
                    .await?;
                Ok(Flow::Again)
            }
            Step::VerifyTaskSet {
                task_set,
                revision,
                role,
                baseline,
            } => {
                let verdict = match self
                    .verify(
                        &revision,
                        Scope::TaskSet(&task_set),
                        baseline.as_deref(),
                        true,
                    )
                    .await
                {
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
                            self.quarantine(svc, &revision, &desired.image).await?;
                        }
                        Verdict::Failed(task_set)
                    }
                };
                self.aws
                    .tag(&svc.arn, &[(tags::VERDICT.into(), verdict.tag_value())])
                    .await?;
                Ok(Flow::Again)
            }
            Step::FinishPromotion { revision, others } => {
                self.report_connected(learned);
                self.aws
                    .tag(&svc.arn, &[(tags::LAST_GOOD.into(), revision.clone())])
                    .await?;
                self.retire(&others).await?;
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
            Step::RemoveGreen {
                task_set,
                failed,
                restored,
                inconclusive,
            } => {
                if let Some(id) = &task_set {
                    self.aws.delete_task_set(cluster, service, id).await?;
                }
                self.clear_mark(svc).await?;
                if inconclusive {
                    tracing::warn!(revision = %failed, serving = %restored, "the new revision could not be judged; its task set is deleted, not quarantined: the next run tries it again");
                    let reasons = if learned.reasons.is_empty() {
                        vec!["an earlier run could not judge the new task set".into()]
                    } else {
                        std::mem::take(&mut learned.reasons)
                    };
                    return Ok(Flow::Done(Outcome::Inconclusive {
                        revision: failed,
                        serving: restored,
                        reasons,
                    }));
                }
                tracing::error!(failed = %failed, serving = %restored, "the new revision failed; its task set is deleted, the last good one never stopped serving, the image is quarantined");
                let reasons = if learned.reasons.is_empty() {
                    vec!["an earlier run found the new task set unhealthy".into()]
                } else {
                    std::mem::take(&mut learned.reasons)
                };
                Ok(Flow::Done(Outcome::RolledBack {
                    failed,
                    restored,
                    reasons,
                    logs: std::mem::take(&mut learned.logs),
                    via: RollbackVia::GreenDeleted,
                }))
            }
            Step::RemoveTaskSets { task_sets } => {
                tracing::warn!(task_sets = ?task_sets, "removing task sets no rollout accounts for");
                self.retire(&task_sets).await?;
                Ok(Flow::Again)
            }
            Step::ScalePrimary { task_set } => {
                tracing::warn!(task_set = %task_set, "the primary task set was scaled down outside a rollout; scaling it back to 100 %");
                self.aws
                    .update_task_set(cluster, service, &task_set, 100.0)
                    .await?;
                Ok(Flow::Again)
            }
        }
    }

    /// Before the old ActiveGates go: logs (and hands to the engine's listener) how many
    /// OneAgents the verified ones report. Information, not a gate: OneAgents move over
    /// gradually, and blue keeps its own until it stops.
    fn report_connected(&self, learned: &mut Learned) {
        let Some(c) = learned.connected.take() else {
            return;
        };
        tracing::info!(
            revision = %c.revision,
            activegates = c.activegates,
            connected_hosts = c.hosts,
            old_connected_hosts = ?c.old_hosts,
            "the new ActiveGates report {} connected OneAgents{}",
            c.hosts,
            c.old_hosts
                .map(|o| format!(" (the ones being replaced: {o})"))
                .unwrap_or_default()
        );
        (self.connected)(&c);
    }

    /// Tags a rollout in flight before its first write.
    async fn mark(
        &self,
        svc: &ServiceState,
        from: Option<&str>,
        to: &str,
        started: &str,
    ) -> Result<(), EcsError> {
        let mut t = vec![
            (tags::ROLLOUT_TO.into(), to.to_owned()),
            (tags::ROLLOUT_STARTED.into(), started.to_owned()),
        ];
        if let Some(f) = from {
            t.push((tags::ROLLOUT_FROM.into(), f.to_owned()));
        }
        self.aws.tag(&svc.arn, &t).await
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

    /// A service that does not exist yet: rolling creates it with the desired revision and
    /// tags the rollout; blue/green creates an EXTERNAL service, whose first task set the
    /// next step creates.
    async fn create_service(
        &self,
        desired: &Desired,
        strategy: Strategy,
    ) -> Result<(), RolloutError> {
        let mut doc = self.service_document(&desired.image)?;
        match strategy {
            Strategy::BlueGreen => {
                doc.deployment_controller = Some(DeploymentController::external());
                tracing::info!(service = %self.spec.service, "creating the service (EXTERNAL controller, blue/green task sets)");
                self.aws.create_service(&doc).await?;
            }
            Strategy::Rolling => {
                let to = self.register(desired).await?;
                doc.task_definition = to.clone();
                tracing::info!(service = %self.spec.service, revision = %to, "creating the service");
                self.aws.create_service(&doc).await?;
                let svc = self.service().await?.ok_or(EcsError::Incomplete {
                    op: "DescribeServices",
                    what: "service after CreateService",
                })?;
                self.mark(&svc, None, &to, &now_epoch().to_string()).await?;
            }
        }
        Ok(())
    }

    /// Verifies `to`; promotes it, or rolls back to `last_good`.
    async fn verify_and_settle(
        &self,
        svc: &ServiceState,
        from: Option<String>,
        to: &str,
        last_good: Option<&str>,
        image: &str,
    ) -> Result<Outcome, RolloutError> {
        match self
            .verify(to, Scope::Deployment, from.as_deref(), true)
            .await
        {
            Ok(v) => {
                for w in &v.warnings {
                    tracing::warn!(revision = %to, "{w}");
                }
                self.report_connected(&mut Learned {
                    connected: v.connected,
                    ..Learned::default()
                });
                self.aws
                    .tag(&svc.arn, &[(tags::LAST_GOOD.into(), to.to_owned())])
                    .await?;
                self.clear_mark(svc).await?;
                tracing::info!(revision = %to, "verified; kept as last good");
                if let Err(e) = self.prune(to).await {
                    tracing::warn!(error = %e, "cannot deregister old revisions");
                }
                Ok(Outcome::Verified {
                    from,
                    to: to.to_owned(),
                    warnings: v.warnings,
                })
            }
            Err(VerifyError::Aws(e)) => Err(e.into()),
            Err(VerifyError::Inconclusive(f)) => match last_good {
                Some(good) if good != to => {
                    let evidence = Evidence {
                        reasons: f.reasons,
                        tasks: f.tasks,
                        inconclusive: true,
                    };
                    self.roll_back(svc, to, good, evidence, image).await
                }
                _ => {
                    self.clear_mark(svc).await?;
                    Err(RolloutError::NoLastGood {
                        failed: to.to_owned(),
                        reasons: f.reasons,
                    })
                }
            },
            Err(VerifyError::Failed(f)) => match last_good {
                Some(good) if good != to => {
                    self.roll_back(svc, to, good, Evidence::failed(f.reasons, f.tasks), image)
                        .await
                }
                _ => {
                    self.clear_mark(svc).await?;
                    Err(RolloutError::NoLastGood {
                        failed: to.to_owned(),
                        reasons: f.reasons,
                    })
                }
            },
        }
    }

    /// Rolling: puts `good` back, verifies it, quarantines what failed. While ECS still runs
    /// the previous deployment's tasks of `good`, StopServiceDeployment (ROLLBACK) returns the
    /// service onto them; a fresh deployment of `good` only when they are gone.
    pub(super) async fn roll_back(
        &self,
        svc: &ServiceState,
        failed: &str,
        good: &str,
        evidence: Evidence,
        image: &str,
    ) -> Result<Outcome, RolloutError> {
        let (cluster, service) = (self.spec.cluster.as_str(), self.spec.service.as_str());
        let Evidence {
            reasons,
            tasks: failed_tasks,
            inconclusive,
        } = evidence;
        tracing::warn!(failed = %failed, restoring = %good, reasons = ?reasons, inconclusive, "rolling back");
        let logs = self.failure_logs(image, &failed_tasks).await;
        let now = self.service().await?.unwrap_or_else(|| svc.clone());
        let old_tasks_serve = now
            .deployments
            .iter()
            .any(|d| d.status != "PRIMARY" && d.task_definition == good && d.running_count > 0);
        let via = if now.task_definition == good {
            RollbackVia::AlreadyRestored
        } else if old_tasks_serve {
            match self
                .aws
                .service_deployments(cluster, service, &["IN_PROGRESS", "PENDING"])
                .await
            {
                Ok(found) if !found.is_empty() => {
                    self.aws.roll_back_service_deployment(&found[0].arn).await?;
                    RollbackVia::StopServiceDeployment
                }
                Ok(_) => {
                    self.aws
                        .update_service(cluster, service, good, &self.spec.deployment)
                        .await?;
                    RollbackVia::UpdateService
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the service deployments; rolling back with a new deployment");
                    self.aws
                        .update_service(cluster, service, good, &self.spec.deployment)
                        .await?;
                    RollbackVia::UpdateService
                }
            }
        } else {
            self.aws
                .update_service(cluster, service, good, &self.spec.deployment)
                .await?;
            RollbackVia::UpdateService
        };
        // Quarantine before verifying, so that a crash now does not retry the bad image; an
        // unproven revision is not quarantined, so the next run tries it again.
        if !inconclusive {
            self.quarantine(svc, failed, image).await?;
        }
        match self.verify(good, Scope::Deployment, None, false).await {
            Ok(_) if inconclusive => {
                self.clear_mark(svc).await?;
                tracing::warn!(revision = %failed, restored = %good, "rolled back an unproven revision; not quarantined");
                Ok(Outcome::Inconclusive {
                    revision: failed.to_owned(),
                    serving: good.to_owned(),
                    reasons,
                })
            }
            Ok(_) => {
                self.clear_mark(svc).await?;
                tracing::error!(failed = %failed, restored = %good, via = via.as_str(), "rolled back; the failed image is quarantined");
                Ok(Outcome::RolledBack {
                    failed: failed.to_owned(),
                    restored: good.to_owned(),
                    reasons,
                    logs,
                    via,
                })
            }
            Err(VerifyError::Aws(e)) => Err(e.into()),
            Err(VerifyError::Failed(f) | VerifyError::Inconclusive(f)) => {
                tracing::error!(restored = %good, reasons = ?f.reasons, "the last good revision did not verify");
                Err(RolloutError::RollbackFailed {
                    restored: good.to_owned(),
                    reasons: f.reasons,
                })
            }
        }
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
