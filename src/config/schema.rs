//! The config file's tables and fields: what a user writes. Every table refuses
//! keys it does not know (`deny_unknown_fields`); the field types live in
//! [`super::values`] and parse themselves. The commented example
//! `config/activegate-lifecycle.toml` shows every field in place.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Place;
use super::values::*;
use crate::model::aws::{Cluster, EcsName, Region, RoleArn};
use crate::model::schedule::Schedule;

mod tables;
pub use tables::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    /// How the daemon reaches AWS (`[aws]`).
    #[serde(default)]
    pub aws: AwsSettings,
    /// The daemon's own settings (`[daemon]`).
    #[serde(default)]
    pub daemon: DaemonSettings,
    /// The ActiveGate services to keep, one `[[target]]` each (at least one).
    #[serde(rename = "target", default)]
    pub targets: Vec<toml::Spanned<Target>>,
}

/// The daemon's own settings (`run`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSettings {
    /// Address of the status server (`/healthz`, `/status`, `/metrics`, `POST /trigger`).
    /// Example: `status_listen = "127.0.0.1:8080"` (the default).
    #[serde(default = "default_status_listen")]
    pub status_listen: std::net::SocketAddr,
    /// On SIGTERM, how long an in-flight rollout may take to finish or roll back.
    /// Example: `shutdown_deadline_seconds = 100` (default 600; on Fargate under the 120 s stop timeout).
    #[serde(default = "default_shutdown_deadline")]
    pub shutdown_deadline_seconds: Seconds,
    /// The environment variable holding the bearer token `POST /trigger` requires;
    /// without the variable set, the trigger endpoint is off.
    /// Example: `trigger_token_env = "ACTIVEGATE_LIFECYCLE_TRIGGER_TOKEN"` (the default).
    #[serde(default = "default_token_env")]
    pub trigger_token_env: String,
    /// Targets of different groups rolled at the same time, at most.
    /// Example: `max_parallel = 4` (the default; 1 to 100).
    #[serde(default = "four")]
    pub max_parallel: Count,
    /// Send rollout outcomes to Dynatrace as events.
    /// Example: `[daemon.events]` with `environment_url = "https://abc12345.live.dynatrace.com"`.
    #[serde(default)]
    pub events: Option<EventSettings>,
    /// Several writers on one fleet (replicas, a person's `rollout`): who may write which
    /// target, through a DynamoDB lease table. Unset: one process, no lease.
    /// Example: `[daemon.lease]` with `table = "activegate-lifecycle-leases"`.
    #[serde(default)]
    pub lease: Option<super::lease::LeaseSettings>,
}

