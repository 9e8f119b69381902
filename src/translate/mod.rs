//! Kubernetes ActiveGate manifest → ECS Fargate task definition + report.
//!
//! Pure: it reads a parsed [`Manifest`] and [`Settings`] (what only the config
//! can say: roles, secrets' ARNs, log group, network) and returns documents and
//! a [`Report`]. No I/O, no clock, no randomness: the same input gives the same
//! bytes.
//!
//! [`translate`] picks the ActiveGate container, builds one `Ctx` (manifest,
//! settings, that container with its two field paths `containers[NAME]` and
//! `containerDefinitions[NAME]`, the report) and runs one step per concern over
//! it, in the order of the report: `container` (what is refused first, name,
//! command), `image` (and registry credentials), `ports`, `environment`,
//! `resources` (the task size), `security`, `volumes` (and the tokens' init
//! container), `probes`, `platform`, `logs`, `unmapped`, `task` (family, count,
//! tags, the whole document against ECS's limits) and `service`. A step writes
//! its report lines where it maps a field, and passes every value it copies
//! through `Ctx::gate` (no secret, the field's limit, the origin a later
//! refusal points at).

pub mod manifest;
pub mod quantity;
pub mod report;
pub mod secrets;

// One module per concern; each maps its fields over the shared `Ctx` and
// writes its report lines where the field is mapped.
mod container;
mod context;
mod environment;
mod image;
mod logs;
mod platform;
mod ports;
mod probes;
mod resources;
mod security;
mod service;
mod task;
mod unmapped;
mod volumes;

use std::collections::BTreeMap;

use crate::model::aws::{
    Cluster, EcsName, LogGroupName, Region, RoleArn, SecretArn, SecretsManagerArn, SecurityGroupId,
    ServiceRegistryArn, SubnetId, TargetGroupArn,
};
use crate::model::limits::Violation;
use crate::model::task_definition::TaskDefinition;

pub use manifest::{Manifest, Where, parse};
pub use report::{Action, Report};
pub use service::service_document;

use context::Ctx;

/// Everything that can go wrong reading or translating a manifest. All of
/// these are bad input: the user must change the file or the config.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("{at}: the file is {size} bytes; a manifest may be at most {limit} bytes")]
    TooLarge { at: Where, size: u64, limit: u64 },
    #[error("{at}: the file is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { at: Where, offset: usize },
    #[error("{at}: the file holds no YAML document")]
    Empty { at: Where },
    #[error("{at}: {message}")]
    Yaml { at: Where, message: String },
    #[error("{at}: no StatefulSet or Deployment in the file{found}")]
    NoWorkload { at: Where, found: String },
    #[error("{at}: {message}")]
    Unsupported { at: Where, message: String },
    #[error(
        "{at}: {what} holds a literal secret ({shape}); a token must not be written into a manifest \
         or a task definition: store it in Secrets Manager or SSM Parameter Store and name \
         its ARN under [target.secrets] in the config"
    )]
    LiteralSecret {
        at: Where,
        what: String,
        /// What the value looks like, never the value.
        shape: String,
    },
    /// A value ECS would refuse (or one beyond the product's budget), with the
    /// manifest or config field it came from.
    #[error("{at}: {source_field} → {violation}")]
    Limit {
        at: Where,
        source_field: String,
        violation: Box<Violation>,
    },
    #[error(
        "{at}: {what}: its $(VAR) references expand to more than {limit} bytes \
         (an expanded value may hold at most {value_limit} bytes, all of a container's \
         environment {limit}); write the value out or shorten it"
    )]
    ExpansionBudget {
        at: Where,
        what: String,
        limit: usize,
        value_limit: usize,
    },
    #[error(
        "{at}: {what} needs {cpu} CPU units and {memory_mib} MiB, more than the largest Fargate size (16384 CPU / 122880 MiB)"
    )]
    TooLargeForFargate {
        at: Where,
        what: String,
        cpu: u128,
        memory_mib: u128,
    },
    #[error("the service document needs {0} from the config (use --config and --target)")]
    NeedsConfig(&'static str),
}

/// Where the awslogs driver sends the containers' output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub group: LogGroupName,
    pub region: Region,
    pub stream_prefix: String,
}

/// The endpoint OneAgents use to reach the ActiveGates, split for `$(X_SERVICE_HOST)`
/// and `$(X_SERVICE_PORT)` substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    /// The full URL, e.g. `https://activegate.internal:9999/communication`.
    pub url: String,
    pub host: String,
    pub port: u16,
}

