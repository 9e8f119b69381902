//! The rolling steps (ECS controller): start the rolling update, verify it and keep it, or
//! put the last good revision back.

use super::Evidence;
use crate::ecs::ServiceState;
use crate::rollout::decide::Step;
use crate::rollout::verify::{Scope, VerifyError};
use crate::rollout::{
    Desired, Engine, Flow, Learned, Outcome, RollbackVia, RolloutError, now_epoch, tags,
};

impl Engine {
    /// A rolling step (ECS controller).
    pub(super) async fn act_rolling(
        &self,
        step: Step,
        svc: &ServiceState,
        last_good: Option<String>,
        desired: &Desired,
    ) -> Result<Flow, RolloutError> {
        match step {
            Step::StartRolling => self.start_rolling(svc, desired).await,
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
            other => unreachable!("not a rolling step: {other}"),
        }
    }

    /// Rolling: registers the desired revision, tags the rollout, UpdateService.
    async fn start_rolling(
        &self,
        svc: &ServiceState,
        desired: &Desired,
    ) -> Result<Flow, RolloutError> {
        let to = self.register(desired).await?;
        let from = svc.task_definition.clone();
        tracing::info!(from = %from, to = %to, image = %desired.image, "rolling out");
        self.mark(svc, Some(&from), &to, &now_epoch().to_string())
            .await?;
        self.aws
            .update_service(
                &self.spec.cluster,
                &self.spec.service,
                &to,
                &self.spec.deployment,
            )
            .await?;
        Ok(Flow::Again)
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
                self.aws.tag(&svc.arn, &tags::last_good(to)).await?;
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
    pub(in crate::rollout) async fn roll_back(
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
