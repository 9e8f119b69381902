//! What the engine is told about one target.

use std::sync::Arc;

use super::{EnvironmentCheck, Strategy, VerifyPolicy};
use crate::model::service::{DeploymentCircuitBreaker, DeploymentConfiguration};
use crate::translate::{Manifest, Settings};

/// Where new versions come from: a repository in a registry, and the policy that picks.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub registry: Arc<crate::versions::registry::Registry>,
    /// `public.ecr.aws/dynatrace/dynatrace-activegate`
    pub repository: String,
    pub policy: crate::versions::Policy,
    /// When set, the version the Dynatrace environment names is the only candidate.
    pub metainfo: Option<Arc<crate::versions::dynatrace::Metainfo>>,
}

/// Everything the engine needs to know about one target.
#[derive(Debug, Clone)]
pub struct Spec {
    pub target: String,
    pub cluster: String,
    pub service: String,
    pub manifest: Arc<Manifest>,
    pub settings: Settings,
    pub deployment: DeploymentConfiguration,
    pub keep_revisions: u32,
    pub log_retention_days: u32,
    pub verify: VerifyPolicy,
    /// How a service this engine creates rolls; an existing service keeps its controller.
    pub strategy: Strategy,
    /// The blue/green service `migrate` creates beside a rolling one.
    pub migrate_to: String,
    /// Version discovery; without it the configured image is rolled out as is.
    pub versions: Option<Discovery>,
    /// Verified from Dynatrace's side too (`[target.verify.dynatrace]`).
    pub environment: Option<EnvironmentCheck>,
}

/// The deployment settings from the rollout policy.
pub fn deployment(min: u32, max: u32, breaker: bool) -> DeploymentConfiguration {
    DeploymentConfiguration {
        deployment_circuit_breaker: DeploymentCircuitBreaker {
            enable: breaker,
            rollback: breaker,
        },
        maximum_percent: max,
        minimum_healthy_percent: min,
    }
}
