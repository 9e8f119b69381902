//! Task sets of an EXTERNAL (blue/green) service.

use aws_sdk_ecs::types as sdk;

use super::error::classify;
use super::{Aws, EcsError, convert, n};
use crate::model::service::CreateService;

/// A task set of an EXTERNAL service.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSetState {
    /// `ecs-svc/…`; tasks of the set carry it as `startedBy`.
    pub id: String,
    pub arn: String,
    /// PRIMARY, ACTIVE or DRAINING.
    pub status: String,
    pub task_definition: String,
    /// Percent of the service's desired count.
    pub scale: f64,
    pub computed_desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    /// STEADY_STATE or STABILIZING.
    pub stability_status: String,
    pub external_id: String,
}

pub(super) fn task_set_state(t: &sdk::TaskSet) -> TaskSetState {
    TaskSetState {
        id: t.id().unwrap_or_default().to_owned(),
        arn: t.task_set_arn().unwrap_or_default().to_owned(),
        status: t.status().unwrap_or_default().to_owned(),
        task_definition: t.task_definition().unwrap_or_default().to_owned(),
        scale: t.scale().map_or(0.0, |s| s.value()),
        computed_desired_count: n(t.computed_desired_count()),
        running_count: n(t.running_count()),
        pending_count: n(t.pending_count()),
        stability_status: t
            .stability_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        external_id: t.external_id().unwrap_or_default().to_owned(),
    }
}

impl Aws {
    /// Creates a task set of `task_definition` for an EXTERNAL service at `scale_percent`,
    /// with the service document's network and registries. `client_token` makes a retried
    /// call (an answer lost on the way) return the same task set instead of a second one.
    pub async fn create_task_set(
        &self,
        doc: &CreateService,
        task_definition: &str,
        scale_percent: f64,
        external_id: &str,
        client_token: &str,
    ) -> Result<TaskSetState, EcsError> {
        const OP: &str = "CreateTaskSet";
        let out = self
            .call(OP, || async {
                convert::create_task_set(
                    self.ecs.create_task_set(),
                    doc,
                    task_definition,
                    scale_percent,
                    external_id,
                    client_token,
                )
                .send()
                .await
                .map_err(|e| classify(OP, e))
            })
            .await?;
        out.task_set()
            .map(task_set_state)
            .ok_or(EcsError::Incomplete {
                op: OP,
                what: "taskSet",
            })
    }

    /// Sets a task set's scale in percent of the service's desired count.
    pub async fn update_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
        scale_percent: f64,
    ) -> Result<(), EcsError> {
        const OP: &str = "UpdateTaskSet";
        self.call(OP, || async {
            self.ecs
                .update_task_set()
                .cluster(cluster)
                .service(service)
                .task_set(task_set)
                .scale(
                    sdk::Scale::builder()
                        .unit(sdk::ScaleUnit::Percent)
                        .value(scale_percent)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    pub async fn update_service_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> Result<(), EcsError> {
        const OP: &str = "UpdateServicePrimaryTaskSet";
        self.call(OP, || async {
            self.ecs
                .update_service_primary_task_set()
                .cluster(cluster)
                .service(service)
                .primary_task_set(task_set)
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    /// Deletes a task set (its tasks stop); a set already gone is no error.
    pub async fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> Result<(), EcsError> {
        const OP: &str = "DeleteTaskSet";
        let r = self
            .call(OP, || async {
                self.ecs
                    .delete_task_set()
                    .cluster(cluster)
                    .service(service)
                    .task_set(task_set)
                    .force(true)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await;
        match r {
            Err(e) if e.code() == Some("TaskSetNotFoundException") => Ok(()),
            r => r.map(|_| ()),
        }
    }
}
