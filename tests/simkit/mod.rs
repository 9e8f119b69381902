//! Scenario kit: an in-process simulator, AWS SDK clients pointed at it, task
//! definitions built fluently, and waiting on conditions with a deadline; the real binary
//! (`binary`, with the one definition of its path, `binary::BIN`), run as a command line
//! (`cli`) or as a daemon measured through `/proc` (`procfs`).
//!
//! Every test and benchmark compiles this kit into its own crate with `mod simkit;` and uses
//! a part of it, so rustc would call the rest dead in each of them; the allowance is for
//! that, on the shared kit only (a test's own code still gets the lint).

#![allow(dead_code)]

pub mod binary;
pub mod cli;
pub mod compare;
pub mod fleet;
pub mod procfs;
pub mod rig;
pub mod side;

use std::future::Future;
use std::time::Duration;

use activegate_lifecycle::sim::{Behaviour, Delays, Mode, Sim, SimHandle, SimOptions};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ecs::config::{Credentials, Region};
use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, DeploymentCircuitBreaker, DeploymentConfiguration,
    HealthCheck, LogConfiguration, LogDriver, NetworkMode, PortMapping, TransportProtocol,
};
use aws_smithy_http_client::tls;

pub const CLUSTER: &str = "observability";
pub const LOG_GROUP: &str = "/ecs/activegate";

/// Simulated seconds per real second in scenarios: a 90 s start takes 0.45 s.
pub const SPEED: f64 = 200.0;

/// A rolling update (100 % / 200 %) with ECS's circuit breaker and its roll-back on or off.
pub fn deployment(breaker: bool) -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .minimum_healthy_percent(100)
        .maximum_percent(200)
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(breaker)
                .rollback(breaker)
                .build(),
        )
        .build()
}

pub struct World {
    pub sim: SimHandle,
    pub ecs: aws_sdk_ecs::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A raw SDK configuration (no client-side pacing, the product's rustls with ring) signing
/// with `creds` in `region` at `endpoint`.
pub async fn sdk_config(
    endpoint: &str,
    region: &str,
    creds: Credentials,
    retry: RetryConfig,
) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .http_client(http)
        .retry_config(retry)
        .load()
        .await
}

/// Static test credentials with `key` (the secret is no secret).
pub fn credentials(key: &str) -> Credentials {
    Credentials::new(key, "not-a-secret", None, None, "test")
}

/// The golden task definition (`tests/golden/activegate.task-definition.json`), which the
/// translator makes of the fixture manifest.
pub fn golden_task_definition() -> activegate_lifecycle::model::task_definition::TaskDefinition {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/activegate.task-definition.json"
    );
    serde_json::from_slice(&std::fs::read(path).expect("golden task definition"))
        .expect("a task definition")
}

impl World {
    /// A simulator at scenario speed, with a cluster and a log group.
    pub async fn new() -> World {
        Self::with_retries(RetryConfig::disabled()).await
    }

    pub async fn with_retries(retry: RetryConfig) -> World {
        Self::with(retry, SPEED).await
    }

    /// A simulator at `speed` simulated seconds per real second.
    pub async fn with(retry: RetryConfig, speed: f64) -> World {
        install_crypto();
        let sim = Sim::start(SimOptions {
            listen: "127.0.0.1:0".parse().expect("address"),
            speed,
            delays: Delays::default(),
            tick: Duration::from_millis(5),
            ..SimOptions::default()
        })
        .await
        .expect("the simulator starts");
        let config = sdk_config(
            sim.endpoint(),
            "us-east-1",
            credentials("AKIDSIMULATOR"),
            retry,
        )
        .await;
        let world = World {
            ecs: aws_sdk_ecs::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            sim,
        };
        world
            .ecs
            .create_cluster()
            .cluster_name(CLUSTER)
            .send()
            .await
            .expect("cluster");
        world
            .logs
            .create_log_group()
            .log_group_name(LOG_GROUP)
            .send()
            .await
            .expect("log group");
        world
    }

    /// Images start in 20 simulated seconds unless told otherwise.
    pub fn image(&self, image: &str, mode: Mode) {
        self.sim.set_image(
            image,
            Behaviour {
                start_seconds: Some(20.0),
                ..Behaviour::of(mode)
            },
        );
    }

