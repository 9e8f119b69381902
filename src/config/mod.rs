//! The daemon's config file (TOML) → a [`Config`] of real types.
//!
//! Every value becomes its type where it is read (parse, don't validate): an ARN
//! of the wrong service, a retention CloudWatch does not offer, a cron schedule
//! or a time zone that does not exist, or a misspelt key fails with the file,
//! line, column, the field, what was found and what is allowed. The commented
//! example in `config/activegate-lifecycle.toml` documents every field.
//!
//! - [`schema`]: the TOML tables and their fields, documented.
//! - [`values`]: the field types, each parsed from its text.
//! - `locate`: where an error is (the TOML parser's spans), and its message.
//! - `load`: reading the file and the checks across fields.
//!
//! Config depends on `model` only: turning a target into another module's settings
//! happens in the composition root (`daemon::settings`), never here.

use std::path::Path;

pub mod lease;
mod load;
mod locate;
mod raw;
pub mod schema;
pub mod values;

pub use schema::*;
pub use values::*;

/// Config files are small; anything larger is the wrong file.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the config file is {size} bytes; at most {MAX_CONFIG_BYTES} are accepted")]
    TooLarge { path: String, size: u64 },
    #[error("{path}: the config file is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { path: String, offset: usize },
    #[error("{path}:{line}:{column}: {field}: {message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        /// The field, as a TOML path: `target[0].logs.retention_days`.
        field: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Semantic { path: String, message: String },
    #[error("{path}: no target named `{name}` (targets: {known})")]
    UnknownTarget {
        path: String,
        name: String,
        known: String,
    },
    #[error("{path}: {count} targets; choose one with --target ({known})")]
    AmbiguousTarget {
        path: String,
        count: usize,
        known: String,
    },
}

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, for messages.
    pub path: String,
    /// The folder relative paths in the file are resolved against.
    pub base_dir: std::path::PathBuf,
    pub aws: AwsSettings,
    pub daemon: DaemonSettings,
    pub targets: Vec<Target>,
}

impl Config {
    /// Settings that are valid but allow what a user running ActiveGate in
    /// production would not want, one line each.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.targets {
            let desired = t.desired_count.as_ref().map_or(2, |d| d.0);
            let min = t.rollout.minimum_healthy_percent.0;
            if (desired * min).div_ceil(100) == 0 || desired == 1 && min < 100 {
                out.push(format!(
                    "target `{}`: desired count {desired} with rollout.minimum_healthy_percent {min} allows a moment with no healthy ActiveGate during a rollout",
                    t.name
                ));
            }
            if t.probe.insecure {
                out.push(format!("target `{}`: probe.insecure = true: the ActiveGate certificates are not verified", t.name));
            }
            if !t.rollout.circuit_breaker {
                out.push(format!("target `{}`: rollout.circuit_breaker = false: ECS will keep launching tasks that cannot start", t.name));
            }
        }
        out
    }

    /// A path from the config, resolved against the config file's folder.
    pub fn resolve(&self, p: &Path) -> std::path::PathBuf {
        let env = p.to_str().is_some_and(|s| s.starts_with(crate::ENV_PREFIX));
        if p.is_absolute() || env {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The target with this name, or the only one when no name is given.
    pub fn target(&self, name: Option<&str>) -> Result<&Target, ConfigError> {
        let known = || {
            self.targets
                .iter()
                .map(|t| t.name.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            Some(n) => self.targets.iter().find(|t| t.name.0 == n).ok_or_else(|| {
                ConfigError::UnknownTarget {
                    path: self.path.clone(),
                    name: n.to_owned(),
                    known: known(),
                }
            }),
            None if self.targets.len() == 1 => Ok(&self.targets[0]),
            None => Err(ConfigError::AmbiguousTarget {
                path: self.path.clone(),
                count: self.targets.len(),
                known: known(),
            }),
        }
    }
}

/// Where a setting was written: the file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

/// The smallest valid target ("prod-eu" in eu-central-1), for the unit tests that need a
/// config and care about one section of it.
#[cfg(test)]
pub(crate) const MINIMAL_TARGET: &str = r#"[[target]]
name = "prod-eu"
region = "eu-central-1"
cluster = "observability"
service = "dynatrace-activegate"
execution_role_arn = "arn:aws:iam::123456789012:role/exec"

[target.network]
subnets = ["subnet-0123456789abcdef0"]

[target.logs]
group = "/ecs/activegate"

[target.secrets]
tenant_token = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:dt/tenant-AbCdEf"
"#;

#[cfg(test)]
mod tests;
