//! The config file's tables and fields: what a user writes. Every table refuses
//! keys it does not know (`deny_unknown_fields`); the field types live in
//! [`super::values`] and parse themselves. The commented example
//! `config/activegate-lifecycle.toml` shows every field in place.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Place;
use super::values::*;
use crate::model::aws::{
    Cluster, EcsName, LogGroupName, Region, RoleArn, SecretArn, SecretsManagerArn, SecurityGroupId,
    ServiceRegistryArn, SubnetId, TargetGroupArn,
};
use crate::model::schedule::{Schedule, Window};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub aws: AwsSettings,
    #[serde(default)]
    pub daemon: DaemonSettings,
    #[serde(rename = "target", default)]
    pub targets: Vec<toml::Spanned<Target>>,
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
    TimezoneName(chrono_tz::UTC)
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
    /// Example: `max_attempts = 6` (the default; 1 to 20).
    #[serde(default = "default_attempts")]
    pub max_attempts: Attempts,
    /// Client-side token buckets per account and region, one per ECS throttling family
    /// (`[aws.rate_limits]`): the daemon waits for a token rather than being throttled.
    #[serde(default)]
    pub rate_limits: RateLimitSettings,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            max_attempts: default_attempts(),
            rate_limits: RateLimitSettings::default(),
        }
    }
}

/// `[aws.rate_limits]`: one optional table per ECS throttling family, e.g.
/// `services = { burst = 100, per_second = 20 }`. A family or a field left out keeps
/// ECS's documented bucket (API reference, "Request throttling for the Amazon ECS API").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// DescribeServices, ListServices and the other ECS Describe*/List* reads.
    /// Default `{ burst = 100, per_second = 20 }`.
    #[serde(default)]
    pub services: Option<BucketSettings>,
    /// ListTasks and DescribeTasks (one bucket in ECS). Default `{ burst = 100, per_second = 20 }`.
    #[serde(default)]
    pub tasks: Option<BucketSettings>,
    /// CreateService, UpdateService, DeleteService and the task-set writes.
    /// Default `{ burst = 50, per_second = 5 }`.
    #[serde(default)]
    pub service_writes: Option<BucketSettings>,
    /// RegisterTaskDefinition and DeregisterTaskDefinition. Default `{ burst = 20, per_second = 1 }`:
    /// an update of 1,000 targets at once takes at least ~17 minutes.
    #[serde(default)]
    pub task_definitions: Option<BucketSettings>,
    /// List/DescribeServiceDeployments and StopServiceDeployment.
    /// Default `{ burst = 50, per_second = 20 }`.
    #[serde(default)]
    pub service_deployments: Option<BucketSettings>,
    /// Tags, CloudWatch Logs and everything else. Default `{ burst = 100, per_second = 20 }`.
    #[serde(default)]
    pub other: Option<BucketSettings>,
}

/// One token bucket: `burst` calls at once, refilled at `per_second` calls a second.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSettings {
    /// Calls that may go at once, at least 1. Example: `burst = 100`.
    #[serde(default)]
    pub burst: Option<Burst>,
    /// Tokens added a second, above 0 and at most 10000. Example: `per_second = 20`.
    #[serde(default)]
    pub per_second: Option<PerSecond>,
}

fn default_session_name() -> SessionName {
    SessionName("activegate-lifecycle".into())
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
    /// An IAM role the daemon assumes for this target's AWS calls (a target in another
    /// account), e.g. `arn:aws:iam::210987654321:role/activegate-lifecycle`. Without it, the
    /// daemon's own credentials are used.
    #[serde(default)]
    pub role_arn: Option<RoleArn>,
    /// The external ID the role's trust policy requires (`sts:ExternalId`), 1 to 1224 of
    /// letters, digits and `_+=,.@:/-`, e.g. `external_id = "ag-lifecycle-prod"`. Never printed.
    #[serde(default)]
    pub external_id: Option<ExternalId>,
    /// The role session's name, as CloudTrail shows it: 2 to 64 of letters, digits and
    /// `_+=,.@-`. Default `activegate-lifecycle`.
    #[serde(default = "default_session_name")]
    pub role_session_name: SessionName,
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
    pub schedule: Option<CronSchedule>,
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
    pub locations: BTreeMap<String, Place>,
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
    /// The variables as the task definition gets them.
    pub fn to_map(&self) -> BTreeMap<String, String> {
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
    pub fn window(&self) -> Window {
        Window {
            days: self.days.0.iter().map(|d| d.0).collect(),
            from: self.from.0,
            to: self.to.0,
        }
    }
}

impl Target {
    /// The target's schedule in its time zone, if it has one (parsed at load).
    pub fn schedule(&self) -> Option<Schedule> {
        self.schedule.as_ref().map(|s| s.0.clone())
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
