//! A fleet's world for the fleet benchmark: several simulators (a `Site` each: one region of
//! one account), SDK clients that reach each as its account would (the base credentials, or
//! a role assumed through the simulator's STS), one `[[target]]` section per service, the
//! daemon as a child process, and moto's DynamoDB for the lease table.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use activegate_lifecycle::model::marks;
use activegate_lifecycle::sim::{Behaviour, Mode, Sim, SimHandle, SimOptions};
use aws_config::retry::RetryConfig;
use aws_sdk_ecs::config::Credentials;
use aws_sdk_ecs::error::ProvideErrorMetadata;

use super::{LOG_GROUP, install_crypto};

/// The account whose credentials the daemon runs with.
pub const OWN_ACCOUNT: &str = "123456789012";
/// The account reached only through an assumed role.
pub const ROLE_ACCOUNT: &str = "210987654321";
pub const ROLE: &str = "arn:aws:iam::210987654321:role/activegate-lifecycle";
pub const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];
/// The image repository the targets discover versions in (each simulator's registry).
pub const REPO: &str = "public.ecr.aws/dynatrace/dynatrace-activegate";
pub const REPO_NAME: &str = "dynatrace/dynatrace-activegate";
/// The version the services run at the start, and the one the fleet-wide update brings.
pub const OLD: &str = "1.301.70.20241127-162512";
pub const NEW: &str = "1.303.10.20250115-101010";

/// The session name of this kit's own assumed role (the daemon's is its own).
pub const BENCH_SESSION: &str = "fleet-bench";

/// The daemon's base credentials (also in `procfs::daemon_command`).
const BASE_KEY: &str = "AKIDSIMULATOR";
const BASE_SECRET: &str = "not-a-secret";

/// One simulator: one region of one account.
pub struct Site {
    pub region: String,
    pub account: String,
    /// Its targets assume `ROLE` (the simulator's STS issues their keys).
    pub role: bool,
    pub sim: SimHandle,
    /// ECS and Logs as the account's principal (the role, in the role's account).
    pub ecs: aws_sdk_ecs::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// The digest of `OLD` in this simulator's registry.
    pub old_digest: String,
}

/// The six sites: every region of both accounts, in a fixed order (own account first).
pub fn sites() -> Vec<(&'static str, &'static str)> {
    [OWN_ACCOUNT, ROLE_ACCOUNT]
        .iter()
        .flat_map(|a| REGIONS.iter().map(move |r| (*a, *r)))
        .collect()
}

/// Options for one site's simulator: a free port, scenario speed, the site's region and
/// account; the caller adds the rules it wants enforced.
pub fn site_options(account: &str, region: &str) -> SimOptions {
    SimOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        speed: super::SPEED,
        region: region.to_owned(),
        account: account.to_owned(),
        tick: Duration::from_millis(5),
        ..SimOptions::default()
    }
}

/// Throttling is waited out by `patient`, not by the SDK's retry quota.
async fn sdk_config(endpoint: &str, region: &str, creds: Credentials) -> aws_config::SdkConfig {
    super::sdk_config(endpoint, region, creds, RetryConfig::disabled()).await
}

fn base_credentials() -> Credentials {
    Credentials::new(BASE_KEY, BASE_SECRET, None, None, "fleet-base")
}

/// Temporary credentials for `ROLE` from the simulator's STS, asked with the base ones.
async fn role_credentials(endpoint: &str, region: &str) -> Credentials {
    let sts = aws_sdk_sts::Client::new(&sdk_config(endpoint, region, base_credentials()).await);
    let out = patient(|| {
        sts.assume_role()
            .role_arn(ROLE)
            .role_session_name(BENCH_SESSION)
            .send()
    })
    .await;
    let c = out.credentials().expect("AssumeRole returns credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "fleet-role",
    )
}

