//! What the steps share: verify a revision, read failed tasks' logs, register, quarantine,
//! clear a rollout's tags, render the service document, prune old revisions.

use super::verify::{self, Scope};
use super::{Desired, Engine, OnApiError, RolloutError, Verified, tags};
use crate::ecs::{EcsError, ServiceState};
use crate::model::ids::TaskDefinitionArn;
use crate::model::service::CreateService;
use crate::translate::{self, Settings};

impl Engine {
    /// Verifies `revision`. A new revision gets the Dynatrace-side check as configured; the
    /// serving or last good one (`new = false`: adopted, or restored by a roll-back) gets it
    /// too, but an environment that cannot be asked never blocks it (probe-only).
    pub(super) async fn verify(
        &self,
        revision: &str,
        scope: Scope<'_>,
        baseline: Option<&str>,
        new: bool,
    ) -> Result<Verified, verify::VerifyError> {
        let environment = self.spec.environment.as_ref().map(|c| {
            (
                c,
                if new {
                    c.on_api_error
                } else {
                    OnApiError::ProbeOnly
                },
            )
        });
        verify::verify(
            &self.aws,
            &self.prober,
            verify::Subject {
                cluster: &self.spec.cluster,
                service: &self.spec.service,
                revision,
                scope,
                baseline,
                environment,
            },
            &self.spec.verify,
            self.progress.as_ref(),
        )
        .await
    }

    /// Last log lines of the failed tasks, from CloudWatch Logs: the ActiveGate container's
    /// stream, named as translate names that container.
    pub(super) async fn failure_logs(&self, image: &str, task_ids: &[String]) -> Vec<String> {
        let Some(logs) = &self.spec.settings.logs else {
            return Vec::new();
        };
        let container = match translate::translate(&self.spec.manifest, &self.settings_for(image)) {
            Ok(t) => t.container,
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for id in task_ids.iter().take(3) {
            let stream = format!("{}/{container}/{id}", logs.stream_prefix);
            match self
                .aws
                .last_log_lines(logs.group.as_str(), &stream, 10)
                .await
            {
                Ok(lines) => out.extend(lines.into_iter().map(|l| format!("{id}: {l}"))),
                Err(e) => out.push(format!("{id}: cannot read {stream}: {e}")),
            }
        }
        out
    }

    /// Removes the tags of a rollout in flight (and its verdict).
    pub(super) async fn clear_mark(&self, svc: &ServiceState) -> Result<(), EcsError> {
        let keys: Vec<String> = tags::ROLLOUT_KEYS
            .iter()
            .filter(|k| svc.tags.contains_key(**k))
            .map(|k| (*k).to_owned())
            .collect();
        self.aws.untag(&svc.arn, &keys).await
    }

    /// Registers the desired revision, after making sure its log group exists
    /// (a task whose log group is missing fails to start on Fargate).
    pub(super) async fn register(&self, desired: &Desired) -> Result<String, EcsError> {
        if let Some(logs) = &self.spec.settings.logs {
            self.aws
                .ensure_log_group(logs.group.as_str(), self.spec.log_retention_days)
                .await?;
        }
        self.aws
            .register_task_definition(&desired.td, &tags::revision(&desired.hash, &desired.image))
            .await
    }

    /// Marks a revision as failed: its task definition, and its image on the service, so
    /// that discovery passes over it and no later run rolls it out again.
    pub(super) async fn quarantine(
        &self,
        svc: &ServiceState,
        failed: &str,
        image: &str,
    ) -> Result<(), EcsError> {
        let failed_image = self
            .aws
            .describe_task_definition(failed)
            .await
            .map(|t| t.image)
            .unwrap_or_else(|_| image.to_owned());
        self.aws.tag(failed, &tags::quarantined_revision()).await?;
        self.aws
            .tag(&svc.arn, &tags::quarantine(&failed_image))
            .await
    }

    /// The service document for this target with `image` (network, registries, tags).
    pub(super) fn service_document(&self, image: &str) -> Result<CreateService, RolloutError> {
        let translation = translate::translate(&self.spec.manifest, &self.settings_for(image))
            .map_err(RolloutError::render)?;
        let mut doc = translate::service_document(&translation, &self.spec.settings)
            .map_err(RolloutError::render)?;
        doc.deployment_configuration = self.spec.deployment.clone();
        Ok(doc)
    }

    pub(super) fn settings_for(&self, image: &str) -> Settings {
        let mut s = self.spec.settings.clone();
        s.image = Some(image.to_owned());
        s
    }

    /// Deregisters revisions of the family beyond `keep_revisions`, never the
    /// running one nor the last good one; `keep_revisions = 0` turns pruning off.
    pub(super) async fn prune(&self, keep_also: &str) -> Result<(), EcsError> {
        if self.spec.keep_revisions == 0 {
            return Ok(());
        }
        let family = TaskDefinitionArn::parse(keep_also)
            .map(|a| a.family().to_owned())
            .unwrap_or_default();
        let arns = self.aws.task_definitions(&family).await?;
        let keep = self.spec.keep_revisions as usize;
        if arns.len() <= keep {
            return Ok(());
        }
        for arn in &arns[..arns.len() - keep] {
            if arn != keep_also {
                self.aws.deregister(arn).await?;
            }
        }
        Ok(())
    }
}
