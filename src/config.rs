//! The daemon's config file (TOML) → a validated [`Config`].
//!
//! Every field is checked where it is read: an ARN of the wrong service, a
//! retention CloudWatch does not offer or a misspelt key fails with the file,
//! line, column, the field, what was found and what is allowed. The commented
//! example in `config/activegate-lifecycle.toml` documents every field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::model::aws::{
    Cluster, EcsName, LOG_RETENTION_DAYS, LogGroupName, Region, RoleArn, SecretArn,
    SecretsManagerArn, SecurityGroupId, ServiceRegistryArn, SubnetId, TargetGroupArn,
};
use crate::translate::{EntryPoint, LogSettings, Settings};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    aws: AwsSettings,
    #[serde(default)]
    daemon: DaemonSettings,
    #[serde(rename = "target", default)]
    targets: Vec<toml::Spanned<Target>>,
}

/// The daemon's own settings (`run`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSettings {
    /// Address of the status server (`/healthz`, `/status`, `/metrics`, `POST /trigger`).
    #[serde(default = "default_status_listen")]
    pub status_listen: std::net::SocketAddr,
    /// On SIGTERM, how long an in-flight rollout may take to finish or roll back.
    #[serde(default = "default_shutdown_deadline")]
    pub shutdown_deadline_seconds: Seconds,
    /// The environment variable holding the bearer token `POST /trigger` requires;
    /// without the variable set, the trigger endpoint is off.
    #[serde(default = "default_token_env")]
    pub trigger_token_env: String,
    /// Targets of different groups rolled at the same time, at most.
    #[serde(default = "four")]
    pub max_parallel: Count,
    /// Send rollout outcomes to Dynatrace as events.
    #[serde(default)]
    pub events: Option<EventSettings>,
}

/// Where rollout events go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// The Dynatrace environment, e.g. `https://abc12345.live.dynatrace.com`.
    pub environment_url: EndpointUrl,
    /// The environment variable holding an API token with the `events.ingest` scope.
    #[serde(default = "default_events_token_env")]
    pub token_env: String,
}

fn default_events_token_env() -> String {
    "DT_API_TOKEN".into()
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            status_listen: default_status_listen(),
            shutdown_deadline_seconds: default_shutdown_deadline(),
            trigger_token_env: default_token_env(),
            max_parallel: four(),
            events: None,
        }
    }
}

fn default_status_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_shutdown_deadline() -> Seconds {
    Seconds(600.0)
}
fn default_token_env() -> String {
    "ACTIVEGATE_LIFECYCLE_TRIGGER_TOKEN".into()
}
fn four() -> Count {
    Count(4)
}
fn five_nines() -> SloPercent {
    SloPercent(99.999)
}
fn utc() -> TimezoneName {
    TimezoneName("UTC".into())
}

/// How the daemon reaches AWS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// An explicit endpoint for ECS and CloudWatch Logs (the simulator, a VPC
    /// endpoint). Without it the SDK resolves one (`AWS_ENDPOINT_URL` included).
    #[serde(default)]
    pub endpoint_url: Option<EndpointUrl>,
    /// Attempts per AWS call, the first included (retries back off exponentially).
    #[serde(default = "default_attempts")]
    pub max_attempts: Attempts,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            max_attempts: default_attempts(),
        }
    }
}

fn default_attempts() -> Attempts {
    Attempts(6)
}

/// How a rollout is carried out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSettings {
    /// `blue-green`: a new revision runs as a second task set beside the last good one until
    /// it baked (ECS's EXTERNAL controller; twice the tasks during a rollout). `rolling`:
    /// ECS's rolling update. The default for services the product creates is `blue-green`;
    /// a service that exists keeps its controller.
    #[serde(default)]
    pub strategy: StrategyName,
    /// The name of the blue/green service `rollout --migrate` creates beside a rolling one
    /// (default: the service's name with `-bg`). Example: `migrate_to = "activegate-bg"`.
    #[serde(default)]
    pub migrate_to: Option<EcsName>,
    #[serde(default = "hundred")]
    pub minimum_healthy_percent: Percent,
    #[serde(default = "two_hundred")]
    pub maximum_percent: Percent,
    #[serde(default = "yes")]
    pub circuit_breaker: bool,
    /// Managed revisions kept registered (the last good one is always kept); 0, the
    /// default, deregisters nothing: IAM grants `ecs:DeregisterTaskDefinition` only on
    /// every task definition of the account (`*`), which the shipped policy leaves out.
    #[serde(default = "keep_none")]
    pub keep_revisions: KeepRevisions,
    /// A rollout not verified by then is rolled back.
    #[serde(default = "default_deadline")]
    pub deadline_seconds: Seconds,
    /// After every new task is healthy, how long none may fail before it is kept (with
    /// blue/green, the last good tasks serve beside it all that time). Default 600.
    #[serde(default = "default_bake")]
    pub bake_seconds: Seconds,
}

/// `rollout.strategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    #[default]
    BlueGreen,
    Rolling,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        Self {
            strategy: StrategyName::default(),
            migrate_to: None,
            minimum_healthy_percent: hundred(),
            maximum_percent: two_hundred(),
            circuit_breaker: true,
            keep_revisions: keep_none(),
            deadline_seconds: default_deadline(),
            bake_seconds: default_bake(),
        }
    }
}

fn hundred() -> Percent {
    Percent(100)
}
fn two_hundred() -> Percent {
    Percent(200)
}
fn keep_none() -> KeepRevisions {
    KeepRevisions(0)
}
fn three() -> Count {
    Count(3)
}
fn default_deadline() -> Seconds {
    Seconds(1800.0)
}
fn default_bake() -> Seconds {
    Seconds(600.0)
}
fn default_interval() -> Seconds {
    Seconds(15.0)
}
fn default_timeout() -> Seconds {
    Seconds(2.0)
}
fn default_grace() -> Seconds {
    Seconds(120.0)
}

