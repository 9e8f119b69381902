//! `rollback`: the last good revision put back on request (with blue/green: the green task
//! set in flight removed while blue serves).

use super::act::Evidence;
use super::{Engine, Outcome, RollbackVia, RolloutError, tags};
use crate::ecs::EcsError;

impl Engine {
    /// Puts the last good revision back and verifies it. With blue/green: removes a green
    /// task set in flight (blue still serves).
    pub async fn rollback(&self) -> Result<Outcome, RolloutError> {
        let _flight = self.claim()?;
        let svc = self.service().await?.ok_or(EcsError::Incomplete {
            op: "DescribeServices",
            what: "service",
        })?;
        let good = svc
            .tags
            .get(tags::LAST_GOOD)
            .cloned()
            .ok_or_else(|| RolloutError::NothingToRollBackTo(self.spec.target.clone()))?;
        let marks = svc.marks();
        if svc.external {
            let Some(primary) = svc.primary_task_set() else {
                return Err(RolloutError::NothingToRollBackTo(self.spec.target.clone()));
            };
            let green = marks.to.as_ref().and_then(|to| {
                svc.task_sets
                    .iter()
                    .find(|t| t.task_definition == *to && t.id != primary.id)
            });
            return match green {
                Some(g) if primary.task_definition == good => {
                    let image = self
                        .aws
                        .describe_task_definition(&g.task_definition)
                        .await?
                        .image;
                    self.quarantine(&svc, &g.task_definition, &image).await?;
                    self.aws
                        .delete_task_set(&self.spec.cluster, &self.spec.service, &g.id)
                        .await?;
                    self.clear_mark(&svc).await?;
                    Ok(Outcome::RolledBack {
                        failed: g.task_definition.clone(),
                        restored: good,
                        reasons: vec!["rolled back on request".into()],
                        logs: vec![],
                        via: RollbackVia::GreenDeleted,
                    })
                }
                _ if primary.task_definition == good => Ok(Outcome::Unchanged { revision: good }),
                _ => Err(RolloutError::NothingToRollBackTo(format!(
                    "{} (the primary task set runs {}, the last good revision is {good}: run a rollout to the last good image instead)",
                    self.spec.target, primary.task_definition
                ))),
            };
        }
        if svc.task_definition == good && marks.to.is_none() {
            return Ok(Outcome::Unchanged { revision: good });
        }
        let failed = svc.task_definition.clone();
        let image = self.aws.describe_task_definition(&failed).await?.image;
        self.roll_back(
            &svc,
            &failed,
            &good,
            Evidence::failed(vec!["rolled back on request".into()], vec![]),
            &image,
        )
        .await
    }
}
