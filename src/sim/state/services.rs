//! Services as the simulator keeps them: their deployments (rolling) or task sets
//! (EXTERNAL), their settings, and the service deployments and revisions ECS reports.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: String,
    /// PRIMARY for the newest, ACTIVE for older ones still draining.
    pub primary: bool,
    pub task_definition: String,
    /// The ARN of the service revision this deployment runs.
    pub revision: String,
    pub desired_count: u32,
    pub failed_tasks: u32,
    pub rollout_state: RolloutState,
    pub rollout_state_reason: String,
    pub created_at: f64,
    pub updated_at: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploymentSettings {
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
    pub breaker_enable: bool,
    pub breaker_rollback: bool,
}

/// Who deploys a service: ECS's rolling update, or an external controller
/// through task sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Ecs,
    External,
}

impl Controller {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ecs => "ECS",
            Self::External => "EXTERNAL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSetStatus {
    Primary,
    Active,
    /// Deleted: its tasks are stopping; it disappears once they are STOPPED.
    Draining,
}

impl TaskSetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "PRIMARY",
            Self::Active => "ACTIVE",
            Self::Draining => "DRAINING",
        }
    }
}

/// A task set of an EXTERNAL service: its own task definition, network and
/// scale (a percentage of the service's desired count).
#[derive(Debug, Clone)]
pub struct TaskSet {
    /// `ecs-svc/<19 digits>`; its tasks carry it as `startedBy`.
    pub id: String,
    pub arn: String,
    pub status: TaskSetStatus,
    pub task_definition: String,
    pub network: Option<Value>,
    pub launch_type: String,
    pub platform_version: String,
    pub load_balancers: Value,
    pub service_registries: Value,
    /// Percent of the service's desired count, 0–100.
    pub scale: f64,
    pub external_id: Option<String>,
    pub client_token: Option<String>,
    pub tags: Vec<(String, String)>,
    pub created_at: f64,
    pub updated_at: f64,
    pub steady: bool,
    pub stability_at: f64,
}

impl TaskSet {
    /// `ceil(desired × scale / 100)`, as ECS computes it.
    pub fn computed_desired(&self, service_desired: u32) -> u32 {
        let exact = f64::from(service_desired) * self.scale / 100.0;
        // A hair under the exact value, so that float noise (7.000000001) does not round up.
        (exact - 1e-9).ceil().max(0.0) as u32
    }
}

/// The status of a service deployment (ECS's ServiceDeploymentStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    Pending,
    InProgress,
    Successful,
    Stopped,
    StopRequested,
    RollbackRequested,
    RollbackInProgress,
    RollbackSuccessful,
    RollbackFailed,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::InProgress => "IN_PROGRESS",
            Self::Successful => "SUCCESSFUL",
            Self::Stopped => "STOPPED",
            Self::StopRequested => "STOP_REQUESTED",
            Self::RollbackRequested => "ROLLBACK_REQUESTED",
            Self::RollbackInProgress => "ROLLBACK_IN_PROGRESS",
            Self::RollbackSuccessful => "ROLLBACK_SUCCESSFUL",
            Self::RollbackFailed => "ROLLBACK_FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::InProgress,
            Self::Successful,
            Self::Stopped,
            Self::StopRequested,
            Self::RollbackRequested,
            Self::RollbackInProgress,
            Self::RollbackSuccessful,
            Self::RollbackFailed,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }

    /// SUCCESSFUL, STOPPED, ROLLBACK_SUCCESSFUL and ROLLBACK_FAILED: nothing more happens.
    pub fn finished(self) -> bool {
        matches!(
            self,
            Self::Successful | Self::Stopped | Self::RollbackSuccessful | Self::RollbackFailed
        )
    }
}

/// A service revision: the configuration one service deployment deploys.
#[derive(Debug, Clone)]
pub struct ServiceRevision {
    pub arn: String,
    pub service_arn: String,
    pub cluster_arn: String,
    pub task_definition: String,
    pub network: Option<Value>,
    pub launch_type: String,
    pub created_at: f64,
}

/// A rollback of a service deployment.
#[derive(Debug, Clone)]
pub struct Rollback {
    pub reason: String,
    pub started_at: f64,
    /// The revision rolled back to.
    pub revision: String,
}

/// One service deployment (ListServiceDeployments / DescribeServiceDeployments):
/// one per CreateService or UpdateService that started a deployment.
#[derive(Debug, Clone)]
pub struct ServiceDeployment {
    pub arn: String,
    pub service_arn: String,
    pub cluster_arn: String,
    /// (cluster name, service name).
    pub service: (String, String),
    pub created_at: f64,
    pub started_at: f64,
    pub updated_at: f64,
    pub finished_at: Option<f64>,
    pub stopped_at: Option<f64>,
    /// Revisions that were running when it started.
    pub source: Vec<String>,
    pub target: String,
    /// The `ecs-svc/...` deployment that runs the target revision.
    pub deployment_id: String,
    /// The `ecs-svc/...` deployment that runs the rollback's revision.
    pub rollback_deployment: Option<String>,
    pub status: DeploymentStatus,
    pub status_reason: String,
    pub rollback: Option<Rollback>,
    pub settings: DeploymentSettings,
    /// Tasks of the target deployment that failed to start, as the breaker counts them.
    pub failed_tasks: u32,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub arn: String,
    pub name: String,
    pub cluster_arn: String,
    pub active: bool,
    pub controller: Controller,
    /// EXTERNAL services only; DRAINING ones until their tasks are STOPPED.
    pub task_sets: Vec<TaskSet>,
    pub desired_count: u32,
    /// Empty for EXTERNAL services (they take it from their PRIMARY task set).
    pub task_definition: String,
    pub settings: DeploymentSettings,
    /// Members kept as given: networkConfiguration, loadBalancers, serviceRegistries, ...
    pub extra: Map<String, Value>,
    pub deployments: Vec<Deployment>,
    /// Newest first, as ECS lists them.
    pub events: Vec<(String, f64, String)>,
    pub tags: Vec<(String, String)>,
    pub created_at: f64,
    /// The task definition of the last COMPLETED deployment, for breaker rollbacks.
    pub last_completed: Option<String>,
    /// Healthy tasks at the last tick, to record changes in the timeline.
    pub healthy_count: usize,
}