/// The daemon's HTTPS probe of every ActiveGate task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Default: the manifest's readinessProbe port, else 9999.
    #[serde(default)]
    pub port: Option<u16>,
    /// Default: the manifest's readinessProbe path, else `/rest/health`.
    #[serde(default)]
    pub path: Option<ProbePath>,
    #[serde(default = "default_interval")]
    pub interval_seconds: Seconds,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: Seconds,
    /// How long a new task may fail its probes before that counts.
    #[serde(default = "default_grace")]
    pub grace_seconds: Seconds,
    /// Consecutive 2xx answers that make a task healthy.
    #[serde(default = "three")]
    pub healthy_after: Count,
    /// Consecutive failures (after the grace period) that make a task unhealthy.
    #[serde(default = "three")]
    pub unhealthy_after: Count,
    /// Text a healthy answer must contain, e.g. `RUNNING`.
    #[serde(default)]
    pub body_match: Option<String>,
    /// PEM file of the CA(s) that sign the ActiveGate certificates (with IP SANs).
    #[serde(default)]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// SHA-256 of the ActiveGate certificate's public key (hex or base64).
    #[serde(default)]
    pub pin_sha256: Option<PinText>,
    /// Trust any certificate. Only when set explicitly; warned about at every start.
    #[serde(default)]
    pub insecure: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            port: None,
            path: None,
            interval_seconds: default_interval(),
            timeout_seconds: default_timeout(),
            grace_seconds: default_grace(),
            healthy_after: three(),
            unhealthy_after: three(),
            body_match: None,
            ca_bundle: None,
            pin_sha256: None,
            insecure: false,
        }
    }
}

/// One ActiveGate service the daemon keeps: an ECS cluster + service, and
/// what only the config can say about its task definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Unique name: lower-case letters, digits and `-`, at most 63.
    pub name: TargetName,
    pub region: Region,
    pub cluster: Cluster,
    pub service: EcsName,
    /// Task-definition family; defaults to the manifest's workload name.
    #[serde(default)]
    pub family: Option<EcsName>,
    /// The image to run; defaults to the manifest's image.
    #[serde(default)]
    pub image: Option<ImageText>,
    pub execution_role_arn: RoleArn,
    #[serde(default)]
    pub task_role_arn: Option<RoleArn>,
    /// Tasks to run; defaults to the manifest's replicas, else 2.
    #[serde(default)]
    pub desired_count: Option<DesiredCount>,
    /// The URL OneAgents use to reach these ActiveGates (`DT_DNS_ENTRY_POINT`).
    #[serde(default)]
    pub entry_point: Option<EntryPointUrl>,
    /// Turn the liveness probe into an ECS container health check (needs curl in the image).
    #[serde(default = "yes")]
    pub container_health_check: bool,
    pub network: Network,
    pub logs: Logs,
    pub secrets: Secrets,
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub service_discovery: Option<ServiceDiscovery>,
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// The Kubernetes manifest the task definition is rendered from (relative to this file).
    #[serde(default)]
    pub manifest: Option<std::path::PathBuf>,
    /// When `run` reconciles this target: cron with seconds, e.g. `0 30 3 * * *`.
    /// Without it, the target is reconciled at start, on SIGHUP and on trigger only.
    #[serde(default)]
    pub schedule: Option<ScheduleText>,
    /// The IANA time zone of `schedule`.
    #[serde(default = "utc")]
    pub timezone: TimezoneName,
    /// A random delay of up to this many seconds after each scheduled time.
    #[serde(default)]
    pub jitter_seconds: Option<Seconds>,
    /// Targets of one group (e.g. one network zone) are never rolled at the same time.
    #[serde(default)]
    pub group: Option<String>,
    /// Scheduled rollouts run only inside this window (start, SIGHUP and triggers are not limited).
    #[serde(default)]
    pub maintenance: Option<MaintenanceWindow>,
    /// The availability objective in percent over 30 days; scheduled rollouts pause
    /// while its error budget is spent.
    #[serde(default = "five_nines")]
    pub slo_percent: SloPercent,
    #[serde(default)]
    pub rollout: RolloutSettings,
    #[serde(default)]
    pub probe: ProbeConfig,
    /// Where new ActiveGate versions come from; without it, the configured image is used as is.
    #[serde(default)]
    pub versions: Option<VersionSettings>,
    /// What else a new revision must show before it is kept (`[target.verify.dynatrace]`).
    #[serde(default)]
    pub verify: Option<VerifySettings>,
    /// How applications in a Consul service mesh reach these ActiveGates.
    #[serde(default)]
    pub mesh: Option<MeshSettings>,
    /// Where each setting was written (not a config field: filled at load).
    #[serde(skip)]
    pub locations: BTreeMap<String, crate::translate::Where>,
}

/// Consul service mesh: the ActiveGate as a terminating-gateway destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSettings {
    /// The ActiveGate's name in Consul; default: the ECS service name.
    #[serde(default)]
    pub service: Option<ConsulName>,
    /// Its Consul namespace (Enterprise) and the custom resources' namespace.
    #[serde(default)]
    pub namespace: Option<ConsulName>,
    /// The terminating gateway's service name.
    #[serde(default = "default_gateway")]
    pub terminating_gateway: ConsulName,
    /// A name or address of the ActiveGates that survives rollouts (Cloud Map, a load
    /// balancer); default: the entry point's host when it is a name.
    #[serde(default)]
    pub address: Option<MeshAddress>,
    /// Point the destination at the tasks' own addresses even when a stable name exists.
    #[serde(default)]
    pub task_addresses: bool,
    /// The destination port; default: the entry point's port with a stable name, else the
    /// probe port (9999).
    #[serde(default)]
    pub port: Option<u16>,
    /// Meshed services allowed to reach the ActiveGate.
    #[serde(default)]
    pub sources: Vec<MeshSourceSettings>,
    /// Stable CIDRs (the ActiveGate subnets) for `mesh --exclusions`.
    #[serde(default)]
    pub exclude_cidrs: Vec<CidrText>,
    /// Consul's HTTP API: with it, the daemon keeps the destination current.
    #[serde(default)]
    pub consul_address: Option<EndpointUrl>,
    /// The environment variable with the Consul ACL token.
    #[serde(default = "default_consul_token_env")]
    pub token_env: String,
    /// The Consul datacenter, when not the agent's own.
    #[serde(default)]
    pub datacenter: Option<ConsulName>,
    /// PEM file with the CA of Consul's HTTPS certificate (relative to this file, or
    /// `env:NAME`), added to the system's roots.
    #[serde(default)]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// The terminating gateway's Envoy admin endpoint, checked after each update.
    #[serde(default)]
    pub envoy_admin: Option<EndpointUrl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSourceSettings {
    pub name: ConsulName,
    #[serde(default)]
    pub namespace: Option<ConsulName>,
}

