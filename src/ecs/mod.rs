//! The only user of the AWS SDK: building clients (region, endpoint,
//! credentials, TLS), the few ECS and CloudWatch Logs calls the daemon makes,
//! retries with backoff in one place, and counters of calls per operation.

mod convert;
mod error;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ecs::types as sdk;
use aws_smithy_http_client::tls;

pub use error::EcsError;
use error::classify;

use crate::model::service::CreateService;
use crate::model::task_definition::TaskDefinition;

/// How the AWS clients are built and how hard calls are retried.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub region: String,
    /// An explicit endpoint (the simulator, a VPC endpoint); otherwise the SDK's
    /// resolution applies, including `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff; doubled per attempt, with jitter, capped at `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Per-attempt timeout.
    pub attempt_timeout: Duration,
    /// Fixed credentials instead of the default chain: for the simulator (the
    /// `demo` command and tests), never read from a config file.
    pub static_credentials: Option<(String, String)>,
}

impl ClientSettings {
    pub fn new(region: &str) -> Self {
        Self {
            region: region.to_owned(),
            endpoint_url: None,
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(20),
            static_credentials: None,
        }
    }
}

/// Calls, retries and throttles per operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CallCount {
    pub calls: u64,
    pub retries: u64,
    pub throttled: u64,
    pub failed: u64,
}

/// The ECS and CloudWatch Logs clients of one region.
#[derive(Clone)]
pub struct Aws {
    ecs: aws_sdk_ecs::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    settings: ClientSettings,
    counts: Arc<Mutex<BTreeMap<&'static str, CallCount>>>,
}

/// A service as the rollout engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceState {
    pub arn: String,
    pub name: String,
    pub status: String,
    pub task_definition: String,
    pub desired_count: u32,
    pub running_count: u32,
    pub deployments: Vec<DeploymentState>,
    /// `EXTERNAL`: task sets, no ECS deployments (blue/green); else ECS's rolling controller.
    pub external: bool,
    /// The task sets of an EXTERNAL service (none for a rolling one).
    pub task_sets: Vec<TaskSetState>,
    pub tags: BTreeMap<String, String>,
}

impl ServiceState {
    /// The PRIMARY task set of an EXTERNAL service.
    pub fn primary_task_set(&self) -> Option<&TaskSetState> {
        self.task_sets.iter().find(|t| t.status == "PRIMARY")
    }
}

/// A task set of an EXTERNAL service.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSetState {
    /// `ecs-svc/…`; tasks of the set carry it as `startedBy`.
    pub id: String,
    pub arn: String,
    /// PRIMARY, ACTIVE or DRAINING.
    pub status: String,
    pub task_definition: String,
    /// Percent of the service's desired count.
    pub scale: f64,
    pub computed_desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    /// STEADY_STATE or STABILIZING.
    pub stability_status: String,
    pub external_id: String,
}

/// A service deployment of a rolling service (ListServiceDeployments).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDeploymentState {
    pub arn: String,
    /// PENDING, IN_PROGRESS, SUCCESSFUL, STOPPED, ROLLBACK_* …
    pub status: String,
    pub target_revision: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentState {
    pub id: String,
    /// PRIMARY or ACTIVE.
    pub status: String,
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED or FAILED.
    pub rollout_state: String,
    pub rollout_state_reason: String,
    pub failed_tasks: u32,
    pub desired_count: u32,
    pub running_count: u32,
}

/// A registered task definition: what the rollout needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDefinitionState {
    pub arn: String,
    pub family: String,
    pub revision: u32,
    pub active: bool,
    pub image: String,
    /// Container name → image, environment, for `plan`.
    pub containers: Vec<(String, String, BTreeMap<String, String>)>,
    pub cpu: String,
    pub memory: String,
    pub tags: BTreeMap<String, String>,
}

