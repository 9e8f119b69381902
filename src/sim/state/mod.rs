//! Everything the simulator knows, behind one `std::sync::Mutex` (never held
//! across an `.await`): clusters, task definitions, services with their
//! deployments, tasks, log groups, image behaviours, faults, the timeline. The service
//! types are in `services`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod services;

pub use services::{
    Controller, Deployment, DeploymentSettings, DeploymentStatus, Rollback, RolloutState, Service,
    ServiceDeployment, ServiceRevision, TaskSet, TaskSetStatus,
};

/// How a simulated ActiveGate image behaves once its task is RUNNING.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Healthy once `start_seconds` have passed.
    Healthy,
    /// Answers 503 forever.
    NeverHealthy,
    /// Healthy after `start_seconds`, then 503 from `after_seconds` on.
    FailsAfter,
    /// Healthy after `start_seconds`; the process exits with `exit_code` at `after_seconds`.
    CrashesAfter,
    /// Accepts connections and never answers.
    Hangs,
    /// Healthy, but presents a certificate not signed by the simulator's CA.
    WrongCertificate,
    /// The image cannot be pulled: the task stops before RUNNING.
    PullFails,
}

/// An image's behaviour, set through the control API. Times are simulated seconds
/// counted from the moment the task is RUNNING.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    pub mode: Mode,
    #[serde(default)]
    pub start_seconds: Option<f64>,
    #[serde(default)]
    pub after_seconds: Option<f64>,
    #[serde(default)]
    pub exit_code: Option<i32>,
}

impl Behaviour {
    pub fn healthy() -> Self {
        Self {
            mode: Mode::Healthy,
            start_seconds: None,
            after_seconds: None,
            exit_code: None,
        }
    }

    pub fn of(mode: Mode) -> Self {
        Self {
            mode,
            ..Self::healthy()
        }
    }
}

/// The answer of a fake ActiveGate `age` simulated seconds after RUNNING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Up,
    Failing,
    Hung,
}

impl Behaviour {
    pub fn health(&self, age: f64, default_start: f64) -> Health {
        let start = self.start_seconds.unwrap_or(default_start);
        let after = self.after_seconds.unwrap_or(f64::INFINITY);
        match self.mode {
            Mode::Hangs => Health::Hung,
            Mode::NeverHealthy => Health::Failing,
            _ if age < start => Health::Starting,
            Mode::FailsAfter if age >= after => Health::Failing,
            _ => Health::Up,
        }
    }
}

/// A fault injected into one operation (or `*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Fraction of calls answered with ThrottlingException.
    #[serde(default)]
    pub throttle: f64,
    /// Fraction of calls answered with HTTP 500 (ServerException).
    #[serde(default)]
    pub error: f64,
    /// Fraction of calls whose connection is dropped without an answer.
    #[serde(default)]
    pub drop: f64,
    /// Real milliseconds added before answering.
    #[serde(default)]
    pub latency_ms: u64,
}

/// One ECS write call as the simulator received it: who made it (the SDK's user agent,
/// which carries the client's app name), what it asked for, and when (simulated time).
/// Fleet work (issue #16) needs to tell which caller wrote what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteCall {
    /// Simulated seconds since the epoch.
    pub time: f64,
    /// The ECS operation, e.g. `UpdateService`.
    pub operation: String,
    /// The resource named by the request (ARN or name), empty when it names none.
    pub resource: String,
    /// `x-amz-user-agent`, else `User-Agent`; empty when the caller sent neither.
    pub user_agent: String,
    /// The access key id of the call's SigV4 signature; empty when it was not signed.
    #[serde(default)]
    pub access_key: String,
}