fn default_gateway() -> ConsulName {
    ConsulName("terminating-gateway".into())
}
fn default_consul_token_env() -> String {
    "CONSUL_HTTP_TOKEN".into()
}

/// Version discovery for a target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSettings {
    /// `registry`: the newest acceptable tag of `repository`; `dynatrace-api`: the
    /// version the Dynatrace environment names as latest; `pinned`: the configured image.
    pub source: VersionSourceKind,
    /// For `dynatrace-api`: the environment, e.g. `https://abc12345.live.dynatrace.com`.
    #[serde(default)]
    pub environment_url: Option<EndpointUrl>,
    /// For `dynatrace-api`: the environment variable with a PaaS / InstallerDownload token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The image repository, e.g. `public.ecr.aws/dynatrace/dynatrace-activegate`.
    #[serde(default)]
    pub repository: Option<ImageText>,
    /// The registry's base URL, when it is not `https://<the repository's host>`.
    #[serde(default)]
    pub registry_url: Option<EndpointUrl>,
    /// `newest`, `1.301.*`, `<= 1.303` or `>= 1.301`.
    #[serde(default = "newest")]
    pub constraint: ConstraintText,
    /// Skip versions built fewer days ago than this.
    #[serde(default)]
    pub min_age_days: Option<Days>,
    /// Take the `-fips` variants.
    #[serde(default)]
    pub fips: bool,
    /// Registry user for basic credentials (the environment ID for the environment registry).
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the registry password or token.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Or a file holding it (relative to this config file), e.g. a mounted secret.
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionSourceKind {
    Registry,
    DynatraceApi,
    Pinned,
}

/// `[target.verify]`: what a new revision must show besides its HTTPS probes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySettings {
    /// The Dynatrace environment must list every new ActiveGate as connected, with the
    /// rolled out version (and the network zone and group, when set).
    #[serde(default)]
    pub dynatrace: Option<DynatraceVerify>,
}

/// `[target.verify.dynatrace]`: verified from Dynatrace's side (`GET /api/v2/activeGates`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynatraceVerify {
    /// The environment, e.g. `https://abc12345.live.dynatrace.com` (Managed:
    /// `https://{domain}/e/{environment-id}`).
    pub environment_url: EndpointUrl,
    /// The environment variable holding an API token with the `activeGates.read` scope
    /// (never printed).
    #[serde(default = "default_verify_token_env")]
    pub token_env: VariableName,
    /// The network zone every new ActiveGate must report (compared case-insensitively).
    #[serde(default)]
    pub network_zone: Option<NetworkZone>,
    /// The ActiveGate group every new ActiveGate must report.
    #[serde(default)]
    pub group: Option<PlainValue>,
    /// When the environment cannot be asked (unreachable, 401, 403): `fail` waits until the
    /// deadline and then removes the new revision; `probe-only` keeps it on its HTTPS probes,
    /// with a warning in the outcome.
    #[serde(default)]
    pub on_api_error: OnApiError,
}

/// `verify.dynatrace.on_api_error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnApiError {
    #[default]
    Fail,
    ProbeOnly,
}

fn default_verify_token_env() -> VariableName {
    VariableName("DT_API_TOKEN".into())
}

fn newest() -> ConstraintText {
    ConstraintText("newest".into())
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub subnets: NonEmpty<SubnetId>,
    #[serde(default)]
    pub security_groups: Vec<SecurityGroupId>,
    #[serde(default)]
    pub assign_public_ip: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    pub group: LogGroupName,
    #[serde(default = "default_retention")]
    pub retention_days: RetentionDays,
    #[serde(default = "default_stream_prefix")]
    pub stream_prefix: StreamPrefix,
}

fn default_retention() -> RetentionDays {
    RetentionDays(30)
}

fn default_stream_prefix() -> StreamPrefix {
    StreamPrefix("activegate".into())
}

/// ARNs only: the values stay in Secrets Manager / SSM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub tenant_token: SecretArn,
    #[serde(default)]
    pub auth_token: Option<SecretArn>,
    #[serde(default)]
    pub registry_credentials: Option<SecretsManagerArn>,
}

/// ActiveGate settings passed as environment variables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    #[serde(rename = "DT_TENANT", default)]
    pub tenant: Option<TenantId>,
    #[serde(rename = "DT_SERVER", default)]
    pub server: Option<ServerList>,
    #[serde(rename = "DT_NETWORK_ZONE", default)]
    pub network_zone: Option<NetworkZone>,
    #[serde(rename = "DT_CAPABILITIES", default)]
    pub capabilities: Option<CapabilityList>,
    #[serde(rename = "DT_GROUP", default)]
    pub group: Option<PlainValue>,
    #[serde(rename = "DT_DEPLOYMENT_METADATA", default)]
    pub deployment_metadata: Option<PlainValue>,
    #[serde(rename = "DT_IGNORE_CLUSTER_RUNTIME_INFO", default)]
    pub ignore_cluster_runtime_info: Option<bool>,
}

impl Environment {
    fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        put("DT_TENANT", self.tenant.as_ref().map(|v| v.0.clone()));
        put("DT_SERVER", self.server.as_ref().map(|v| v.0.clone()));
        put(
            "DT_NETWORK_ZONE",
            self.network_zone.as_ref().map(|v| v.0.clone()),
        );
        put(
            "DT_CAPABILITIES",
            self.capabilities.as_ref().map(|v| v.0.clone()),
        );
        put("DT_GROUP", self.group.as_ref().map(|v| v.0.clone()));
        put(
            "DT_DEPLOYMENT_METADATA",
            self.deployment_metadata.as_ref().map(|v| v.0.clone()),
        );
        put(
            "DT_IGNORE_CLUSTER_RUNTIME_INFO",
            self.ignore_cluster_runtime_info.map(|b| b.to_string()),
        );
        m
    }
}

/// Days of the week and a time span, in the target's time zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub days: NonEmpty<DayName>,
    pub from: ClockTime,
    pub to: ClockTime,
}

