//! Which image a target should run next: version tags from an OCI registry,
//! ordered and filtered by the target's policy, pinned to a digest.

pub mod dynatrace;
pub mod registry;
pub mod version;

pub use version::{Choice, Constraint, Policy, Version, VersionError};
