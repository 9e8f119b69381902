//! The `[target.*]` sub-tables: the mesh, version discovery, verification, network, logs,
//! secrets, environment, maintenance window, service discovery and load balancer.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::super::values::*;
use crate::model::aws::{
    LogGroupName, SecretArn, SecretsManagerArn, SecurityGroupId, ServiceRegistryArn, SubnetId,
    TargetGroupArn,
};
use crate::model::schedule::Window;

/// Consul service mesh: the ActiveGate as a terminating-gateway destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSettings {
    /// The ActiveGate's name in Consul; default: the ECS service name.
    /// Example: `service = "dynatrace-activegate"`.
    #[serde(default)]
    pub service: Option<ConsulName>,
    /// Its Consul namespace (Enterprise) and the custom resources' namespace.
    /// Consul Enterprise only. Example: `namespace = "observability"`.
    #[serde(default)]
    pub namespace: Option<ConsulName>,
    /// The terminating gateway's service name.
    /// Example: `terminating_gateway = "terminating-gateway"` (the default).
    #[serde(default = "default_gateway")]
    pub terminating_gateway: ConsulName,
    /// A name or address of the ActiveGates that survives rollouts (Cloud Map, a load
    /// balancer); default: the entry point's host when it is a name.
    /// Example: `address = "activegate.observability.internal"`.
    #[serde(default)]
    pub address: Option<MeshAddress>,
    /// Point the destination at the tasks' own addresses even when a stable name exists.
    /// Example: `task_addresses = true` (default false).
    #[serde(default)]
    pub task_addresses: bool,
    /// The destination port; default: the entry point's port with a stable name, else the
    /// probe port (9999).
    /// Example: `port = 9999`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Meshed services allowed to reach the ActiveGate.
    /// Example: `sources = [{ name = "frontend", namespace = "shop" }]`.
    #[serde(default)]
    pub sources: Vec<MeshSourceSettings>,
    /// Stable CIDRs (the ActiveGate subnets) for `mesh --exclusions`.
    /// Example: `exclude_cidrs = ["10.0.16.0/20"]`.
    #[serde(default)]
    pub exclude_cidrs: Vec<CidrText>,
    /// Consul's HTTP API: with it, the daemon keeps the destination current.
    /// Example: `consul_address = "https://consul.service.consul:8501"`.
    #[serde(default)]
    pub consul_address: Option<EndpointUrl>,
    /// The environment variable with the Consul ACL token.
    /// Example: `token_env = "CONSUL_HTTP_TOKEN"` (the default).
    #[serde(default = "default_consul_token_env")]
    pub token_env: String,
    /// The Consul datacenter, when not the agent's own.
    /// Example: `datacenter = "dc1"`.
    #[serde(default)]
    pub datacenter: Option<ConsulName>,
    /// PEM file with the CA of Consul's HTTPS certificate (relative to this file, or
    /// `env:NAME`), added to the system's roots.
    /// Example: `ca_bundle = "consul-ca.pem"`.
    #[serde(default)]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// The terminating gateway's Envoy admin endpoint, checked after each update.
    /// Example: `envoy_admin = "http://127.0.0.1:19000"`.
    #[serde(default)]
    pub envoy_admin: Option<EndpointUrl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSourceSettings {
    /// A meshed service allowed to reach the ActiveGate. Example: `name = "frontend"`.
    pub name: ConsulName,
    /// Its Consul namespace (Enterprise). Example: `namespace = "shop"`.
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
    /// Example: `source = "registry"`.
    pub source: VersionSourceKind,
    /// For `dynatrace-api`: the environment, e.g. `https://abc12345.live.dynatrace.com`.
    #[serde(default)]
    pub environment_url: Option<EndpointUrl>,
    /// For `dynatrace-api`: the environment variable with a PaaS / InstallerDownload token.
    /// Example: `token_env = "DT_PAAS_TOKEN"` (the default).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The image repository, e.g. `public.ecr.aws/dynatrace/dynatrace-activegate`.
    #[serde(default)]
    pub repository: Option<ImageText>,
    /// The registry's base URL, when it is not `https://<the repository's host>`.
    /// Example: `registry_url = "https://abc12345.live.dynatrace.com"`.
    #[serde(default)]
    pub registry_url: Option<EndpointUrl>,
    /// `newest`, `1.301.*`, `<= 1.303` or `>= 1.301`.
    #[serde(default = "newest")]
    pub constraint: ConstraintText,
    /// Skip versions built fewer days ago than this.
    /// Example: `min_age_days = 7`.
    #[serde(default)]
    pub min_age_days: Option<Days>,
    /// Take the `-fips` variants.
    /// Example: `fips = true` (default false).
    #[serde(default)]
    pub fips: bool,
    /// Registry user for basic credentials (the environment ID for the environment registry).
    /// Example: `username = "abc12345"`.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the registry password or token.
    /// Example: `password_env = "DT_PAAS_TOKEN"`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Or a file holding it (relative to this config file), e.g. a mounted secret.
    /// Example: `password_file = "/run/secrets/registry-password"`.
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
    /// Example: `[target.verify.dynatrace]` with `environment_url = "https://abc12345.live.dynatrace.com"`.
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
    /// Example: `token_env = "DT_API_TOKEN"` (the default).
    #[serde(default = "default_verify_token_env")]
    pub token_env: VariableName,
    /// The network zone every new ActiveGate must report (compared case-insensitively).
    /// Example: `network_zone = "aws.eu-central-1"`.
    #[serde(default)]
    pub network_zone: Option<NetworkZone>,
    /// The ActiveGate group every new ActiveGate must report.
    /// Example: `group = "ecs-eu-central-1"`.
    #[serde(default)]
    pub group: Option<PlainValue>,
    /// When the environment cannot be asked (unreachable, 401, 403): `fail` waits until the
    /// deadline and then removes the new revision; `probe-only` keeps it on its HTTPS probes,
    /// with a warning in the outcome.
    /// Example: `on_api_error = "fail"` (the default) or `"probe-only"`.
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The subnets of the tasks, at least one (at most 16).
    /// Example: `subnets = ["subnet-0123456789abcdef0"]`.
    pub subnets: NonEmpty<SubnetId>,
    /// Their security groups, at most 5 (allow 9999 inbound from the OneAgents).
    /// Example: `security_groups = ["sg-0123456789abcdef0"]`.
    #[serde(default)]
    pub security_groups: Vec<SecurityGroupId>,
    /// Example: `assign_public_ip = false` (the default).
    #[serde(default)]
    pub assign_public_ip: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// The CloudWatch Logs group. Example: `group = "/ecs/dynatrace-activegate"`.
    pub group: LogGroupName,
    /// Days the group keeps the output, one of CloudWatch's values. Example: `retention_days = 30` (the default).
    #[serde(default = "default_retention")]
    pub retention_days: RetentionDays,
    /// The awslogs stream prefix. Example: `stream_prefix = "activegate"` (the default).
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
    /// Secrets Manager secret or SSM parameter of the tenant token.
    /// Example: `tenant_token = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:dt/tenant-AbCdEf"`.
    pub tenant_token: SecretArn,
    /// The same for the ActiveGate auth token.
    /// Example: `auth_token = "arn:aws:ssm:eu-central-1:123456789012:parameter/dt/auth-token"`.
    #[serde(default)]
    pub auth_token: Option<SecretArn>,
    /// A Secrets Manager secret with the registry's `username` and `password`.
    /// Example: `registry_credentials = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:dt/pull-AbCdEf"`.
    #[serde(default)]
    pub registry_credentials: Option<SecretsManagerArn>,
}