impl MaintenanceWindow {
    pub fn window(&self) -> crate::daemon::schedule::Window {
        crate::daemon::schedule::Window {
            days: self
                .days
                .0
                .iter()
                .map(|d| d.0.parse().expect("checked when the config was read"))
                .collect(),
            from: chrono::NaiveTime::parse_from_str(&self.from.0, "%H:%M")
                .expect("checked when the config was read"),
            to: chrono::NaiveTime::parse_from_str(&self.to.0, "%H:%M")
                .expect("checked when the config was read"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDiscovery {
    pub registry_arn: ServiceRegistryArn,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSettings {
    pub target_group_arn: TargetGroupArn,
}

// ---- validated scalar types --------------------------------------------------------------

/// Declares a newtype over a deserialised value, checked by a function that
/// returns the error message (what was found and what is allowed).
macro_rules! checked {
    ($(#[$doc:meta])* $name:ident($inner:ty), $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = <$inner>::deserialize(d)?;
                let check: fn(&$inner) -> Result<(), String> = $check;
                check(&v).map_err(serde::de::Error::custom)?;
                Ok(Self(v))
            }
        }
    };
}

checked!(
    /// A target's name: `[a-z0-9-]{1,63}`, starting with a letter or digit.
    TargetName(String),
    |s| {
        let ok = !s.is_empty()
            && s.len() <= 63
            && !s.starts_with('-')
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then_some(()).ok_or_else(|| {
            format!("expected 1 to 63 lower-case letters, digits and `-` (e.g. `prod-eu`), found {}", crate::model::secret::shown(s))
        })
    }
);

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

checked!(
    /// An image reference as text: `repository[:tag][@digest]`.
    ImageText(String),
    |s| {
        // ECS's own rule for images (ContainerDefinition.image): at most 255 of
        // letters, digits and `-_:./#@`.
        let ok = crate::model::limits::image("image", s).is_ok();
        ok.then_some(()).ok_or_else(|| {
            format!("expected an image reference of at most 255 letters, digits and `-_:./#@` (ECS's limit), such as `public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512`, found {}", crate::model::secret::shown(s))
        })
    }
);

checked!(
    /// Desired task count: 1 to 100.
    DesiredCount(u32),
    |n| (1..=100).contains(n).then_some(()).ok_or_else(|| format!("expected 1 to 100 tasks, found {n}"))
);

checked!(
    /// Days CloudWatch Logs keeps the containers' output; one of CloudWatch's values.
    RetentionDays(u32),
    |n| LOG_RETENTION_DAYS.contains(n).then_some(()).ok_or_else(|| {
        let allowed: Vec<String> = LOG_RETENTION_DAYS.iter().map(ToString::to_string).collect();
        let nearest = LOG_RETENTION_DAYS.iter().min_by_key(|d| d.abs_diff(*n)).copied().unwrap_or(30);
        format!("{n} days is not a CloudWatch Logs retention; allowed: {} (nearest: {nearest})", allowed.join(", "))
    })
);

checked!(
    /// The awslogs stream prefix.
    StreamPrefix(String),
    |s| {
        let ok = !s.is_empty() && s.len() <= 256 && !s.contains([':', '*']) && !s.contains(char::is_whitespace);
        ok.then_some(()).ok_or_else(|| format!("expected a non-empty stream prefix without `:`, `*` or spaces, found {}", crate::model::secret::shown(s)))
    }
);

checked!(
    /// The Dynatrace environment ID (`DT_TENANT`).
    TenantId(String),
    |s| {
        let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then_some(()).ok_or_else(|| format!("expected an environment ID such as `abc12345` (letters, digits, `-`, at most 64), found {}", dt_shape(s, |b| b.is_ascii_alphanumeric() || b == b'-')))
    }
);

checked!(
    /// `DT_SERVER`: comma-separated `https://` communication endpoints.
    ServerList(String),
    |s| {
        let bad: Vec<&str> = s.split(',').map(str::trim).filter(|u| parse_https_url(u).is_none()).collect();
        if s.trim().is_empty() || !bad.is_empty() {
            Err(format!(
                "expected comma-separated https URLs such as `https://abc12345.live.dynatrace.com:443/communication`, found {} (entry {} is no https URL)",
                dt_shape(s, |_| true),
                s.split(',').position(|u| parse_https_url(u.trim()).is_none()).map_or(1, |p| p + 1)
            ))
        } else if let Err(v) = crate::model::limits::env_value("DT_SERVER", s) {
            Err(format!("found {}; allowed: {}", v.found, v.allowed))
        } else {
            Ok(())
        }
    }
);

checked!(
    /// `DT_NETWORK_ZONE`: letters, digits, `-`, `_`, `.`; at most 256.
    NetworkZone(String),
    |s| {
        let ok = !s.is_empty()
            && s.len() <= 256
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.contains("..")
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        ok.then_some(()).ok_or_else(|| {
            format!("expected a network zone of letters, digits, `-`, `_` with `.` as separator, at most 256 (e.g. `aws.eu-central-1`), found {}", dt_shape(s, |b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
        })
    }
);

checked!(
    /// `DT_CAPABILITIES`: comma-separated capability names.
    CapabilityList(String),
    |s| {
        let caps: Vec<&str> = s.split(',').map(str::trim).collect();
        if caps.iter().any(|c| c.starts_with("kubernetes")) {
            return Err("`kubernetes_monitoring` needs the Kubernetes API and cannot work on ECS; routing needs `MSGrouter`, the API `restInterface`".into());
        }
        let ok = caps.iter().all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        ok.then_some(()).ok_or_else(|| format!("expected comma-separated capabilities such as `MSGrouter,restInterface,metrics_ingest`, found {}", dt_shape(s, |b| b.is_ascii_alphanumeric() || b == b'_' || b == b',' || b == b' ')))
    }
);

checked!(
    /// An http(s) URL of an AWS endpoint.
    EndpointUrl(String),
    |s| {
        let ok = (s.starts_with("https://") || s.starts_with("http://")) && s.len() > 8 && !s.contains(char::is_whitespace);
        ok.then_some(()).ok_or_else(|| format!("expected an http(s) URL such as `https://ecs.eu-central-1.amazonaws.com`, found {}", crate::model::secret::shown(s)))
    }
);

checked!(
    /// A cron expression with seconds: `sec min hour day month weekday [year]`.
    ScheduleText(String),
    |s| crate::daemon::schedule::Schedule::parse(s, "UTC").map(|_| ())
);

checked!(
    /// A number of days, 0 to 365.
    Days(f64),
    |n| (n.is_finite() && (0.0..=365.0).contains(n)).then_some(()).ok_or_else(|| format!("expected 0 to 365 days, found {n}"))
);

checked!(
    /// A version constraint: `newest`, `1.301.*`, `<= 1.303`, `>= 1.301`.
    ConstraintText(String),
    |s| crate::versions::Constraint::parse(s).map(|_| ())
);

checked!(
    /// A day of the week: `Mon` … `Sun`.
    DayName(String),
    |s| s.parse::<chrono::Weekday>().map(|_| ()).map_err(|_| format!("expected a day such as `Mon` or `Sat`, found {}", crate::model::secret::shown(s)))
);

checked!(
    /// A time of day, `HH:MM`.
    ClockTime(String),
    |s| chrono::NaiveTime::parse_from_str(s, "%H:%M").map(|_| ()).map_err(|_| format!("expected a time of day such as `02:30`, found {}", crate::model::secret::shown(s)))
);

checked!(
    /// An availability objective in percent: at least 90, below 100.
    SloPercent(f64),
    |n| (n.is_finite() && *n >= 90.0 && *n < 100.0).then_some(()).ok_or_else(|| format!("expected a percentage from 90 to below 100, such as 99.999, found {n}"))
);

checked!(
    /// An IANA time zone name such as `Europe/Berlin`.
    TimezoneName(String),
    |s| s.parse::<chrono_tz::Tz>().map(|_| ()).map_err(|_| format!("`{s}` is not an IANA time zone (such as `UTC` or `Europe/Berlin`)"))
);

checked!(
    /// Attempts per AWS call: 1 to 20.
    Attempts(u32),
    |n| (1..=20).contains(n).then_some(()).ok_or_else(|| format!("expected 1 to 20 attempts, found {n}"))
);

checked!(
    /// A percentage of the desired count: 0 to 200.
    Percent(u32),
    |n| (*n <= 200).then_some(()).ok_or_else(|| format!("expected a percentage from 0 to 200, found {n}"))
);

checked!(
    /// A Consul service, namespace or datacenter name.
    ConsulName(String),
    |s| {
        let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        ok.then_some(()).ok_or_else(|| format!("expected letters, digits, `-`, `_` or `.` (at most 128), found {}", crate::model::secret::shown(s)))
    }
);

checked!(
    /// A host name or IP address (no port, no wildcard).
    MeshAddress(String),
    |s| {
        let ip = s.parse::<std::net::IpAddr>().is_ok();
        let name = !s.is_empty() && s.len() <= 253 && s.contains('.')
            && s.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        (ip || name).then_some(()).ok_or_else(|| format!("expected a DNS name such as `activegate.observability.internal` or an IP address, found {}", crate::model::secret::shown(s)))
    }
);

checked!(
    /// An IPv4 or IPv6 CIDR block.
    CidrText(String),
    |s| {
        let ok = s.split_once('/').is_some_and(|(ip, bits)| match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        });
        ok.then_some(()).ok_or_else(|| format!("expected a CIDR block such as `10.0.16.0/20`, found {}", crate::model::secret::shown(s)))
    }
);

checked!(
    /// Task-definition revisions kept registered: 0 (pruning off) to 100.
    KeepRevisions(u32),
    |n| (0..=100).contains(n).then_some(()).ok_or_else(|| format!("expected 0 (off) to 100, found {n}"))
);

checked!(
    /// A small positive count: 1 to 100.
    Count(u32),
    |n| (1..=100).contains(n).then_some(()).ok_or_else(|| format!("expected 1 to 100, found {n}"))
);

checked!(
    /// A positive number of seconds, at most a day.
    Seconds(f64),
    |n| (n.is_finite() && *n > 0.0 && *n <= 86_400.0).then_some(()).ok_or_else(|| format!("expected a number of seconds above 0 and at most 86400, found {n}"))
);

impl Seconds {
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0)
    }
}

checked!(
    /// An HTTP path starting with `/`.
    ProbePath(String),
    |s| (s.starts_with('/') && !s.contains(char::is_whitespace)).then_some(()).ok_or_else(|| format!("expected a path starting with `/`, such as `/rest/health`, found {}", crate::model::secret::shown(s)))
);

checked!(
    /// A public-key pin: SHA-256 as 64 hex digits or base64.
    PinText(String),
    |s| crate::health::pin::parse_pin(s).map(|_| ()).ok_or_else(|| "expected the SHA-256 of the certificate's public key as 64 hex digits or base64".to_owned())
);

checked!(
    /// A plain environment value: one line, no secret.
    PlainValue(String),
    |s| {
        if let Some(f) = crate::model::secret::find(s) {
            Err(format!("this looks like {}; tokens belong in Secrets Manager or SSM, named under [target.secrets]", crate::model::secret::describe(s, &f)))
        } else if s.contains('\n') {
            Err("expected a single line".into())
        } else if let Err(v) = crate::model::limits::env_value("value", s) {
            Err(format!("found {}; allowed: {}", v.found, v.allowed))
        } else {
            Ok(())
        }
    }
);

checked!(
    /// The name of an environment variable: letters, digits and `_`, not starting with a digit.
    VariableName(String),
    |s| {
        if crate::model::secret::is_token_like(s) {
            return Err("this looks like a token, not the name of the variable that holds it; put the token in a variable and name that".into());
        }
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then_some(()).ok_or_else(|| format!("expected the name of an environment variable such as `DT_API_TOKEN`, found {}", crate::model::secret::shown(s)))
    }
);

checked!(
    /// The entry point URL OneAgents use: `https://HOST[:PORT]/PATH`.
    EntryPointUrl(String),
    |s| parse_https_url(s).map(|_| ()).ok_or_else(|| {
        format!("expected an https URL such as `https://activegate.example.internal:9999/communication`, found {}", crate::model::secret::shown(s))
    })
);

impl EntryPointUrl {
    fn entry_point(&self) -> EntryPoint {
        let (host, port) = parse_https_url(&self.0).expect("checked when the config was read");
        EntryPoint {
            url: self.0.clone(),
            host,
            port,
        }
    }
}

/// What a refused `DT_*` value looks like, never the value (it may be a secret
/// pasted into the wrong field): its length and the first character not allowed.
fn dt_shape(s: &str, allowed: impl Fn(u8) -> bool) -> String {
    let mut out = crate::model::secret::shape(s);
    if let Some((i, c)) = s
        .char_indices()
        .find(|(_, c)| c.len_utf8() > 1 || !allowed(*c as u8))
    {
        let c = if c.is_alphanumeric() {
            "a letter or digit".to_owned()
        } else {
            format!("`{}`", c.escape_debug())
        };
        out.push_str(&format!(
            " with {c} at position {}",
            s[..i].chars().count() + 1
        ));
    }
    out
}

/// A list that must hold at least one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmpty<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        if v.is_empty() {
            return Err(serde::de::Error::custom(
                "expected at least one element, found an empty list",
            ));
        }
        Ok(Self(v))
    }
}

