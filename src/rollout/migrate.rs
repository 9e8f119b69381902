//! `rollout --migrate`: a rolling service moved to blue/green, a new EXTERNAL service beside
//! it, without a moment without a healthy ActiveGate.

use super::{Engine, Outcome, RolloutError, Strategy, tags};

impl Engine {
    pub(super) fn migration_text(&self, from: &str) -> String {
        format!(
            "`rollout --migrate` creates the blue/green service {to} beside {from} (EXTERNAL controller, the same network, registries and running image), verifies its tasks while {from} keeps serving, then scales {from} to 0 and tags it; point `service` at {to} afterwards and delete {from} when you no longer need it (the controller is not changed in place: ECS's UpdateService reference documents no rules for ECS → EXTERNAL)",
            to = self.spec.migrate_to
        )
    }

    /// Moves a rolling service to blue/green without a moment without a healthy ActiveGate:
    /// a new EXTERNAL service beside it (`migrate_to`) with the image the old one runs,
    /// created and verified by the same reconcile as any new service, then the old one
    /// tagged `migrated-to` and scaled to 0. Repeated after an interruption, it carries on.
    pub async fn migrate(&self) -> Result<Outcome, RolloutError> {
        let _flight = self.claim()?;
        let migration = |why: String| RolloutError::Migration {
            target: self.spec.target.clone(),
            why,
        };
        let Some(old) = self.service().await? else {
            return Err(migration(format!(
                "service {} does not exist",
                self.spec.service
            )));
        };
        if old.external {
            return Err(migration(format!(
                "service {} already uses the EXTERNAL controller (blue/green)",
                old.name
            )));
        }
        if old.tags.contains_key(tags::ROLLOUT_TO) {
            return Err(migration(format!(
                "a rollout of {} is in flight; run `rollout` to finish it first",
                old.name
            )));
        }
        let running = self
            .aws
            .describe_task_definition(&old.task_definition)
            .await?;
        let mut spec = self.spec.clone();
        spec.service = self.spec.migrate_to.clone();
        spec.settings.service = Some(self.spec.migrate_to.parse().map_err(|e| {
            migration(format!(
                "`{}` is no ECS service name: {e}",
                self.spec.migrate_to
            ))
        })?);
        spec.strategy = Strategy::BlueGreen;
        spec.versions = None;
        let beside = Engine::new(self.aws.clone(), self.prober.clone(), spec)
            .with_progress(self.progress.clone());
        tracing::info!(from = %old.name, to = %self.spec.migrate_to, image = %running.image, "migrating to blue/green: a new service beside the old one");
        let revision = match beside.reconcile(Some(&running.image)).await? {
            Outcome::Verified { to, .. } => to,
            Outcome::Unchanged { revision } | Outcome::Adopted { revision } => revision,
            other => {
                return Err(migration(format!(
                    "the blue/green service {} did not verify ({}); {} is untouched",
                    self.spec.migrate_to,
                    other.label(),
                    old.name
                )));
            }
        };
        self.aws
            .tag(&old.arn, &tags::migrated_to(&self.spec.migrate_to))
            .await?;
        self.aws
            .set_desired_count(&self.spec.cluster, &old.name, 0)
            .await?;
        tracing::warn!(from = %old.name, to = %self.spec.migrate_to, "migrated: the old service is scaled to 0; point the target's `service` at the new one and delete the old one");
        Ok(Outcome::Migrated {
            from_service: old.name,
            to_service: self.spec.migrate_to.clone(),
            revision,
        })
    }
}