/// What only the config can say. `Settings::default()` translates without a config:
/// everything it would need is then reported as `needs-setting`.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The config's target name, tagged onto what is created.
    pub target: Option<String>,
    pub family: Option<EcsName>,
    pub cluster: Option<Cluster>,
    pub service: Option<EcsName>,
    /// Overrides the manifest's image (the rollout engine's choice).
    pub image: Option<String>,
    pub execution_role_arn: Option<RoleArn>,
    pub task_role_arn: Option<RoleArn>,
    pub logs: Option<LogSettings>,
    pub tenant_token: Option<SecretArn>,
    pub auth_token: Option<SecretArn>,
    pub registry_credentials: Option<SecretsManagerArn>,
    /// `DT_*` variables set by the config; they win over the manifest's.
    pub environment: BTreeMap<String, String>,
    pub entry_point: Option<EntryPoint>,
    /// Translate the liveness probe into an ECS container health check (needs
    /// `curl` in the image). `None` means the default, on.
    pub container_health_check: Option<bool>,
    pub desired_count: Option<u32>,
    pub subnets: Vec<SubnetId>,
    pub security_groups: Vec<SecurityGroupId>,
    pub assign_public_ip: bool,
    pub service_registry_arn: Option<ServiceRegistryArn>,
    pub target_group_arn: Option<TargetGroupArn>,
    /// Where each setting was written (`image`, `entry_point`, `environment.DT_TENANT`,
    /// `network.subnets`, …), so that a refusal of a setting points at its line.
    pub at: BTreeMap<String, Where>,
}

impl Settings {
    /// Where a setting was written; `(config) KEY` when nobody said.
    pub fn at(&self, key: &str) -> Where {
        self.at
            .get(key)
            .cloned()
            .unwrap_or_else(|| Where::file(&format!("(config) {key}")))
    }
}

/// The HTTPS readiness probe the daemon runs against every task, taken from
/// the manifest's readinessProbe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub port: u16,
    pub path: String,
    pub period_seconds: u32,
    pub failure_threshold: u32,
    pub timeout_seconds: u32,
    pub initial_delay_seconds: u32,
}

/// The result of a translation.
#[derive(Debug, Clone)]
pub struct Translation {
    pub task_definition: TaskDefinition,
    pub report: Report,
    pub readiness: Readiness,
    /// The ActiveGate container's name in the task definition.
    pub container: String,
    /// Desired count: config, else the manifest's replicas, else 2.
    pub desired_count: u32,
    /// The Services' ports, resolved to container ports, for the service document.
    pub service_ports: Vec<(String, u16)>,
}

/// The ActiveGate port (HTTPS).
pub const ACTIVEGATE_PORT: u16 = 9999;

/// Translates a parsed manifest with the given settings: the steps in the
/// order their report lines appear.
pub fn translate(m: &Manifest, s: &Settings) -> Result<Translation, TranslateError> {
    let ag = container::pick_activegate(m)?;
    let mut cx = Ctx::new(m, s, ag);
    unmapped::skipped_documents(&mut cx);
    container::drop_sidecars(&mut cx);
    container::refuse_literal_secrets(m, ag)?;
    container::drop_init_containers(&mut cx)?;
    container::gate_name(&mut cx)?;

    let image = image::map_image(&mut cx)?;
    let mut c = container::start(&mut cx, &image)?;
    ports::map_ports(&mut cx, &mut c)?;
    environment::map_environment(&mut cx, &mut c)?;
    let (cpu, memory) = resources::map_resources(&mut cx, &mut c)?;
    security::map_security(&mut cx, &mut c)?;
    let mut volumes = volumes::map_volumes(&mut cx, &mut c)?;
    probes::map_probes(&mut cx, &mut c)?;
    let readiness = probes::readiness(&mut cx)?;
    let runtime_platform = platform::map_platform(&mut cx);
    container::map_stop_timeout(&mut cx, &mut c);
    c.repository_credentials = image::map_registry_credentials(&mut cx);
    c.log_configuration = logs::map_logs(&mut cx);
    // After the user, logs and credentials: the init container gets the same.
    let token_writer = volumes::map_tokens(&mut cx, &mut c, &mut volumes, &image);
    let containers = std::iter::once(c).chain(token_writer).collect();

    // Unmapped fields: everything present but not read above.
    unmapped::report(&mut cx);
    let family = task::family(&mut cx)?;
    task::check_execution_role(&mut cx);
    let desired_count = task::desired_count(&mut cx);
    let service_ports = service::map_services(&mut cx);

    let task_definition = TaskDefinition {
        family,
        task_role_arn: s.task_role_arn.as_ref().map(ToString::to_string),
        execution_role_arn: s.execution_role_arn.as_ref().map(ToString::to_string),
        network_mode: "awsvpc".into(),
        container_definitions: containers,
        volumes,
        requires_compatibilities: vec!["FARGATE".into()],
        cpu: cpu.to_string(),
        memory: memory.to_string(),
        runtime_platform: Some(runtime_platform),
        tags: task::tags(s),
    };
    task::check_limits(&cx, &task_definition, &image)?;
    Ok(Translation {
        task_definition,
        report: cx.report,
        readiness,
        container: ag.name.value.clone(),
        desired_count,
        service_ports,
    })
}

#[cfg(test)]
mod tests;