/// `https://host[:port][/path]` → (host, port).
fn parse_https_url(s: &str) -> Option<(String, u16)> {
    let rest = s.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|&p| p > 0)?),
        None => (authority, 443),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    host_ok.then(|| (host.to_owned(), port))
}

// ---- loading ---------------------------------------------------------------------------------

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let bytes = crate::read_limited(path, MAX_CONFIG_BYTES).map_err(|e| match e {
            crate::ReadError::Io(source) => ConfigError::Read {
                path: shown.clone(),
                source,
            },
            crate::ReadError::TooLarge(size) => ConfigError::TooLarge {
                path: shown.clone(),
                size,
            },
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| ConfigError::NotUtf8 {
            path: shown.clone(),
            offset: e.valid_up_to(),
        })?;
        Self::parse(&shown, text)
    }

    /// Validates config text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
        // Before the typed parse, whose messages may quote values: nothing in a config
        // may look like a secret, and its refusal names the field, never the value.
        let tree = raw::Tree::parse(text);
        if let Some(f) = tree.scan() {
            let (line, column) = line_column(text, f.offset);
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                field: f.field,
                message: f.message,
            });
        }
        let file: ConfigFile = toml::from_str(text).map_err(|e| invalid(path, text, &e))?;
        // A check across fields points at the field it names.
        let at = |segments: &[&str], field: String, message: String| {
            let (line, column) = line_column(text, tree.offset(segments));
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                field,
                message,
            }
        };
        if file.targets.is_empty() {
            return Err(at(
                &[],
                "target".into(),
                "no [[target]]: the config must describe at least one ActiveGate service".into(),
            ));
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut services: BTreeSet<(String, String, String)> = BTreeSet::new();
        for (i, t) in file.targets.iter().enumerate() {
            let (line, column) = line_column(text, t.span().start);
            let target = t.get_ref();
            if !seen.insert(target.name.0.clone()) {
                let index = i.to_string();
                return Err(at(
                    &["target", &index, "name"],
                    format!("target[{i}].name"),
                    format!(
                        "the name `{}` is used by an earlier target; names must be unique",
                        target.name
                    ),
                ));
            }
            let key = (
                target.region.to_string(),
                target.cluster.to_string(),
                target.service.to_string(),
            );
            if !services.insert(key) {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    line,
                    column,
                    field: format!("target `{}`", target.name),
                    message: format!(
                        "service `{}` in cluster `{}` ({}) is already managed by an earlier target; two targets on one service would fight",
                        target.service, target.cluster, target.region
                    ),
                });
            }
        }
        let mut targets: Vec<Target> = file
            .targets
            .into_iter()
            .map(toml::Spanned::into_inner)
            .collect();
        for (i, t) in targets.iter_mut().enumerate() {
            let index = i.to_string();
            let seg = |rest: &[&'static str]| -> Vec<String> {
                ["target", index.as_str()]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .chain(rest.iter().map(|s| (*s).to_owned()))
                    .collect()
            };
            let place = |rest: &[&'static str]| -> (Vec<String>, String) {
                (seg(rest), format!("target[{i}].{}", rest.join(".")))
            };
            let fail = |rest: &[&'static str], message: String| {
                let (segments, field) = place(rest);
                let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
                at(&segments, field, message)
            };
            let r = &t.rollout;
            if r.maximum_percent.0 < 100 || r.maximum_percent.0 < r.minimum_healthy_percent.0 {
                return Err(fail(
                    &["rollout", "maximum_percent"],
                    format!(
                        "target `{}`: rollout.maximum_percent must be at least 100 and at least minimum_healthy_percent ({} / {})",
                        t.name, r.minimum_healthy_percent.0, r.maximum_percent.0
                    ),
                ));
            }
            if let Some(v) = &t.versions
                && v.source == VersionSourceKind::Registry
                && v.repository.is_none()
            {
                return Err(fail(
                    &["versions", "source"],
                    format!(
                        "target `{}`: versions.source = \"registry\" needs versions.repository",
                        t.name
                    ),
                ));
            }
            let p = &t.probe;
            let trusts = usize::from(p.ca_bundle.is_some())
                + usize::from(p.pin_sha256.is_some())
                + usize::from(p.insecure);
            if trusts > 1 {
                let second = if p.ca_bundle.is_some() && p.pin_sha256.is_some() {
                    "pin_sha256"
                } else {
                    "insecure"
                };
                return Err(fail(
                    &["probe", second],
                    format!(
                        "target `{}`: set only one of probe.ca_bundle, probe.pin_sha256 and probe.insecure",
                        t.name
                    ),
                ));
            }
            // awsvpc's limits (ECS API reference, AwsVpcConfiguration): the service,
            // and every task set the engine creates from it, would be refused.
            let n = &t.network;
            let vpc = crate::model::service::AwsVpcConfiguration {
                subnets: n.subnets.0.iter().map(ToString::to_string).collect(),
                security_groups: n.security_groups.iter().map(ToString::to_string).collect(),
                assign_public_ip: "DISABLED".into(),
            };
            if let Some(v) = crate::model::limits::awsvpc("network", &vpc)
                .into_iter()
                .next()
            {
                let key = if v.field.ends_with("subnets") {
                    "subnets"
                } else {
                    "security_groups"
                };
                return Err(fail(
                    &[
                        "network",
                        if key == "subnets" {
                            "subnets"
                        } else {
                            "security_groups"
                        },
                    ],
                    format!("found {}; allowed: {} ({})", v.found, v.allowed, v.source),
                ));
            }
            // Where each setting was written, for refusals the translator makes later.
            for key in LOCATED_SETTINGS {
                let segments: Vec<&str> = ["target", index.as_str()]
                    .into_iter()
                    .chain(key.split('.'))
                    .collect();
                let (line, column) = line_column(text, tree.offset(&segments));
                t.locations.insert(
                    (*key).to_owned(),
                    crate::translate::Where::at(path, line as u64, column as u64),
                );
            }
        }
        Ok(Config {
            path: path.to_owned(),
            base_dir: Path::new(path)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            aws: file.aws,
            daemon: file.daemon,
            targets,
        })
    }

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

