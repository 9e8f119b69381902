//! The ECS service in the JSON shape that
//! `aws ecs create-service --cli-input-json` accepts.

use serde::{Deserialize, Serialize};

use super::task_definition::Tag;

/// `CreateService` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateService {
    pub cluster: String,
    pub service_name: String,
    /// The task-definition family (ECS takes the latest ACTIVE revision).
    pub task_definition: String,
    pub desired_count: u32,
    pub launch_type: String,
    pub platform_version: String,
    pub network_configuration: NetworkConfiguration,
    pub deployment_configuration: DeploymentConfiguration,
    /// `EXTERNAL` for blue/green on task sets; absent means ECS's rolling controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_controller: Option<DeploymentController>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<LoadBalancer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_registries: Vec<ServiceRegistry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period_seconds: Option<u32>,
    #[serde(rename = "enableECSManagedTags")]
    pub enable_ecs_managed_tags: bool,
    pub propagate_tags: String,
    pub enable_execute_command: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfiguration {
    pub awsvpc_configuration: AwsVpcConfiguration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsVpcConfiguration {
    pub subnets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// `ENABLED` or `DISABLED`.
    pub assign_public_ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    pub deployment_circuit_breaker: DeploymentCircuitBreaker,
    pub maximum_percent: u32,
    pub minimum_healthy_percent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentCircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRegistry {
    pub registry_arn: String,
}

/// `deploymentController` of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentController {
    /// `ECS` or `EXTERNAL`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl DeploymentController {
    pub fn external() -> Self {
        Self {
            kind: "EXTERNAL".into(),
        }
    }

    pub fn is_external(&self) -> bool {
        self.kind == "EXTERNAL"
    }
}
