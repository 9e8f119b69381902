//! Services: describe, create, update, and the service deployments of a rolling one.

use std::collections::BTreeMap;

use aws_sdk_ecs::types as sdk;

use super::error::classify;
use super::tags::tags_map;
use super::task_sets::{TaskSetState, task_set_state};
use super::{Aws, EcsError, convert, n};
use crate::model::marks::Marks;
use crate::model::service::CreateService;

/// A service as the rollout engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceState {
    pub arn: String,
    pub name: String,
    pub status: String,
    pub task_definition: String,
    pub desired_count: u32,
    pub running_count: u32,
    pub deployments: Vec<DeploymentState>,
    /// `EXTERNAL`: task sets, no ECS deployments (blue/green); else ECS's rolling controller.
    pub external: bool,
    /// The task sets of an EXTERNAL service (none for a rolling one).
    pub task_sets: Vec<TaskSetState>,
    pub tags: BTreeMap<String, String>,
}

impl ServiceState {
    /// The daemon's own state in the service's tags, typed.
    pub fn marks(&self) -> Marks {
        Marks::parse(&self.tags)
    }

    /// The PRIMARY task set of an EXTERNAL service.
    pub fn primary_task_set(&self) -> Option<&TaskSetState> {
        self.task_sets.iter().find(|t| t.status == "PRIMARY")
    }
}

/// A service deployment of a rolling service (ListServiceDeployments).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDeploymentState {
    pub arn: String,
    /// PENDING, IN_PROGRESS, SUCCESSFUL, STOPPED, ROLLBACK_* …
    pub status: String,
    pub target_revision: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentState {
    pub id: String,
    /// PRIMARY or ACTIVE.
    pub status: String,
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED or FAILED.
    pub rollout_state: String,
    pub rollout_state_reason: String,
    pub failed_tasks: u32,
    pub desired_count: u32,
    pub running_count: u32,
}

/// ECS's description of a service, as the rollout engine and the observer see it.
pub(super) fn service_state(s: &sdk::Service) -> ServiceState {
    ServiceState {
        arn: s.service_arn().unwrap_or_default().to_owned(),
        name: s.service_name().unwrap_or_default().to_owned(),
        status: s.status().unwrap_or_default().to_owned(),
        task_definition: s.task_definition().unwrap_or_default().to_owned(),
        desired_count: n(s.desired_count()),
        running_count: n(s.running_count()),
        deployments: s
            .deployments()
            .iter()
            .map(|d| DeploymentState {
                id: d.id().unwrap_or_default().to_owned(),
                status: d.status().unwrap_or_default().to_owned(),
                task_definition: d.task_definition().unwrap_or_default().to_owned(),
                rollout_state: d
                    .rollout_state()
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_default(),
                rollout_state_reason: d.rollout_state_reason().unwrap_or_default().to_owned(),
                failed_tasks: n(d.failed_tasks()),
                desired_count: n(d.desired_count()),
                running_count: n(d.running_count()),
            })
            .collect(),
        external: s
            .deployment_controller()
            .is_some_and(|c| c.r#type() == &sdk::DeploymentControllerType::External),
        task_sets: s.task_sets().iter().map(task_set_state).collect(),
        tags: tags_map(s.tags()),
    }
}

impl Aws {
    /// The service with its tags; `None` when it does not exist (or is INACTIVE).
    pub async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<ServiceState>, EcsError> {
        const OP: &str = "DescribeServices";
        let out = self
            .call(OP, || async {
                self.ecs
                    .describe_services()
                    .cluster(cluster)
                    .services(service)
                    .include(sdk::ServiceField::Tags)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        let Some(s) = out
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
        else {
            return Ok(None);
        };
        Ok(Some(service_state(s)))
    }

    /// The service deployments of a rolling service with one of `statuses`, newest first.
    pub async fn service_deployments(
        &self,
        cluster: &str,
        service: &str,
        statuses: &[&str],
    ) -> Result<Vec<ServiceDeploymentState>, EcsError> {
        const OP: &str = "ListServiceDeployments";
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        // Bounded: a service keeps few deployments in progress; 10 pages is far beyond that.
        for _ in 0..10 {
            let out = self
                .call(OP, || async {
                    self.ecs
                        .list_service_deployments()
                        .cluster(cluster)
                        .service(service)
                        .set_status(Some(
                            statuses
                                .iter()
                                .map(|s| sdk::ServiceDeploymentStatus::from(*s))
                                .collect(),
                        ))
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify(OP, e))
                })
                .await?;
            found.extend(out.service_deployments().iter().map(|d| {
                ServiceDeploymentState {
                    arn: d.service_deployment_arn().unwrap_or_default().to_owned(),
                    status: d
                        .status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    target_revision: d
                        .target_service_revision_arn()
                        .unwrap_or_default()
                        .to_owned(),
                }
            }));
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(found)
    }

    /// Stops a service deployment in progress and returns the service to its previous
    /// revision, onto the tasks that still run it (`stopType = ROLLBACK`).
    pub async fn roll_back_service_deployment(&self, arn: &str) -> Result<(), EcsError> {
        const OP: &str = "StopServiceDeployment";
        self.call(OP, || async {
            self.ecs
                .stop_service_deployment()
                .service_deployment_arn(arn)
                .stop_type(sdk::StopServiceDeploymentStopType::Rollback)
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    pub async fn create_service(&self, doc: &CreateService) -> Result<(), EcsError> {
        const OP: &str = "CreateService";
        self.call(OP, || async {
            convert::create_service(self.ecs.create_service(), doc)
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    /// Points the service at a revision with the given deployment settings.
    pub async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        deployment: &crate::model::service::DeploymentConfiguration,
    ) -> Result<(), EcsError> {
        const OP: &str = "UpdateService";
        let dc = sdk::DeploymentConfiguration::builder()
            .minimum_healthy_percent(deployment.minimum_healthy_percent as i32)
            .maximum_percent(deployment.maximum_percent as i32)
            .deployment_circuit_breaker(
                sdk::DeploymentCircuitBreaker::builder()
                    .enable(deployment.deployment_circuit_breaker.enable)
                    .rollback(deployment.deployment_circuit_breaker.rollback)
                    .build(),
            )
            .build();
        self.call(OP, || async {
            self.ecs
                .update_service()
                .cluster(cluster)
                .service(service)
                .task_definition(task_definition)
                .deployment_configuration(dc.clone())
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    /// Sets a service's desired count, nothing else (no new deployment of a rolling service).
    pub async fn set_desired_count(
        &self,
        cluster: &str,
        service: &str,
        count: u32,
    ) -> Result<(), EcsError> {
        const OP: &str = "UpdateService";
        self.call(OP, || async {
            self.ecs
                .update_service()
                .cluster(cluster)
                .service(service)
                .desired_count(i32::try_from(count).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }
}
