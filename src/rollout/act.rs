//! Acting on the step `decide` chose: each step is a few ECS calls, with the tags that
//! record it written before and after, so a process killed between any two calls resumes
//! by observing again. A step ends the pass (`Flow::Done`) or asks for the next one.

mod blue_green;
mod rolling;

use super::decide::{Step, Strategy};
use super::verify::{Scope, VerifyError};
use super::{
    Desired, Engine, Flow, Learned, Observed, Outcome, Pass, RolloutError, now_epoch, tags,
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

/// A serving revision to adopt (`Step::Adopt`), and the last good one to return to.
struct Adopt {
    revision: String,
    task_set: Option<String>,
    then_done: bool,
    last_good: Option<String>,
}

impl Learned {
    /// The reasons the steps of this pass found, or `otherwise` when they found none (an
    /// earlier run did).
    fn take_reasons(&mut self, otherwise: &str) -> Vec<String> {
        if self.reasons.is_empty() {
            vec![otherwise.into()]
        } else {
            std::mem::take(&mut self.reasons)
        }
    }
}

impl Engine {
    /// Performs `step`, one small function per kind of step: the steps both strategies
    /// share here, the rolling ones in [`rolling`], the blue/green ones in [`blue_green`].
    pub(super) async fn act(
        &self,
        step: Step,
        observed: &Observed,
        desired: &Desired,
        pass: &mut Pass,
        learned: &mut Learned,
    ) -> Result<Flow, RolloutError> {
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
                let adopt = Adopt {
                    revision,
                    task_set,
                    then_done,
                    last_good,
                };
                self.adopt(svc, adopt, desired, pass).await
            }
            // Both strategies: the serving revision failed with nothing to return to.
            Step::GiveUp { failed } => {
                self.clear_mark(svc).await?;
                let reasons = learned.take_reasons("an earlier run found it unhealthy");
                Err(RolloutError::NoLastGood { failed, reasons })
            }
            step @ (Step::StartRolling
            | Step::VerifyRolling { .. }
            | Step::RollBack { .. }
            | Step::ClearMark) => self.act_rolling(step, svc, last_good, desired).await,
            step => self.act_blue_green(step, svc, desired, learned).await,
        }
    }

    /// Verifies the serving revision and keeps it as last good. When it fails and it is also
    /// the desired one, the last good revision is put back; when it fails on the way to
    /// another revision, the rollout goes on without a revision to return to.
    async fn adopt(
        &self,
        svc: &ServiceState,
        adopt: Adopt,
        desired: &Desired,
        pass: &mut Pass,
    ) -> Result<Flow, RolloutError> {
        let Adopt {
            revision,
            task_set,
            then_done,
            last_good,
        } = adopt;
        let scope = task_set
            .as_deref()
            .map_or(Scope::Deployment, Scope::TaskSet);
        match self.verify(&revision, scope, None, false).await {
            Ok(v) => {
                for w in &v.warnings {
                    tracing::warn!(revision = %revision, "{w}");
                }
                self.aws.tag(&svc.arn, &tags::last_good(&revision)).await?;
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
        let t = tags::rollout_started(to, from, started);
        self.aws.tag(&svc.arn, &t).await
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
}