/// ActiveGate settings passed as environment variables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The environment ID. Example: `DT_TENANT = "abc12345"`.
    #[serde(rename = "DT_TENANT", default)]
    pub tenant: Option<TenantId>,
    /// Example: `DT_SERVER = "https://abc12345.live.dynatrace.com:443/communication"`.
    #[serde(rename = "DT_SERVER", default)]
    pub server: Option<ServerList>,
    /// Example: `DT_NETWORK_ZONE = "aws.eu-central-1"`.
    #[serde(rename = "DT_NETWORK_ZONE", default)]
    pub network_zone: Option<NetworkZone>,
    /// Example: `DT_CAPABILITIES = "MSGrouter,restInterface"`.
    #[serde(rename = "DT_CAPABILITIES", default)]
    pub capabilities: Option<CapabilityList>,
    /// Example: `DT_GROUP = "ecs-eu-central-1"`.
    #[serde(rename = "DT_GROUP", default)]
    pub group: Option<PlainValue>,
    /// Example: `DT_DEPLOYMENT_METADATA = "orchestration_tech=ecs"`.
    #[serde(rename = "DT_DEPLOYMENT_METADATA", default)]
    pub deployment_metadata: Option<PlainValue>,
    /// Example: `DT_IGNORE_CLUSTER_RUNTIME_INFO = true`.
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
    /// Example: `days = ["Sat", "Sun"]`.
    pub days: NonEmpty<DayName>,
    /// Example: `from = "02:00"`.
    pub from: ClockTime,
    /// Before `from`: the window runs past midnight. Example: `to = "05:00"`.
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDiscovery {
    /// Example: `registry_arn = "arn:aws:servicediscovery:eu-central-1:123456789012:service/srv-0123456789abcdef"`.
    pub registry_arn: ServiceRegistryArn,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSettings {
    /// Example: `target_group_arn = "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/ag/0123456789abcdef"`.
    pub target_group_arn: TargetGroupArn,
}