impl Target {
    /// The target's mesh, when it has one: names, the destination's address source and port.
    pub fn mesh_spec(&self, config: &Config) -> Option<crate::mesh::Spec> {
        use crate::mesh::{AddressSource, Source, Spec, consul};
        let m = self.mesh.as_ref()?;
        let entry = self.entry_point.as_ref().map(EntryPointUrl::entry_point);
        let entry_name = entry
            .as_ref()
            .filter(|e| e.host.parse::<std::net::IpAddr>().is_err())
            .map(|e| (e.host.clone(), e.port));
        let probe_port = self.probe.port.unwrap_or(9999);
        let (addresses, port) = match (&m.address, &entry_name, m.task_addresses) {
            (_, _, true) => (AddressSource::Tasks, probe_port),
            (Some(a), _, false) => (
                AddressSource::Stable(a.0.clone()),
                entry.as_ref().map_or(probe_port, |e| e.port),
            ),
            (None, Some((host, port)), false) => (AddressSource::Stable(host.clone()), *port),
            (None, None, false) => (AddressSource::Tasks, probe_port),
        };
        Some(Spec {
            service: m
                .service
                .as_ref()
                .map_or_else(|| self.service.to_string(), |s| s.0.clone()),
            namespace: m.namespace.as_ref().map(|n| n.0.clone()),
            gateway: m.terminating_gateway.0.clone(),
            addresses,
            port: m.port.unwrap_or(port),
            sources: m
                .sources
                .iter()
                .map(|s| Source {
                    name: s.name.0.clone(),
                    namespace: s.namespace.as_ref().map(|n| n.0.clone()),
                })
                .collect(),
            exclude_cidrs: m.exclude_cidrs.iter().map(|c| c.0.clone()).collect(),
            consul: m.consul_address.as_ref().map(|a| consul::Settings {
                address: a.0.clone(),
                token_env: m.token_env.clone(),
                datacenter: m.datacenter.as_ref().map(|d| d.0.clone()),
                ca_bundle: m.ca_bundle.as_ref().map(|p| config.resolve(p)),
            }),
            envoy_admin: m.envoy_admin.as_ref().map(|e| e.0.clone()),
        })
    }

