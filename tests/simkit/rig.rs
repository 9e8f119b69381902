//! A rollout rig: a simulator world plus a config file and manifest that
//! point the product at it.

use std::time::Duration;

use activegate_lifecycle::config::Config;
use activegate_lifecycle::daemon::wiring;
use activegate_lifecycle::rollout::{Engine, Outcome};
use activegate_lifecycle::sim::Mode;

use super::*;

pub const V1: &str = "public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512";
pub const V2: &str = "public.ecr.aws/dynatrace/dynatrace-activegate:1.303.10.20250115-101010";
pub const BAD: &str = "public.ecr.aws/dynatrace/dynatrace-activegate:1.305.0.20250301-000000";
pub const SERVICE: &str = "activegate";

pub struct Rig {
    pub w: World,
    pub dir: tempfile::TempDir,
    pub config: Config,
    /// The clients of this rig's engines, as the daemon holds one for its run: they share
    /// the rate budgets and the claims on services (one reconcile of a service at a time).
    pub clients: activegate_lifecycle::ecs::Clients,
}

/// `[aws.rate_limits]` wide open, for tests that create many services at once: the simulator
/// does not throttle, and ECS's default buckets would only make them wait for tokens.
pub const UNTHROTTLED: &str = r#"[aws.rate_limits]
services = { burst = 1000, per_second = 1000 }
tasks = { burst = 1000, per_second = 1000 }
service_writes = { burst = 1000, per_second = 1000 }
task_definitions = { burst = 1000, per_second = 1000 }
service_deployments = { burst = 1000, per_second = 1000 }
other = { burst = 1000, per_second = 1000 }
"#;

/// One `[[target]]` of a many-target config on the simulator: a rolling service of `desired`
/// tasks at V1, probed every `interval` seconds with the simulator's CA.
pub fn target_toml(
    name: &str,
    cluster: &str,
    service: &str,
    desired: u64,
    interval: f64,
    manifest: &str,
    ca: &str,
) -> String {
    format!(
        r#"
[[target]]
name = "{name}"
region = "us-east-1"
cluster = "{cluster}"
service = "{service}"
family = "{service}"
image = "{V1}"
execution_role_arn = "arn:aws:iam::123456789012:role/exec"
desired_count = {desired}
manifest = "{manifest}"

[target.network]
subnets = ["subnet-0123456789abcdef0"]

[target.logs]
group = "{LOG_GROUP}"
retention_days = 7
stream_prefix = "ag"

[target.secrets]
tenant_token = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dt/tenant-AbCdEf"

[target.environment]
DT_TENANT = "abc12345"
DT_SERVER = "https://abc12345.live.dynatrace.com/communication"

[target.rollout]
strategy = "rolling"
bake_seconds = 0.3
deadline_seconds = 30
keep_revisions = 3

[target.probe]
interval_seconds = {interval}
timeout_seconds = 0.5
grace_seconds = 0.3
healthy_after = 2
unhealthy_after = 3
ca_bundle = "{ca}"
"#
    )
}

/// A config for the simulator: fast probes (real seconds) against fast simulated time.
pub fn config_text(endpoint: &str, manifest: &str, ca: &str, trust: &str) -> String {
    let trust = if trust.is_empty() {
        format!("ca_bundle = \"{ca}\"")
    } else {
        trust.to_owned()
    };
    format!(
        r#"[aws]
endpoint_url = "{endpoint}"
max_attempts = 10

[[target]]
name = "prod"
region = "us-east-1"
cluster = "{CLUSTER}"
service = "{SERVICE}"
family = "activegate"
image = "{V1}"
execution_role_arn = "arn:aws:iam::123456789012:role/exec"
desired_count = 2
manifest = "{manifest}"

[target.network]
subnets = ["subnet-0123456789abcdef0"]

[target.logs]
group = "{LOG_GROUP}"
retention_days = 7
stream_prefix = "ag"

[target.secrets]
tenant_token = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dt/tenant-AbCdEf"

[target.environment]
DT_TENANT = "abc12345"
DT_SERVER = "https://abc12345.live.dynatrace.com/communication"

[target.rollout]
strategy = "rolling"
bake_seconds = 0.3
deadline_seconds = 30
keep_revisions = 3

[target.probe]
interval_seconds = 0.02
timeout_seconds = 0.5
grace_seconds = 0.3
healthy_after = 2
unhealthy_after = 3
{trust}
"#
    )
}

impl Rig {
    pub async fn new() -> Rig {
        Self::with_trust(|_| String::new()).await
    }

    /// `trust` gives the probe trust line for this world (empty: the simulator's CA).
    pub async fn with_trust(trust: impl FnOnce(&World) -> String) -> Rig {
        Self::with_world(World::new().await, trust)
    }

