//! Domain types shared by every module: the ECS documents the product writes,
//! AWS identifiers, Fargate sizes. Nothing here performs I/O.

pub mod aws;
pub mod fargate;
pub mod ids;
pub mod limits;
pub mod marks;
pub mod pin;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod task_definition;
pub mod version;

pub use service::CreateService;
pub use task_definition::{ContainerDefinition, TaskDefinition};

/// The value of the `managed-by` tag on everything the product creates.
pub const MANAGED_BY: &str = "activegate-lifecycle";