/// Where rollout events go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// The Dynatrace environment, e.g. `https://abc12345.live.dynatrace.com`.
    pub environment_url: EndpointUrl,
    /// The environment variable holding an API token with the `events.ingest` scope.
    /// Example: `token_env = "DT_API_TOKEN"` (the default).
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
            lease: None,
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
    /// An explicit endpoint for ECS, CloudWatch Logs and STS (the simulator, a VPC
    /// endpoint); a target's own `endpoint_url` wins over it. Without either the SDK
    /// resolves one (`AWS_ENDPOINT_URL` included).
    /// Example: `endpoint_url = "http://127.0.0.1:4566"` (the simulator).
    #[serde(default)]
    pub endpoint_url: Option<EndpointUrl>,
    /// Attempts per AWS call, the first included (retries back off exponentially).
    /// Example: `max_attempts = 6` (the default; 1 to 20).
    #[serde(default = "default_attempts")]
    pub max_attempts: Attempts,
    /// Client-side token buckets per account and region, one per ECS throttling family
    /// (`[aws.rate_limits]`): the daemon waits for a token rather than being throttled.
    /// Example: `[aws.rate_limits]` with `task_definitions = { burst = 20, per_second = 1 }`.
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
    /// Example: `strategy = "blue-green"` (the default) or `"rolling"`.
    #[serde(default)]
    pub strategy: StrategyName,
    /// The name of the blue/green service `rollout --migrate` creates beside a rolling one
    /// (default: the service's name with `-bg`). Example: `migrate_to = "activegate-bg"`.
    #[serde(default)]
    pub migrate_to: Option<EcsName>,
    /// Rolling: the share of the desired count ECS keeps running during an update, 0 to 200.
    /// Example: `minimum_healthy_percent = 100` (the default).
    #[serde(default = "hundred")]
    pub minimum_healthy_percent: Percent,
    /// Rolling: the share of the desired count ECS may run during an update, 100 to 200 and at
    /// least `minimum_healthy_percent`. Example: `maximum_percent = 200` (the default).
    #[serde(default = "two_hundred")]
    pub maximum_percent: Percent,
    /// Rolling: ECS's deployment circuit breaker, with roll-back (ECS has none for task sets).
    /// Example: `circuit_breaker = true` (the default).
    #[serde(default = "yes")]
    pub circuit_breaker: bool,
    /// Managed revisions kept registered (the last good one is always kept); 0, the
    /// default, deregisters nothing: IAM grants `ecs:DeregisterTaskDefinition` only on
    /// every task definition of the account (`*`), which the shipped policy leaves out.
    /// Example: `keep_revisions = 5`.
    #[serde(default = "keep_none")]
    pub keep_revisions: KeepRevisions,
    /// A rollout not verified by then is rolled back.
    /// Example: `deadline_seconds = 1800` (the default).
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
    /// Example: `port = 9999`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Default: the manifest's readinessProbe path, else `/rest/health`.
    #[serde(default)]
    pub path: Option<ProbePath>,
    /// Seconds between two probes of a task. Example: `interval_seconds = 15` (the default).
    #[serde(default = "default_interval")]
    pub interval_seconds: Seconds,
    /// Seconds one probe may take. Example: `timeout_seconds = 2` (the default).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: Seconds,
    /// How long a new task may fail its probes before that counts.
    /// Example: `grace_seconds = 120` (the default).
    #[serde(default = "default_grace")]
    pub grace_seconds: Seconds,
    /// Consecutive 2xx answers that make a task healthy.
    /// Example: `healthy_after = 3` (the default; 1 to 100).
    #[serde(default = "three")]
    pub healthy_after: Count,
    /// Consecutive failures (after the grace period) that make a task unhealthy.
    /// Example: `unhealthy_after = 3` (the default; 1 to 100).
    #[serde(default = "three")]
    pub unhealthy_after: Count,
    /// Text a healthy answer must contain, e.g. `RUNNING`.
    #[serde(default)]
    pub body_match: Option<String>,
    /// PEM file of the CA(s) that sign the ActiveGate certificates (with IP SANs).
    /// Relative to the config file. Example: `ca_bundle = "activegate-ca.pem"`.
    #[serde(default)]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// SHA-256 of the ActiveGate certificate's public key (hex or base64).
    /// Example: `pin_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`.
    #[serde(default)]
    pub pin_sha256: Option<PinText>,
    /// Trust any certificate. Only when set explicitly; warned about at every start.
    /// Example: `insecure = true` (default false).
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
    /// Example: `name = "prod-eu"`.
    pub name: TargetName,
    /// The AWS region of the cluster. Example: `region = "eu-central-1"`.
    pub region: Region,
    /// The ECS cluster, by name or ARN. Example: `cluster = "observability"`.
    pub cluster: Cluster,
    /// The ECS service the daemon keeps. Example: `service = "dynatrace-activegate"`.
    pub service: EcsName,
    /// Task-definition family; defaults to the manifest's workload name.
    /// Example: `family = "dynatrace-activegate"`.
    #[serde(default)]
    pub family: Option<EcsName>,
    /// The image to run; defaults to the manifest's image.
    /// Example: `image = "public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512"`.
    #[serde(default)]
    pub image: Option<ImageText>,
    /// The IAM role ECS uses to pull the image, read the secrets and write the logs.
    /// Example: `execution_role_arn = "arn:aws:iam::123456789012:role/activegate-execution"`.
    pub execution_role_arn: RoleArn,
    /// The IAM role of the ActiveGate task itself.
    /// Example: `task_role_arn = "arn:aws:iam::123456789012:role/activegate-task"`.
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
    /// This target's endpoint for ECS, CloudWatch Logs and STS, over `[aws] endpoint_url`:
    /// a fleet across regions reaches each region's VPC interface endpoint by its own name.
    /// Example: `endpoint_url = "https://vpce-0a1b2c3d4e5f-abcdefgh.ecs.eu-west-1.vpce.amazonaws.com"`.
    #[serde(default)]
    pub endpoint_url: Option<EndpointUrl>,
    /// Tasks to run; defaults to the manifest's replicas, else 2.
    /// Example: `desired_count = 2`.
    #[serde(default)]
    pub desired_count: Option<DesiredCount>,
    /// The URL OneAgents use to reach these ActiveGates (`DT_DNS_ENTRY_POINT`).
    /// Example: `entry_point = "https://activegate.observability.internal:9999/communication"`.
    #[serde(default)]
    pub entry_point: Option<EntryPointUrl>,
    /// Turn the liveness probe into an ECS container health check (needs curl in the image).
    /// Example: `container_health_check = true` (the default).
    #[serde(default = "yes")]
    pub container_health_check: bool,
    /// The tasks' awsvpc network (`[target.network]`).
    pub network: Network,
    /// Where the containers' output goes (`[target.logs]`).
    pub logs: Logs,
    /// Where the tokens are stored (`[target.secrets]`): ARNs only.
    pub secrets: Secrets,
    /// ActiveGate settings passed as environment variables (`[target.environment]`).
    #[serde(default)]
    pub environment: Environment,
    /// Cloud Map registration of the tasks (`[target.service_discovery]`).
    #[serde(default)]
    pub service_discovery: Option<ServiceDiscovery>,
    /// A target group for the tasks (`[target.load_balancer]`).
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// The Kubernetes manifest the task definition is rendered from (relative to this file).
    /// Or `env:NAME` for the variable `NAME`. Example: `manifest = "activegate.yaml"`.
    #[serde(default)]
    pub manifest: Option<std::path::PathBuf>,
    /// When `run` reconciles this target: cron with seconds, e.g. `0 30 3 * * *`.
    /// Without it, the target is reconciled at start, on SIGHUP and on trigger only.
    #[serde(default)]
    pub schedule: Option<CronSchedule>,
    /// The IANA time zone of `schedule`.
    /// Example: `timezone = "Europe/Berlin"` (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: TimezoneName,
    /// A random delay of up to this many seconds after each scheduled time.
    /// Example: `jitter_seconds = 300`.
    #[serde(default)]
    pub jitter_seconds: Option<Seconds>,
    /// Targets of one group (e.g. one network zone) are never rolled at the same time.
    /// Example: `group = "zone-eu"`.
    #[serde(default)]
    pub group: Option<String>,
    /// Scheduled rollouts run only inside this window (start, SIGHUP and triggers are not limited).
    /// Example: `maintenance = { days = ["Sat", "Sun"], from = "02:00", to = "05:00" }`.
    #[serde(default)]
    pub maintenance: Option<MaintenanceWindow>,
    /// The availability objective in percent over 30 days; scheduled rollouts pause
    /// while its error budget is spent.
    /// Example: `slo_percent = 99.999` (the default; 90 to below 100).
    #[serde(default = "five_nines")]
    pub slo_percent: SloPercent,
    /// How a rollout is carried out (`[target.rollout]`).
    #[serde(default)]
    pub rollout: RolloutSettings,
    /// The daemon's HTTPS probe of every task (`[target.probe]`).
    #[serde(default)]
    pub probe: ProbeConfig,
    /// Where new ActiveGate versions come from; without it, the configured image is used as is.
    /// Example: `[target.versions]` with `source = "registry"`.
    #[serde(default)]
    pub versions: Option<VersionSettings>,
    /// What else a new revision must show before it is kept (`[target.verify.dynatrace]`).
    /// Example: `[target.verify.dynatrace]` with `environment_url = "https://abc12345.live.dynatrace.com"`.
    #[serde(default)]
    pub verify: Option<VerifySettings>,
    /// How applications in a Consul service mesh reach these ActiveGates.
    /// Example: `[target.mesh]` with `sources = [{ name = "frontend" }]`.
    #[serde(default)]
    pub mesh: Option<MeshSettings>,
    /// Where each setting was written (not a config field: filled at load).
    #[serde(skip)]
    pub locations: BTreeMap<String, Place>,
}

fn yes() -> bool {
    true
}

impl Target {
    /// The target's schedule in its time zone, if it has one (parsed at load).
    pub fn schedule(&self) -> Option<Schedule> {
        self.schedule.as_ref().map(|s| s.0.clone())
    }
}
