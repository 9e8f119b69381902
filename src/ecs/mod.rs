//! The only user of the AWS SDK: building clients (region, endpoint,
//! credentials, TLS), the few ECS and CloudWatch Logs calls the daemon makes,
//! retries with backoff in one place, and counters of calls per operation.
//!
//! One file per job: `clients` builds the clients, `call` runs and counts every call,
//! then one file per kind of ECS object (`services`, `task_sets`, `tasks`,
//! `task_definitions`, `tags`) and CloudWatch Logs (`logs`).

mod budget;
mod call;
mod claims;
mod clients;
mod cluster;
mod convert;
mod error;
pub mod leases;
mod logs;
mod services;
mod tags;
mod task_definitions;
mod task_sets;
mod tasks;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use budget::{Bucket, Family, RateLimits, WaitCount};
pub use call::CallCount;
pub use claims::Claim;
pub use clients::{AssumeRole, CallerIdentity, ClientSettings, Clients};
pub use cluster::{SERVICES_PER_CALL, ServiceSummary, ServicesByName, TasksByService};
pub use error::EcsError;
pub use services::{DeploymentState, ServiceDeploymentState, ServiceState};
pub use task_definitions::TaskDefinitionState;
pub use task_sets::TaskSetState;
pub use tasks::{TaskState, running_ips};

/// The ECS and CloudWatch Logs clients of one region.
#[derive(Clone)]
pub struct Aws {
    ecs: aws_sdk_ecs::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    sts: aws_sdk_sts::Client,
    /// The lease table's client (`leases`), used only with `[daemon.lease]`.
    dynamodb: aws_sdk_dynamodb::Client,
    /// The services claimed through this `Aws`'s `Clients` (one reconcile each at a time).
    claims: claims::Claims,
    /// The rate budgets of this client's (identity, region), shared by every `Aws` of it.
    budget: Arc<budget::Budget>,
    settings: ClientSettings,
    counts: Arc<Mutex<BTreeMap<&'static str, CallCount>>>,
}

/// ECS counts are `i32`; a negative one (never sent) reads as 0.
fn n(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}