    /// A rig on a given simulator world (e.g. one at another speed).
    pub fn with_world(w: World, trust: impl FnOnce(&World) -> String) -> Rig {
        let trust = trust(&w);
        for image in [V1, V2] {
            w.image(image, Mode::Healthy);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, w.sim.ca_pem()).expect("write CA");
        let manifest = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/activegate-k8s.yaml"
        );
        let text = config_text(
            w.sim.endpoint(),
            manifest,
            ca.to_str().expect("UTF-8"),
            &trust,
        );
        let path = dir.path().join("ag.toml");
        std::fs::write(&path, &text).expect("write config");
        let config = Config::load(&path).expect("a valid config");
        Rig {
            w,
            dir,
            config,
            clients: activegate_lifecycle::ecs::Clients::new(),
        }
    }

    /// The same rig with blue/green task sets (the product's default for new services).
    pub async fn blue_green() -> Rig {
        let mut rig = Self::new().await;
        rig.edit_config(&[("strategy = \"rolling\"", "strategy = \"blue-green\"")]);
        rig
    }

    /// Rewrites the rig's config file, each `from` replaced once (it must be there), and
    /// loads it again.
    pub fn edit_config(&mut self, edits: &[(&str, &str)]) {
        let path = self.dir.path().join("ag.toml");
        let mut text = std::fs::read_to_string(&path).expect("config");
        for (from, to) in edits {
            assert!(text.contains(from), "the rig's config has no `{from}`");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(&path, text).expect("write config");
        self.config = Config::load(&path).expect("a valid config");
    }

    pub async fn engine(&self) -> Engine {
        let target = &self.config.targets[0];
        let checked = wiring::check(&self.config, target).expect("engine");
        let settings = wiring::client_settings(&self.config, target, |c| {
            c.static_credentials = Some(("AKIDSIMULATOR".into(), "not-a-secret".into()));
            c.initial_backoff = Duration::from_millis(10);
        });
        wiring::engine_from(target, checked, self.clients.aws(settings).await)
    }

    /// The service's tags; empty while the service does not exist.
    pub async fn service_tags(&self) -> std::collections::BTreeMap<String, String> {
        self.service_tags_of(SERVICE).await
    }

    /// The tags of another service of the cluster.
    pub async fn service_tags_of(
        &self,
        service: &str,
    ) -> std::collections::BTreeMap<String, String> {
        let out = self
            .w
            .ecs
            .describe_services()
            .cluster(CLUSTER)
            .services(service)
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await
            .expect("describe");
        out.services()
            .first()
            .map(|s| {
                s.tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or("").to_owned(),
                            t.value().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Creates the service at V1 and verifies it.
    pub async fn started(&self) -> String {
        match self
            .engine()
            .await
            .reconcile(None)
            .await
            .expect("first rollout")
        {
            Outcome::Verified { from: None, to, .. } => to,
            other => panic!("expected a verified first revision, got {other:?}"),
        }
    }
}

/// The daemon in-process on a rig's config file, driven through its signal channel.
pub struct Running {
    pub board: std::sync::Arc<activegate_lifecycle::daemon::board::Board>,
    pub signals: tokio::sync::mpsc::Sender<activegate_lifecycle::daemon::Signal>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Rig {
    /// Starts the daemon in-process on the rig's config file, with the simulator's credentials.
    pub fn daemon(&self) -> Running {
        self.daemon_with(|_| {})
    }

    /// [`Rig::daemon`], with its options changed by `tweak` first (a retry backoff, no
    /// initial run).
    pub fn daemon_with(
        &self,
        tweak: impl FnOnce(&mut activegate_lifecycle::daemon::Options),
    ) -> Running {
        use activegate_lifecycle::daemon::{self, Options, board::Board};
        use std::sync::Arc;
        let path = self.dir.path().join("ag.toml");
        let config = Config::load(&path).expect("config");
        let board = Arc::new(Board::default());
        let (signals, rx) = tokio::sync::mpsc::channel(16);
        let mut options = Options {
            adjust_client: Arc::new(|c| {
                c.static_credentials = Some(("AKIDSIMULATOR".into(), "not-a-secret".into()));
                c.initial_backoff = Duration::from_millis(10);
            }),
            ..Options::default()
        };
        tweak(&mut options);
        let b = board.clone();
        let task = tokio::spawn(async move {
            daemon::run(path, config, b, options, rx)
                .await
                .expect("the daemon runs");
        });
        Running {
            board,
            signals,
            task,
        }
    }
}

impl Running {
    /// Waits (40 s at most) until the target `prod` satisfies `f`.
    pub async fn until(
        &self,
        f: impl Fn(&activegate_lifecycle::daemon::board::TargetStatus) -> bool,
    ) -> activegate_lifecycle::daemon::board::TargetStatus {
        until(Duration::from_secs(40), || async {
            let s = self.board.snapshot();
            let t = s.targets.get("prod")?.clone();
            f(&t).then_some(t)
        })
        .await
    }

    pub async fn stop(self) {
        self.signals
            .send(activegate_lifecycle::daemon::Signal::Terminate)
            .await
            .expect("send");
        self.task.await.expect("the daemon stops");
    }
}