/// Temporary credentials STS AssumeRole handed out. The secret access key is not kept
/// and the session token only as its SHA-256, so that no `Debug` of the state shows either.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssuedKey {
    /// `arn:aws:iam::<account>:role/<name>`.
    pub role_arn: String,
    pub session_name: String,
    /// `arn:aws:sts::<account>:assumed-role/<name>/<session>`.
    pub assumed_role_arn: String,
    /// `AROA…:<session>`.
    pub assumed_role_id: String,
    /// Real (wall-clock) seconds since the epoch: clients compare it with their own clock.
    pub expires_at: i64,
    #[serde(skip)]
    pub session_token_sha256: [u8; 32],
}

/// The write calls kept: the newest ones, so that a long demo or benchmark cannot grow
/// the record without end.
pub const WRITE_CALLS_KEPT: usize = 10_000;

/// One state change, for tests and the demo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// Simulated seconds since the epoch.
    pub time: f64,
    pub kind: String,
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub arn: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct TaskDefinition {
    pub arn: String,
    pub family: String,
    pub revision: u32,
    pub active: bool,
    pub registered_at: f64,
    pub deregistered_at: Option<f64>,
    /// The registered members (without tags), as given.
    pub body: Map<String, Value>,
    pub tags: Vec<(String, String)>,
}