    /// Registers a Fargate task definition for `image`; returns its ARN.
    pub async fn register(&self, image: &str, health_check: bool) -> String {
        let mut container = ContainerDefinition::builder()
            .name("activegate")
            .image(image)
            .essential(true)
            .port_mappings(
                PortMapping::builder()
                    .name("ag-https")
                    .container_port(9999)
                    .protocol(TransportProtocol::Tcp)
                    .build(),
            )
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", LOG_GROUP)
                    .options("awslogs-region", "us-east-1")
                    .options("awslogs-stream-prefix", "ag")
                    .build()
                    .expect("log configuration"),
            );
        if health_check {
            container = container.health_check(
                HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command("curl -fsk https://127.0.0.1:9999/rest/state || exit 1")
                    .interval(5)
                    .timeout(2)
                    .retries(2)
                    .start_period(60)
                    .build()
                    .expect("health check"),
            );
        }
        self.ecs
            .register_task_definition()
            .family("activegate")
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .container_definitions(container.build())
            .send()
            .await
            .expect("register")
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .expect("an ARN")
            .to_owned()
    }

    pub async fn create_service(&self, name: &str, task_definition: &str, desired: i32) {
        self.ecs
            .create_service()
            .cluster(CLUSTER)
            .service_name(name)
            .task_definition(task_definition)
            .desired_count(desired)
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .network_configuration(network())
            .deployment_configuration(deployment(true))
            .send()
            .await
            .expect("create service");
    }

    /// The image of a task definition's first container.
    pub async fn image_of(&self, task_definition: &str) -> Option<String> {
        self.ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .expect("describe task definition")
            .task_definition()
            .and_then(|t| t.container_definitions().first())
            .and_then(|c| c.image())
            .map(str::to_owned)
    }

    pub async fn service(&self, name: &str) -> aws_sdk_ecs::types::Service {
        self.ecs
            .describe_services()
            .cluster(CLUSTER)
            .services(name)
            .send()
            .await
            .expect("describe services")
            .services()
            .first()
            .cloned()
            .expect("the service exists")
    }

    /// Waits until the service's newest deployment is COMPLETED; returns the service.
    pub async fn until_completed(&self, name: &str) -> aws_sdk_ecs::types::Service {
        until(self.sim.real(600.0), || async {
            let s = self.service(name).await;
            let d = s.deployments().first()?;
            (d.rollout_state().map(|r| r.as_str()) == Some("COMPLETED")
                && s.deployments().len() == 1)
                .then_some(s)
        })
        .await
    }

    /// The service's tasks with the given desired status.
    pub async fn tasks(&self, service: &str, stopped: bool) -> Vec<aws_sdk_ecs::types::Task> {
        let status = if stopped {
            aws_sdk_ecs::types::DesiredStatus::Stopped
        } else {
            aws_sdk_ecs::types::DesiredStatus::Running
        };
        let arns = self
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .service_name(service)
            .desired_status(status)
            .send()
            .await
            .expect("list tasks")
            .task_arns()
            .to_vec();
        if arns.is_empty() {
            return Vec::new();
        }
        self.ecs
            .describe_tasks()
            .cluster(CLUSTER)
            .set_tasks(Some(arns))
            .send()
            .await
            .expect("describe tasks")
            .tasks()
            .to_vec()
    }
}

pub fn network() -> aws_sdk_ecs::types::NetworkConfiguration {
    aws_sdk_ecs::types::NetworkConfiguration::builder()
        .awsvpc_configuration(
            aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                .subnets("subnet-0123456789abcdef0")
                .build()
                .expect("awsvpc configuration"),
        )
        .build()
}

/// A task's private IP, from its ENI attachment.
pub fn task_ip(t: &aws_sdk_ecs::types::Task) -> String {
    t.attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .expect("an ENI with an IP")
        .to_owned()
}

/// Polls `check` until it returns `Some`, failing the test after `limit` of real time.
pub async fn until<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit.max(Duration::from_secs(5));
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An HTTPS client that trusts the simulator's CA.
pub fn https_client(ca_pem: &str, timeout: Duration) -> reqwest::Client {
    install_crypto();
    let cert = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA certificate");
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(timeout)
        .build()
        .expect("HTTPS client")
}