    /// What the translator needs from this target.
    pub fn translate_settings(&self) -> Settings {
        Settings {
            target: Some(self.name.0.clone()),
            family: self.family.clone(),
            cluster: Some(self.cluster.clone()),
            service: Some(self.service.clone()),
            image: self.image.as_ref().map(|i| i.0.clone()),
            execution_role_arn: Some(self.execution_role_arn.clone()),
            task_role_arn: self.task_role_arn.clone(),
            logs: Some(LogSettings {
                group: self.logs.group.clone(),
                region: self.region.clone(),
                stream_prefix: self.logs.stream_prefix.0.clone(),
            }),
            tenant_token: Some(self.secrets.tenant_token.clone()),
            auth_token: self.secrets.auth_token.clone(),
            registry_credentials: self.secrets.registry_credentials.clone(),
            environment: self.environment.to_map(),
            entry_point: self.entry_point.as_ref().map(EntryPointUrl::entry_point),
            container_health_check: Some(self.container_health_check),
            desired_count: self.desired_count.as_ref().map(|d| d.0),
            subnets: self.network.subnets.0.clone(),
            security_groups: self.network.security_groups.clone(),
            assign_public_ip: self.network.assign_public_ip,
            service_registry_arn: self
                .service_discovery
                .as_ref()
                .map(|s| s.registry_arn.clone()),
            target_group_arn: self
                .load_balancer
                .as_ref()
                .map(|l| l.target_group_arn.clone()),
            at: self.locations.clone(),
        }
    }
}

// ---- error locations ---------------------------------------------------------------------------

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The key of a `key = value` line, if it is one.
fn key_of(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.starts_with('[') || t.starts_with('#') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    let k = k.trim().trim_matches('"');
    let ok = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    ok.then(|| k.to_owned())
}