impl TaskDefinition {
    pub fn containers(&self) -> Vec<&Map<String, Value>> {
        self.body
            .get("containerDefinitions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_object).collect())
            .unwrap_or_default()
    }

    /// The first essential container (the ActiveGate).
    pub fn main_container(&self) -> Option<&Map<String, Value>> {
        let cs = self.containers();
        cs.iter()
            .find(|c| c.get("essential").and_then(Value::as_bool).unwrap_or(true))
            .or(cs.first())
            .copied()
    }

    pub fn port(&self) -> u16 {
        self.main_container()
            .and_then(|c| c.get("portMappings"))
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .and_then(|p| p.get("containerPort"))
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(9999)
    }

    pub fn image(&self) -> String {
        self.main_container()
            .and_then(|c| c.get("image"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// The main container's health check: (interval, retries, start period).
    pub fn health_check(&self) -> Option<(f64, f64, f64)> {
        let hc = self.main_container()?.get("healthCheck")?;
        let get = |k: &str, d: f64| hc.get(k).and_then(Value::as_f64).unwrap_or(d);
        Some((
            get("interval", 30.0),
            get("retries", 3.0),
            get("startPeriod", 0.0),
        ))
    }

    /// `(group, stream prefix, create group)` of a container's awslogs configuration.
    pub fn awslogs(container: &Map<String, Value>) -> Option<(String, String, bool)> {
        let lc = container.get("logConfiguration")?;
        if lc.get("logDriver").and_then(Value::as_str) != Some("awslogs") {
            return None;
        }
        let opts = lc.get("options")?;
        let group = opts.get("awslogs-group")?.as_str()?.to_owned();
        let prefix = opts
            .get("awslogs-stream-prefix")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let create = opts.get("awslogs-create-group").and_then(Value::as_str) == Some("true");
        Some((group, prefix, create))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskStatus {
    Provisioning,
    Pending,
    Running,
    Deactivating,
    Stopped,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "PROVISIONING",
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Deactivating => "DEACTIVATING",
            Self::Stopped => "STOPPED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Unknown,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::Healthy => "HEALTHY",
            Self::Unhealthy => "UNHEALTHY",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub arn: String,
    pub cluster_arn: String,
    /// `(service name, deployment id)` for service tasks.
    pub service: Option<(String, String)>,
    pub task_definition: String,
    pub image: String,
    pub behaviour: Behaviour,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub status: TaskStatus,
    pub desired_running: bool,
    pub health: HealthStatus,
    /// When the health check first failed in a row, if it is failing now.
    pub failing_since: Option<f64>,
    pub created_at: f64,
    pub pull_started_at: Option<f64>,
    pub pull_stopped_at: Option<f64>,
    pub started_at: Option<f64>,
    pub stopping_at: Option<f64>,
    pub stopped_at: Option<f64>,
    /// When the current status was entered.
    pub since: f64,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<&'static str>,
    pub exit_code: Option<i32>,
    /// Stopped before RUNNING or for failed health checks: counted by the breaker.
    pub failed_to_start: bool,
    /// Whether the "state RUNNING" log line was written.
    pub reported_up: bool,
    pub tags: Vec<(String, String)>,
    pub cpu: String,
    pub memory: String,
    /// The subnet of its ENI, from the deployment's or task set's network configuration.
    pub subnet: String,
}

impl Task {
    pub fn is_healthy(&self, has_health_check: bool) -> bool {
        self.status == TaskStatus::Running
            && self.desired_running
            && (!has_health_check || self.health == HealthStatus::Healthy)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    pub timestamp: i64,
    pub message: String,
    pub ingestion_time: i64,
}

#[derive(Debug, Clone, Default)]
pub struct LogGroup {
    pub created: i64,
    pub retention_days: Option<u32>,
    pub streams: BTreeMap<String, (i64, Vec<LogEvent>)>,
    pub tags: Vec<(String, String)>,
}

/// The simulator's whole world.
#[derive(Debug, Default)]
pub struct State {
    pub region: String,
    pub account: String,
    pub clusters: BTreeMap<String, Cluster>,
    /// family → revisions in order.
    pub task_definitions: BTreeMap<String, Vec<TaskDefinition>>,
    /// (cluster name, service name) → service.
    pub services: BTreeMap<(String, String), Service>,
    pub tasks: BTreeMap<String, Task>,
    pub log_groups: BTreeMap<String, LogGroup>,
    pub images: BTreeMap<String, Behaviour>,
    pub faults: BTreeMap<String, Fault>,
    pub timeline: Vec<TimelineEvent>,
    pub calls: BTreeMap<String, u64>,
    /// Calls answered ThrottlingException, per operation.
    pub throttled: BTreeMap<String, u64>,
    /// Calls answered ThrottlingException, per access key id of their signature.
    pub throttled_by_key: BTreeMap<String, u64>,
    /// AWS calls per access key id of their signature (`unsigned` for none).
    pub calls_by_key: BTreeMap<String, u64>,
    /// STS AssumeRole's credentials, by access key id.
    pub issued_keys: BTreeMap<String, IssuedKey>,
    /// ECS write calls, oldest first, at most [`WRITE_CALLS_KEPT`].
    pub write_calls: std::collections::VecDeque<WriteCall>,
    /// Dynatrace events received at `/api/v2/events/ingest`.
    pub events: Vec<serde_json::Value>,
    /// What the Dynatrace metainfo endpoint names as the latest ActiveGate.
    pub latest_gateway_version: Option<String>,
    /// Whether the registry wants the bearer-token flow.
    pub registry_auth: bool,
    /// Dynatrace's ActiveGate list: what it sees of an image's ActiveGates (by reference).
    pub registrations: BTreeMap<String, super::dynatrace::Registration>,
    /// Dynatrace's ActiveGate list: how the API answers instead, while set.
    pub dynatrace_fault: Option<super::dynatrace::ApiFault>,
    /// OCI registry: repository → tags in publication order.
    pub registry: BTreeMap<String, Vec<super::registry::RegistryTag>>,
    /// Service revision ARN → revision.
    pub service_revisions: BTreeMap<String, ServiceRevision>,
    /// In creation order.
    pub service_deployments: Vec<ServiceDeployment>,
    pub next_id: u64,
}

impl State {
    pub fn new(region: &str, account: &str) -> Self {
        Self {
            region: region.to_owned(),
            account: account.to_owned(),
            ..Self::default()
        }
    }

    pub fn arn(&self, resource: &str) -> String {
        format!("arn:aws:ecs:{}:{}:{resource}", self.region, self.account)
    }

    /// A fresh identifier: 32 hex digits, unique in this run.
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        let mixed = self.next_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B;
        format!("{mixed:016x}{:016x}", self.next_id)
    }

    /// A fresh `ecs-svc/<19 digits>` identifier, as deployments and task sets have.
    pub fn new_ecs_svc_id(&mut self) -> String {
        self.next_id += 1;
        format!(
            "ecs-svc/{:019}",
            4_611_686_018_427_387_904u64 + self.next_id * 7_919
        )
    }

    /// A fresh service-deployment identifier: 21 letters, digits, `-` and `_`, as ECS's.
    pub fn new_deployment_token(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        self.next_id += 1;
        let mut n = self.next_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B;
        let mut out = String::with_capacity(21);
        for i in 0..21 {
            if i == 10 {
                n ^= self
                    .next_id
                    .rotate_left(17)
                    .wrapping_mul(0xBF58_476D_1CE4_E5B9);
            }
            out.push(char::from(ALPHABET[(n & 63) as usize]));
            n = n.rotate_right(6);
        }
        out
    }

    /// A fresh loopback address for a task, in 127.20.0.0–127.51.255.255.
    ///
    /// The counter is shared by every simulator in the process (tests run
    /// several at once) and starts at a random point, so that two simulator
    /// processes on one machine rarely pick the same address.
    pub fn new_ip(&mut self) -> Ipv4Addr {
        static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
        let _ = NEXT.compare_exchange(
            u32::MAX,
            fastrand::u32(0..1 << 20),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) % (1 << 21);
            let (b, c) = (((n >> 8) & 0xff) as u8, (n & 0xff) as u8);
            if c != 0 && c != 255 {
                return Ipv4Addr::new(127, 20 + (n >> 16) as u8, b, c);
            }
        }
    }

    pub fn record(&mut self, time: f64, kind: &str, subject: &str, detail: impl Into<String>) {
        self.timeline.push(TimelineEvent {
            time,
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            detail: detail.into(),
        });
    }

    /// Resolves `family`, `family:rev` or an ARN to a task definition.
    pub fn find_task_definition(&self, reference: &str) -> Option<&TaskDefinition> {
        let tail = reference
            .rsplit_once("task-definition/")
            .map_or(reference, |(_, t)| t);
        match tail.rsplit_once(':') {
            Some((family, rev)) => {
                let rev: u32 = rev.parse().ok()?;
                self.task_definitions
                    .get(family)?
                    .iter()
                    .find(|t| t.revision == rev)
            }
            None => self
                .task_definitions
                .get(tail)?
                .iter()
                .rev()
                .find(|t| t.active),
        }
    }

    /// Resolves a cluster name or ARN (default: `default`) to its name.
    pub fn cluster_name(reference: Option<&str>) -> String {
        let r = reference.unwrap_or("default");
        r.rsplit_once("cluster/").map_or(r, |(_, n)| n).to_owned()
    }

    /// Appends a log line to a task container's stream, if it logs to CloudWatch.
    pub fn write_log(
        &mut self,
        task_id: &str,
        container: Option<&str>,
        now_ms: i64,
        message: &str,
    ) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        let Some(td) = self.find_task_definition(&task.task_definition) else {
            return;
        };
        let targets: Vec<(String, String)> = td
            .containers()
            .into_iter()
            .filter(|c| container.is_none_or(|n| c.get("name").and_then(Value::as_str) == Some(n)))
            .filter_map(|c| {
                let name = c.get("name").and_then(Value::as_str)?.to_owned();
                let (group, prefix, _) = TaskDefinition::awslogs(c)?;
                let stream = if prefix.is_empty() {
                    format!("{name}/{task_id}")
                } else {
                    format!("{prefix}/{name}/{task_id}")
                };
                Some((group, stream))
            })
            .take(if container.is_some() { usize::MAX } else { 1 })
            .collect();
        for (group, stream) in targets {
            if let Some(g) = self.log_groups.get_mut(&group) {
                let entry = g
                    .streams
                    .entry(stream)
                    .or_insert_with(|| (now_ms, Vec::new()));
                entry.1.push(LogEvent {
                    timestamp: now_ms,
                    message: message.to_owned(),
                    ingestion_time: now_ms,
                });
            }
        }
    }
}