impl Site {
    /// Starts the simulator, reaches it as its account, publishes `OLD` in its registry and
    /// makes both versions' images healthy (ActiveGate up 20 simulated seconds after start).
    /// With `role`, it is reached (by this kit and by the targets) through `ROLE`.
    pub async fn start(options: SimOptions, role: bool) -> Site {
        install_crypto();
        let (region, account) = (options.region.clone(), options.account.clone());
        let sim = Sim::start(options).await.expect("the simulator starts");
        let creds = if role {
            role_credentials(sim.endpoint(), &region).await
        } else {
            base_credentials()
        };
        let config = sdk_config(sim.endpoint(), &region, creds).await;
        let old_digest = sim.publish_tag(REPO_NAME, OLD);
        for version in [OLD, NEW] {
            sim.set_image(
                &format!("{REPO}:{version}"),
                Behaviour {
                    start_seconds: Some(20.0),
                    ..Behaviour::of(Mode::Healthy)
                },
            );
        }
        let site = Site {
            ecs: aws_sdk_ecs::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            region,
            account,
            role,
            sim,
            old_digest,
        };
        patient(|| {
            site.logs
                .create_log_group()
                .log_group_name(LOG_GROUP)
                .send()
        })
        .await;
        site
    }

    /// `OLD`, pinned to its digest, as the daemon's discovery would have written it.
    pub fn old_image(&self) -> String {
        format!("{REPO}:{OLD}@{}", self.old_digest)
    }

    /// Registers the task definition the services start from (family `seed`); its ARN.
    pub async fn register_seed(&self) -> String {
        let container = aws_sdk_ecs::types::ContainerDefinition::builder()
            .name("activegate")
            .image(self.old_image())
            .essential(true)
            .build();
        patient(|| {
            self.ecs
                .register_task_definition()
                .family("seed")
                .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
                .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
                .cpu("256")
                .memory("512")
                .container_definitions(container.clone())
                .send()
        })
        .await
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("an ARN")
        .to_owned()
    }

    /// A rolling service of `desired` tasks at `task_definition`, as a verified rollout left
    /// it: tagged as the product's, with `task_definition` its last good revision (without
    /// that tag the next reconcile would first verify and adopt the running revision).
    pub async fn create_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        desired: i32,
    ) {
        patient(|| {
            self.ecs
                .create_service()
                .cluster(cluster)
                .service_name(service)
                .task_definition(task_definition)
                .desired_count(desired)
                .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
                .network_configuration(super::network())
                .deployment_configuration(super::deployment(true))
                .tags(tag(
                    marks::MANAGED_BY,
                    activegate_lifecycle::model::MANAGED_BY,
                ))
                .tags(tag(marks::LAST_GOOD, task_definition))
                .send()
        })
        .await;
    }

    /// The images of a service's running tasks, by how many run each.
    pub fn running_images(&self, service: &str) -> BTreeMap<String, usize> {
        let mut by = BTreeMap::new();
        for (_, image, running, _) in self.sim.tasks_by_revision(service) {
            *by.entry(image).or_default() += running;
        }
        by
    }
}

fn tag(key: &str, value: &str) -> aws_sdk_ecs::types::Tag {
    aws_sdk_ecs::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}

/// Runs an AWS call until it is not throttled (ECS's buckets refill every second); panics
/// on any other error.
pub async fn patient<T, E, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    for _ in 0..600 {
        match call().await {
            Ok(v) => return v,
            Err(e) if e.code() == Some("ThrottlingException") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("AWS call failed: {e:?}"),
        }
    }
    panic!("throttled for 120 s");
}

/// One `[[target]]`: a rolling service of 2 tasks in `site`, reached at its simulator's
/// endpoint (through `ROLE` in the role's account), probed every 15 s with the simulator's
/// CA, its versions discovered in the simulator's registry. Defaults are left out (the
/// timeout of 2 s, 3 failures, the deadline of 1800 s, the logs' retention and prefix): a
/// config file may hold at most 1 MiB, and 1,000 of these sections must fit.
pub fn target_toml(site: &Site, name: &str, cluster: &str, service: &str) -> String {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/activegate-k8s.yaml"
    );
    let role = if site.role {
        format!("role_arn = \"{ROLE}\"\n")
    } else {
        String::new()
    };
    let (region, account, endpoint) = (&site.region, &site.account, site.sim.endpoint());
    let ca = site.sim.ca_path().display();
    format!(
        r#"
[[target]]
name = "{name}"
region = "{region}"
endpoint_url = "{endpoint}"
{role}cluster = "{cluster}"
service = "{service}"
family = "{service}"
execution_role_arn = "arn:aws:iam::{account}:role/exec"
desired_count = 2
manifest = "{manifest}"

[target.network]
subnets = ["subnet-0123456789abcdef0"]

[target.logs]
group = "{LOG_GROUP}"

[target.secrets]
tenant_token = "arn:aws:secretsmanager:{region}:{account}:secret:dt/tenant-AbCdEf"

[target.environment]
DT_TENANT = "abc12345"
DT_SERVER = "https://abc12345.live.dynatrace.com/communication"

[target.rollout]
strategy = "rolling"
bake_seconds = 0.3

[target.probe]
interval_seconds = 15
grace_seconds = 3
healthy_after = 2
ca_bundle = "{ca}"

[target.versions]
source = "registry"
repository = "{REPO}"
registry_url = "{endpoint}"
"#
    )
}