/// The TOML path of the key whose value (or name) starts at `offset`, e.g.
/// `target[1].logs.retention_days`: the nearest table header above it, with
/// the index of its `[[target]]`, plus the key.
fn field_at(text: &str, offset: usize) -> String {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let line_start = text[..offset].rfind('\n').map_or(0, |p| p + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |p| offset + p);
    let line = &text[line_start..line_end];
    let before = &text[line_start..offset];
    // A value: the key on its line. A key (unknown-field errors point at it): the word there.
    let mut key = if before.contains('=') {
        key_of(line)
    } else if before.trim().is_empty() && !line.trim_start().starts_with('[') {
        let word: String = text[offset..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        (!word.is_empty()).then_some(word)
    } else {
        None
    };
    let mut above: Vec<&str> = text[..line_start].lines().collect();
    if line.trim_start().starts_with('[') {
        // An error about a table header (a duplicate table): the header is the field.
        above.push(line);
    }
    let mut header = String::new();
    let mut header_index = 0;
    for (i, l) in above.iter().enumerate().rev() {
        let t = l.trim();
        if t.starts_with('[') {
            header = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            header_index = i;
            break;
        }
        // Inside a multi-line array: the key that opened it.
        if key.is_none() {
            key = key_of(l);
        }
    }
    if header == "target" || header.starts_with("target.") {
        let n = above[..=header_index]
            .iter()
            .filter(|l| l.trim() == "[[target]]")
            .count();
        header = format!(
            "target[{}]{}",
            n.saturating_sub(1),
            &header["target".len()..]
        );
    }
    match (header.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{header}.{k}"),
        (false, None) => header,
        (true, None) => "(top level)".into(),
    }
}

/// Adds "did you mean" to an unknown-field message.
fn suggest(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| {
            (
                strsim::levenshtein(&unknown.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                *c,
            )
        })
        .min();
    match best {
        Some((d, c)) if d <= (unknown.len() / 3).max(2) => {
            format!("{message}; did you mean `{c}`?")
        }
        _ => message.to_owned(),
    }
}

/// Whether a field names or holds a secret: its value is never repeated.
fn is_secret_field(field: &str) -> bool {
    field.contains("secrets.") || field.contains("environment.DT_") || field.starts_with("DT_")
}

fn invalid(path: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let start = e.span().map_or(0, |s| s.start);
    let (line, column) = line_column(text, start);
    let field = if e.span().is_some() {
        field_at(text, start)
    } else {
        "(file)".into()
    };
    let mut message = suggest(e.message());
    // A parser's message may quote the value ("invalid type: string \"…\""): for a
    // field that names a secret, the value as written is replaced by its shape.
    if is_secret_field(&field)
        && let Some(span) = e.span()
    {
        let end = floor_char_boundary(text, span.end.min(text.len()));
        let raw = &text[floor_char_boundary(text, span.start)..end];
        let inner = raw.trim().trim_matches(|c| c == '"' || c == '\'');
        for v in [raw, inner] {
            if !v.is_empty() {
                message = message.replace(v, &crate::model::secret::shape(inner));
            }
        }
    }
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        field: bounded(&crate::model::secret::scrub(&field), 128),
        message: bound_quotes(&crate::model::secret::scrub(&message)),
    }
}

/// At most `max` characters, with the length of the rest.
fn bounded(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_owned()
    } else {
        format!("{}… ({n} chars)", s.chars().take(max).collect::<String>())
    }
}

/// A parser's message with every quoted part (between backticks or double quotes)
/// cut to 64 characters: a key or value of a megabyte is not repeated.
fn bound_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4096));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().expect("found above");
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let close = rest.find(quote).unwrap_or(rest.len());
        out.push_str(&bounded(&rest[..close], 64));
        rest = &rest[close..];
        if let Some(q) = rest.strip_prefix(quote) {
            out.push(quote);
            rest = q;
        }
    }
    out.push_str(rest);
    bounded(&out, 2048)
}

#[cfg(test)]
mod tests;

mod raw;

/// Settings whose place the translator may need for a refusal.
const LOCATED_SETTINGS: &[&str] = &[
    "name",
    "image",
    "family",
    "service",
    "entry_point",
    "probe",
    "network.subnets",
    "network.security_groups",
    "load_balancer.target_group_arn",
    "service_discovery.registry_arn",
    "environment.DT_TENANT",
    "environment.DT_SERVER",
    "environment.DT_NETWORK_ZONE",
    "environment.DT_CAPABILITIES",
    "environment.DT_GROUP",
    "environment.DT_DEPLOYMENT_METADATA",
    "environment.DT_IGNORE_CLUSTER_RUNTIME_INFO",
];

// ---- wiring into the engine -----------------------------------------------------------------

impl Target {
    /// How the rollout engine verifies revisions of this target.
    pub fn verify_policy(&self) -> crate::rollout::VerifyPolicy {
        crate::rollout::VerifyPolicy {
            interval: self.probe.interval_seconds.duration(),
            grace: self.probe.grace_seconds.duration(),
            healthy_after: self.probe.healthy_after.0,
            unhealthy_after: self.probe.unhealthy_after.0,
            bake: self.rollout.bake_seconds.duration(),
            deadline: self.rollout.deadline_seconds.duration(),
        }
    }

    /// The probe settings; the port and path default to the manifest's readinessProbe.
    pub fn probe_settings(
        &self,
        config: &Config,
        readiness: &crate::translate::Readiness,
    ) -> Result<crate::health::ProbeSettings, ConfigError> {
        use crate::health::Trust;
        let p = &self.probe;
        let trust = if let Some(bundle) = &p.ca_bundle {
            let path = config.resolve(bundle);
            let pem = std::fs::read(&path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            Trust::CaBundle(pem)
        } else if let Some(pin) = &p.pin_sha256 {
            Trust::Pin(
                crate::health::pin::parse_pin(&pin.0).expect("checked when the config was read"),
            )
        } else if p.insecure {
            Trust::Insecure
        } else {
            let (line, column) = self
                .locations
                .get("probe")
                .and_then(|w| w.line_column)
                .unwrap_or((1, 1));
            return Err(ConfigError::Invalid {
                path: config.path.clone(),
                line: usize::try_from(line).unwrap_or(1),
                column: usize::try_from(column).unwrap_or(1),
                field: format!("target `{}` probe", self.name),
                message: format!(
                    "target `{}`: set probe.ca_bundle, probe.pin_sha256 or probe.insecure = true; ActiveGate's certificate is self-signed by default, so the daemon must be told whom to trust",
                    self.name
                ),
            });
        };
        Ok(crate::health::ProbeSettings {
            port: p.port.unwrap_or(readiness.port),
            path: p
                .path
                .as_ref()
                .map_or_else(|| readiness.path.clone(), |x| x.0.clone()),
            timeout: p.timeout_seconds.duration(),
            body_match: p.body_match.clone(),
            trust,
        })
    }

    /// The target's schedule in its time zone, if it has one.
    pub fn schedule(&self) -> Option<crate::daemon::schedule::Schedule> {
        let text = self.schedule.as_ref()?;
        crate::daemon::schedule::Schedule::parse(&text.0, &self.timezone.0).ok()
    }

    /// The deployment settings ECS gets on every update.
    pub fn deployment(&self) -> crate::model::service::DeploymentConfiguration {
        crate::rollout::deployment(
            self.rollout.minimum_healthy_percent.0,
            self.rollout.maximum_percent.0,
            self.rollout.circuit_breaker,
        )
    }
}