/// The addresses of the RUNNING tasks among `tasks`, of `revision` only when given.
pub fn running_ips(tasks: Vec<TaskState>, revision: Option<&str>) -> Vec<String> {
    tasks
        .into_iter()
        .filter(|t| t.last_status == "RUNNING")
        .filter(|t| revision.is_none_or(|r| t.task_definition == r))
        .filter_map(|t| t.ip)
        .collect()
}

/// A task as the rollout engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub arn: String,
    pub task_definition: String,
    pub last_status: String,
    pub desired_status: String,
    pub health: String,
    pub ip: Option<String>,
    /// Seconds since the epoch.
    pub created_at: Option<f64>,
    pub started_at: Option<f64>,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<String>,
    /// Who started the task: a task set's id for the tasks of an EXTERNAL service.
    pub started_by: Option<String>,
    /// Container name → exit code.
    pub exit_codes: Vec<(String, i32)>,
}

impl TaskState {
    pub fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }
}

fn tags_map(tags: &[sdk::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect()
}

fn task_set_state(t: &sdk::TaskSet) -> TaskSetState {
    TaskSetState {
        id: t.id().unwrap_or_default().to_owned(),
        arn: t.task_set_arn().unwrap_or_default().to_owned(),
        status: t.status().unwrap_or_default().to_owned(),
        task_definition: t.task_definition().unwrap_or_default().to_owned(),
        scale: t.scale().map_or(0.0, |s| s.value()),
        computed_desired_count: n(t.computed_desired_count()),
        running_count: n(t.running_count()),
        pending_count: n(t.pending_count()),
        stability_status: t
            .stability_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        external_id: t.external_id().unwrap_or_default().to_owned(),
    }
}

fn n(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

impl Aws {
    /// Builds the clients: region and endpoint from the settings, credentials from the
    /// default chain (environment, profile, ECS task role, instance role), one rustls stack.
    ///
    /// The SDK configuration (HTTP client with its connection pool and TLS roots, credentials
    /// with their cache) is built once per runtime and settings and shared: a daemon with 1,000
    /// targets otherwise held 1,000 copies of the system's root certificates and fetched its
    /// credentials 1,000 times. Call counts stay per `Aws`.
    pub async fn connect(settings: ClientSettings) -> Aws {
        type Key = (
            Option<tokio::runtime::Id>,
            String,
            Option<String>,
            Option<(String, String)>,
            Duration,
        );
        static SHARED: Mutex<Vec<(Key, aws_config::SdkConfig)>> = Mutex::new(Vec::new());
        let key: Key = (
            tokio::runtime::Handle::try_current().ok().map(|h| h.id()),
            settings.region.clone(),
            settings.endpoint_url.clone(),
            settings.static_credentials.clone(),
            settings.attempt_timeout,
        );
        let cached = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| c.clone());
        let config = match cached {
            Some(c) => c,
            None => {
                let c = Self::sdk_config(&settings).await;
                SHARED
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((key, c.clone()));
                c
            }
        };
        Aws {
            ecs: aws_sdk_ecs::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            settings,
            counts: Arc::default(),
        }
    }

    async fn sdk_config(settings: &ClientSettings) -> aws_config::SdkConfig {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .http_client(http)
            // Retries happen in `call`, where they are counted.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(settings.attempt_timeout)
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            );
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_ecs::config::Credentials::new(
                id, secret, None, None, "static",
            ));
        }
        loader.load().await
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Calls, retries and throttles per operation so far.
    pub fn counts(&self) -> BTreeMap<&'static str, CallCount> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn count(&self, op: &'static str, f: impl FnOnce(&mut CallCount)) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(counts.entry(op).or_default());
    }

    /// Runs one call, retrying what is retriable with exponential backoff and jitter.
    async fn call<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, EcsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, EcsError>>,
    {
        let mut attempt = 0;
        loop {
            self.count(op, |c| c.calls += 1);
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let throttled = e.is_throttling();
                    self.count(op, |c| c.throttled += u64::from(throttled));
                    attempt += 1;
                    if !e.is_retriable() || attempt >= self.settings.max_attempts {
                        self.count(op, |c| c.failed += 1);
                        return Err(e);
                    }
                    self.count(op, |c| c.retries += 1);
                    let exp = self
                        .settings
                        .initial_backoff
                        .saturating_mul(1 << (attempt - 1).min(16));
                    let backoff = exp
                        .min(self.settings.max_backoff)
                        .mul_f64(0.5 + fastrand::f64() / 2.0);
                    tracing::debug!(op, attempt, error = %e, backoff_ms = backoff.as_millis() as u64, "retrying");
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// The service with its tags; `None` when it does not exist (or is INACTIVE).
    pub async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<ServiceState>, EcsError> {
        const OP: &str = "DescribeServices";
        let out = self
            .call(OP, || async {
                self.ecs
                    .describe_services()
                    .cluster(cluster)
                    .services(service)
                    .include(sdk::ServiceField::Tags)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        let Some(s) = out
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
        else {
            return Ok(None);
        };
        Ok(Some(ServiceState {
            arn: s.service_arn().unwrap_or_default().to_owned(),
            name: s.service_name().unwrap_or_default().to_owned(),
            status: s.status().unwrap_or_default().to_owned(),
            task_definition: s.task_definition().unwrap_or_default().to_owned(),
            desired_count: n(s.desired_count()),
            running_count: n(s.running_count()),
            deployments: s
                .deployments()
                .iter()
                .map(|d| DeploymentState {
                    id: d.id().unwrap_or_default().to_owned(),
                    status: d.status().unwrap_or_default().to_owned(),
                    task_definition: d.task_definition().unwrap_or_default().to_owned(),
                    rollout_state: d
                        .rollout_state()
                        .map(|r| r.as_str().to_owned())
                        .unwrap_or_default(),
                    rollout_state_reason: d.rollout_state_reason().unwrap_or_default().to_owned(),
                    failed_tasks: n(d.failed_tasks()),
                    desired_count: n(d.desired_count()),
                    running_count: n(d.running_count()),
                })
                .collect(),
            external: s
                .deployment_controller()
                .is_some_and(|c| c.r#type() == &sdk::DeploymentControllerType::External),
            task_sets: s.task_sets().iter().map(task_set_state).collect(),
            tags: tags_map(s.tags()),
        }))
    }

    /// Creates a task set of `task_definition` for an EXTERNAL service at `scale_percent`,
    /// with the service document's network and registries. `client_token` makes a retried
    /// call (an answer lost on the way) return the same task set instead of a second one.
    pub async fn create_task_set(
        &self,
        doc: &CreateService,
        task_definition: &str,
        scale_percent: f64,
        external_id: &str,
        client_token: &str,
    ) -> Result<TaskSetState, EcsError> {
        const OP: &str = "CreateTaskSet";
        let out = self
            .call(OP, || async {
                convert::create_task_set(
                    self.ecs.create_task_set(),
                    doc,
                    task_definition,
                    scale_percent,
                    external_id,
                    client_token,
                )
                .send()
                .await
                .map_err(|e| classify(OP, e))
            })
            .await?;
        out.task_set()
            .map(task_set_state)
            .ok_or(EcsError::Incomplete {
                op: OP,
                what: "taskSet",
            })
    }

    /// Sets a task set's scale in percent of the service's desired count.
    pub async fn update_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
        scale_percent: f64,
    ) -> Result<(), EcsError> {
        const OP: &str = "UpdateTaskSet";
        self.call(OP, || async {
            self.ecs
                .update_task_set()
                .cluster(cluster)
                .service(service)
                .task_set(task_set)
                .scale(
                    sdk::Scale::builder()
                        .unit(sdk::ScaleUnit::Percent)
                        .value(scale_percent)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    pub async fn update_service_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> Result<(), EcsError> {
        const OP: &str = "UpdateServicePrimaryTaskSet";
        self.call(OP, || async {
            self.ecs
                .update_service_primary_task_set()
                .cluster(cluster)
                .service(service)
                .primary_task_set(task_set)
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    /// Deletes a task set (its tasks stop); a set already gone is no error.
    pub async fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> Result<(), EcsError> {
        const OP: &str = "DeleteTaskSet";
        let r = self
            .call(OP, || async {
                self.ecs
                    .delete_task_set()
                    .cluster(cluster)
                    .service(service)
                    .task_set(task_set)
                    .force(true)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await;
        match r {
            Err(e) if e.code() == Some("TaskSetNotFoundException") => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// The service deployments of a rolling service with one of `statuses`, newest first.
    pub async fn service_deployments(
        &self,
        cluster: &str,
        service: &str,
        statuses: &[&str],
    ) -> Result<Vec<ServiceDeploymentState>, EcsError> {
        const OP: &str = "ListServiceDeployments";
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        // Bounded: a service keeps few deployments in progress; 10 pages is far beyond that.
        for _ in 0..10 {
            let out = self
                .call(OP, || async {
                    self.ecs
                        .list_service_deployments()
                        .cluster(cluster)
                        .service(service)
                        .set_status(Some(
                            statuses
                                .iter()
                                .map(|s| sdk::ServiceDeploymentStatus::from(*s))
                                .collect(),
                        ))
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify(OP, e))
                })
                .await?;
            found.extend(out.service_deployments().iter().map(|d| {
                ServiceDeploymentState {
                    arn: d.service_deployment_arn().unwrap_or_default().to_owned(),
                    status: d
                        .status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    target_revision: d
                        .target_service_revision_arn()
                        .unwrap_or_default()
                        .to_owned(),
                }
            }));
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(found)
    }

    /// Stops a service deployment in progress and returns the service to its previous
    /// revision, onto the tasks that still run it (`stopType = ROLLBACK`).
    pub async fn roll_back_service_deployment(&self, arn: &str) -> Result<(), EcsError> {
        const OP: &str = "StopServiceDeployment";
        self.call(OP, || async {
            self.ecs
                .stop_service_deployment()
                .service_deployment_arn(arn)
                .stop_type(sdk::StopServiceDeploymentStopType::Rollback)
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    pub async fn describe_task_definition(
        &self,
        reference: &str,
    ) -> Result<TaskDefinitionState, EcsError> {
        const OP: &str = "DescribeTaskDefinition";
        let out = self
            .call(OP, || async {
                self.ecs
                    .describe_task_definition()
                    .task_definition(reference)
                    .include(sdk::TaskDefinitionField::Tags)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        let td = out.task_definition().ok_or(EcsError::Incomplete {
            op: OP,
            what: "taskDefinition",
        })?;
        let containers: Vec<(String, String, BTreeMap<String, String>)> = td
            .container_definitions()
            .iter()
            .map(|c| {
                let env = c
                    .environment()
                    .iter()
                    .filter_map(|kv| {
                        Some((kv.name()?.to_owned(), kv.value().unwrap_or("").to_owned()))
                    })
                    .collect();
                (
                    c.name().unwrap_or_default().to_owned(),
                    c.image().unwrap_or_default().to_owned(),
                    env,
                )
            })
            .collect();
        let image = td
            .container_definitions()
            .iter()
            .find(|c| c.essential().unwrap_or(true))
            .and_then(|c| c.image())
            .unwrap_or_default()
            .to_owned();
        Ok(TaskDefinitionState {
            arn: td.task_definition_arn().unwrap_or_default().to_owned(),
            family: td.family().unwrap_or_default().to_owned(),
            revision: n(td.revision()),
            active: td.status().is_none_or(|s| s.as_str() == "ACTIVE"),
            image,
            containers,
            cpu: td.cpu().unwrap_or_default().to_owned(),
            memory: td.memory().unwrap_or_default().to_owned(),
            tags: tags_map(out.tags()),
        })
    }

    /// Registers a task definition with extra tags; returns its ARN.
    pub async fn register_task_definition(
        &self,
        td: &TaskDefinition,
        tags: &[(String, String)],
    ) -> Result<String, EcsError> {
        const OP: &str = "RegisterTaskDefinition";
        let out = self
            .call(OP, || async {
                convert::register(self.ecs.register_task_definition(), td, tags)?
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_owned)
            .ok_or(EcsError::Incomplete {
                op: OP,
                what: "taskDefinitionArn",
            })
    }

    pub async fn create_service(&self, doc: &CreateService) -> Result<(), EcsError> {
        const OP: &str = "CreateService";
        self.call(OP, || async {
            convert::create_service(self.ecs.create_service(), doc)
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    /// Points the service at a revision with the given deployment settings.
    pub async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        deployment: &crate::model::service::DeploymentConfiguration,
    ) -> Result<(), EcsError> {
        const OP: &str = "UpdateService";
        let dc = sdk::DeploymentConfiguration::builder()
            .minimum_healthy_percent(deployment.minimum_healthy_percent as i32)
            .maximum_percent(deployment.maximum_percent as i32)
            .deployment_circuit_breaker(
                sdk::DeploymentCircuitBreaker::builder()
                    .enable(deployment.deployment_circuit_breaker.enable)
                    .rollback(deployment.deployment_circuit_breaker.rollback)
                    .build(),
            )
            .build();
        self.call(OP, || async {
            self.ecs
                .update_service()
                .cluster(cluster)
                .service(service)
                .task_definition(task_definition)
                .deployment_configuration(dc.clone())
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    /// Sets a service's desired count, nothing else (no new deployment of a rolling service).
    pub async fn set_desired_count(
        &self,
        cluster: &str,
        service: &str,
        count: u32,
    ) -> Result<(), EcsError> {
        const OP: &str = "UpdateService";
        self.call(OP, || async {
            self.ecs
                .update_service()
                .cluster(cluster)
                .service(service)
                .desired_count(i32::try_from(count).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    pub async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), EcsError> {
        const OP: &str = "TagResource";
        if tags.is_empty() {
            return Ok(());
        }
        self.call(OP, || async {
            let mut b = self.ecs.tag_resource().resource_arn(arn);
            for (k, v) in tags {
                b = b.tags(sdk::Tag::builder().key(k).value(v).build());
            }
            b.send().await.map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    pub async fn untag(&self, arn: &str, keys: &[String]) -> Result<(), EcsError> {
        const OP: &str = "UntagResource";
        if keys.is_empty() {
            return Ok(());
        }
        self.call(OP, || async {
            self.ecs
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(keys.to_vec()))
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    /// The service's tasks, RUNNING-desired or STOPPED-desired, described.
    pub async fn tasks(
        &self,
        cluster: &str,
        service: &str,
        stopped: bool,
    ) -> Result<Vec<TaskState>, EcsError> {
        const LIST: &str = "ListTasks";
        const DESCRIBE: &str = "DescribeTasks";
        let status = if stopped {
            sdk::DesiredStatus::Stopped
        } else {
            sdk::DesiredStatus::Running
        };
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .call(LIST, || async {
                    self.ecs
                        .list_tasks()
                        .cluster(cluster)
                        .service_name(service)
                        .desired_status(status.clone())
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify(LIST, e))
                })
                .await?;
            arns.extend(out.task_arns().iter().cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut tasks = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .call(DESCRIBE, || async {
                    self.ecs
                        .describe_tasks()
                        .cluster(cluster)
                        .set_tasks(Some(chunk.to_vec()))
                        .send()
                        .await
                        .map_err(|e| classify(DESCRIBE, e))
                })
                .await?;
            tasks.extend(out.tasks().iter().map(|t| {
                TaskState {
                    arn: t.task_arn().unwrap_or_default().to_owned(),
                    task_definition: t.task_definition_arn().unwrap_or_default().to_owned(),
                    last_status: t.last_status().unwrap_or_default().to_owned(),
                    desired_status: t.desired_status().unwrap_or_default().to_owned(),
                    health: t
                        .health_status()
                        .map(|h| h.as_str().to_owned())
                        .unwrap_or_default(),
                    ip: t
                        .attachments()
                        .iter()
                        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
                        .flat_map(|a| a.details())
                        .find(|d| d.name() == Some("privateIPv4Address"))
                        .and_then(|d| d.value())
                        .map(str::to_owned),
                    created_at: t.created_at().map(|d| d.as_secs_f64()),
                    started_at: t.started_at().map(|d| d.as_secs_f64()),
                    stopped_reason: t.stopped_reason().map(str::to_owned),
                    stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
                    started_by: t.started_by().map(str::to_owned),
                    exit_codes: t
                        .containers()
                        .iter()
                        .filter_map(|c| Some((c.name()?.to_owned(), c.exit_code()?)))
                        .collect(),
                }
            }));
        }
        Ok(tasks)
    }

    /// ACTIVE revisions of a family, oldest first.
    pub async fn task_definitions(&self, family: &str) -> Result<Vec<String>, EcsError> {
        const OP: &str = "ListTaskDefinitions";
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .call(OP, || async {
                    self.ecs
                        .list_task_definitions()
                        .family_prefix(family)
                        .status(sdk::TaskDefinitionStatus::Active)
                        .sort(sdk::SortOrder::Asc)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify(OP, e))
                })
                .await?;
            // A prefix also matches longer families: keep this family only.
            arns.extend(
                out.task_definition_arns()
                    .iter()
                    .filter(|a| {
                        a.rsplit_once(':').is_some_and(|(head, _)| {
                            head.ends_with(&format!("task-definition/{family}"))
                        })
                    })
                    .cloned(),
            );
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(arns);
            }
        }
    }

    pub async fn deregister(&self, arn: &str) -> Result<(), EcsError> {
        const OP: &str = "DeregisterTaskDefinition";
        self.call(OP, || async {
            self.ecs
                .deregister_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    /// Creates the log group if it is missing and sets its retention.
    pub async fn ensure_log_group(&self, group: &str, retention_days: u32) -> Result<(), EcsError> {
        const DESCRIBE: &str = "DescribeLogGroups";
        const CREATE: &str = "CreateLogGroup";
        const RETENTION: &str = "PutRetentionPolicy";
        let out = self
            .call(DESCRIBE, || async {
                self.logs
                    .describe_log_groups()
                    .log_group_name_prefix(group)
                    .send()
                    .await
                    .map_err(|e| classify(DESCRIBE, e))
            })
            .await?;
        let existing = out
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(group));
        if existing.is_none() {
            let created = self
                .call(CREATE, || async {
                    self.logs
                        .create_log_group()
                        .log_group_name(group)
                        .send()
                        .await
                        .map_err(|e| classify(CREATE, e))
                })
                .await;
            match created {
                Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {}
                other => other.map(|_| ())?,
            }
        }
        if existing.and_then(|g| g.retention_in_days()) != Some(retention_days as i32) {
            self.call(RETENTION, || async {
                self.logs
                    .put_retention_policy()
                    .log_group_name(group)
                    .retention_in_days(retention_days as i32)
                    .send()
                    .await
                    .map_err(|e| classify(RETENTION, e))
            })
            .await?;
        }
        Ok(())
    }

    /// The last `limit` lines of a log stream (empty when it does not exist).
    pub async fn last_log_lines(
        &self,
        group: &str,
        stream: &str,
        limit: u32,
    ) -> Result<Vec<String>, EcsError> {
        const OP: &str = "GetLogEvents";
        let out = self
            .call(OP, || async {
                self.logs
                    .get_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .limit(limit as i32)
                    .start_from_head(false)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await;
        match out {
            Ok(o) => Ok(o
                .events()
                .iter()
                .filter_map(|e| e.message().map(str::to_owned))
                .collect()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}