/// The daemon as a child process (`run` with the base credentials), its stderr in `log`.
pub struct Daemon {
    pub name: String,
    child: Option<Child>,
    pub pid: u32,
    pub url: String,
    pub http: reqwest::Client,
}

impl Daemon {
    pub async fn start(name: &str, config: &Path, extra: &[&str], log: &Path) -> Daemon {
        let mut cmd = super::procfs::daemon_command(config.as_os_str(), extra);
        cmd.env("AWS_SDK_UA_APP_ID", name)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stderr(std::fs::File::create(log).expect("log file"));
        // Quiet (warn) unless the caller asks for more.
        if let Ok(filter) = std::env::var("FLEET_RUST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        Self::spawn(name, cmd).await
    }

    /// The daemon `cmd` (from [`super::procfs::daemon_command`]) runs, once it answers
    /// `/status`; `name` is how the caller tells its daemons apart.
    pub async fn spawn(name: &str, cmd: Command) -> Daemon {
        let (child, url) = super::procfs::spawn(cmd).await;
        Daemon {
            name: name.to_owned(),
            pid: child.id(),
            child: Some(child),
            url,
            http: reqwest::Client::new(),
        }
    }

    /// `/status`, or `None` while it does not answer.
    pub async fn status(&self) -> Option<serde_json::Value> {
        let r = self
            .http
            .get(format!("{}/status", self.url))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(ok.success(), "kill -{sig} {}", self.pid);
    }

    /// Peak RSS so far (VmHWM), MiB.
    pub fn peak_mib(&self) -> f64 {
        super::procfs::status_kib(self.pid, "VmHWM:") as f64 / 1024.0
    }

    pub fn rss_mib(&self) -> f64 {
        super::procfs::status_kib(self.pid, "VmRSS:") as f64 / 1024.0
    }

    pub async fn sigkill(&mut self) {
        if let Some(child) = self.child.take() {
            super::binary::kill(child).await;
        }
    }

    /// SIGTERM, and wait for it to exit.
    pub async fn terminate(&mut self) {
        if let Some(child) = self.child.take() {
            tokio::task::spawn_blocking(move || super::procfs::stop(child))
                .await
                .expect("join");
        }
    }
}

/// A daemon left running by a failed assertion goes with the benchmark.
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// moto's DynamoDB: the one `MOTO_ENDPOINT` names, or a `moto_server` started here from the
/// project's virtualenv (stopped on drop).
pub struct Moto {
    pub endpoint: String,
    child: Option<Child>,
}

impl Moto {
    /// `Err` says why there is none.
    pub async fn find_or_start() -> Result<Moto, String> {
        if let Ok(endpoint) = std::env::var("MOTO_ENDPOINT") {
            return Ok(Moto {
                endpoint,
                child: None,
            });
        }
        let bin = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.venv/bin/moto_server"
        ));
        if !bin.exists() {
            return Err(format!(
                "MOTO_ENDPOINT is unset and {} does not exist",
                bin.display()
            ));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{} does not start: {e}", bin.display()))?;
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(moto);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "moto_server did not listen on port {port} within 30 s"
        ))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh lease table on moto (its name is returned).
pub async fn lease_table(moto: &str) -> String {
    use activegate_lifecycle::ecs::leases::LeaseTable;
    use activegate_lifecycle::ecs::{Aws, ClientSettings};
    install_crypto();
    let mut settings = ClientSettings::new("us-east-1");
    settings.endpoint_url = Some(moto.to_owned());
    settings.static_credentials = Some(("testing".into(), "testing".into()));
    settings.max_attempts = 2;
    let t = LeaseTable::new(
        Aws::connect(settings).await,
        format!("fleet-bench-{}", fastrand::u64(..)),
    );
    t.create().await.expect("CreateTable");
    t.table().to_owned()
}
