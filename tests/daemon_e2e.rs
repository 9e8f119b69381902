//! The daemon as users run it: the real binary against an in-process
//! simulator, with a schedule that fires every few seconds, SIGHUP reloads
//! (valid and invalid), the status server, and SIGTERM during a rollout.

mod simkit;

use std::process::{Child, Command};
use std::time::Duration;

use activegate_lifecycle::rollout::tags;
use activegate_lifecycle::sim::Mode;
use simkit::binary::BIN;
use simkit::rig::*;
use simkit::*;

const TOKEN: &str = "trigger-secret-for-tests";
/// The Dynatrace API token the daemon reads from its environment; it must never be printed.
const DT_TOKEN: &str = "dt0c01.SIMULATED.never-print-me";

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success(), "kill -{sig}");
}

struct Daemon {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Daemon {
    async fn start(rig: &Rig) -> Daemon {
        Self::start_with(rig, rig.dir.path().join("ag.toml").as_os_str(), &[]).await
    }

    async fn start_with(rig: &Rig, config: &std::ffi::OsStr, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = procfs::daemon_command(config, &[]);
        cmd.envs(env.iter().copied())
            .env("ACTIVEGATE_LIFECYCLE_TRIGGER_TOKEN", TOKEN)
            .env("AGL_TEST_DT_TOKEN", DT_TOKEN)
            .env("RUST_LOG", "debug")
            .stderr(std::fs::File::create(rig.dir.path().join("daemon.log")).expect("log file"));
        let (child, url) = procfs::spawn(cmd).await;
        Daemon {
            child,
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn status(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/status", self.url))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("JSON")
    }

    async fn until_status(&self, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        until(Duration::from_secs(30), || async {
            let s = self.status().await;
            f(&s).then_some(s)
        })
        .await
    }

    async fn exit_code(mut self) -> i32 {
        tokio::task::spawn_blocking(move || self.child.wait().expect("wait"))
            .await
            .expect("join")
            .code()
            .expect("exited")
    }
}

/// Prometheus's own linter on the live daemon's `/metrics`: `promtool check metrics` finds no
/// problem. The test command installs promtool (Debian's `prometheus` package) and then sets
/// ACTIVEGATE_LIFECYCLE_REQUIRE_PROMTOOL; without promtool this says so loudly and goes on.
fn promtool_check_metrics(metrics: &str) {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("ACTIVEGATE_LIFECYCLE_REQUIRE_PROMTOOL").is_some() => {
            panic!(
                "promtool is required (ACTIVEGATE_LIFECYCLE_REQUIRE_PROMTOOL) but does not run: {e}"
            )
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: promtool check metrics: promtool does not run here ({e}); apt-get install prometheus"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(metrics.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {}\n{said}\n{metrics}",
        out.status
    );
}

fn outcome_count(s: &serde_json::Value, outcome: &str) -> u64 {
    s["targets"]["prod"]["outcomes"][outcome]
        .as_u64()
        .unwrap_or(0)
}

fn set_config(rig: &Rig, f: impl FnOnce(String) -> String) {
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, f(text)).expect("write config");
}

async fn rig_with_daemon_config() -> Rig {
    let rig = Rig::new().await;
    set_config(&rig, |t| {
        format!(
            "[daemon]\nstatus_listen = \"127.0.0.1:0\"\nshutdown_deadline_seconds = 30\n\n[daemon.events]\nenvironment_url = \"{}\"\ntoken_env = \"AGL_TEST_DT_TOKEN\"\n\n{t}",
            rig.w.sim.endpoint()
        )
            .replace("manifest = ", "schedule = \"*/2 * * * * *\"\nmanifest = ")
    });
    rig
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_rolls_on_start_on_schedule_and_on_sighup_and_stops_cleanly() {
    let rig = rig_with_daemon_config().await;
    let d = Daemon::start(&rig).await;

    // At start: the service is created and verified.
    let s = d.until_status(|s| outcome_count(s, "verified") == 1).await;
    let first = s["targets"]["prod"]["revision"]
        .as_str()
        .expect("revision")
        .to_owned();
    assert!(first.ends_with(":1"), "{first}");

    // The schedule fires every 2 s: unchanged runs follow, with no writes.
    let s = d.until_status(|s| outcome_count(s, "unchanged") >= 2).await;
    assert!(s["targets"]["prod"]["next_run"].is_string());

    // A new version in the config and SIGHUP: reloaded and rolled out at once.
    set_config(&rig, |t| {
        t.replace(&format!("image = \"{V1}\""), &format!("image = \"{V2}\""))
    });
    signal(&d.child, "HUP");
    let s = d.until_status(|s| outcome_count(s, "verified") == 2).await;
    assert_eq!(s["reloads"], 1);
    let second = s["targets"]["prod"]["revision"]
        .as_str()
        .expect("revision")
        .to_owned();
    assert!(second.ends_with(":2"), "{second}");
    assert_eq!(
        rig.w.service(SERVICE).await.task_definition(),
        Some(second.as_str())
    );

    // An invalid config on SIGHUP is refused; the old one keeps working.
    set_config(&rig, |t| {
        t.replace("retention_days = 7", "retention_days = 8")
    });
    signal(&d.child, "HUP");
    let s = d.until_status(|s| s["reload_failures"] == 1).await;
    assert!(
        s["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("retention_days")),
        "{s}"
    );
    let before = outcome_count(&s, "unchanged");
    d.until_status(|s| outcome_count(s, "unchanged") > before)
        .await;

    // The status server: health, metrics, and the trigger with its token.
    let health = d
        .http
        .get(format!("{}/healthz", d.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let metrics = d
        .http
        .get(format!("{}/metrics", d.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "activegate_lifecycle_rollouts_total{target=\"prod\",outcome=\"verified\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("activegate_lifecycle_aws_calls_total{operation=\"DescribeServices\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("activegate_lifecycle_config_reloads_total{result=\"refused\"} 1"),
        "{metrics}"
    );
    // The availability probes' latency is a histogram (the monitor probed by now).
    assert!(
        metrics.contains("# TYPE activegate_lifecycle_probe_latency_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "activegate_lifecycle_probe_latency_seconds_bucket{target=\"prod\",le=\"+Inf\"}"
        ),
        "{metrics}"
    );
    promtool_check_metrics(&metrics);
    // A scraper that asks for OpenMetrics gets it.
    let open = d
        .http
        .get(format!("{}/metrics", d.url))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .expect("metrics");
    assert!(
        open.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{:?}",
        open.headers()
    );
    let open = open.text().await.expect("text");
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE activegate_lifecycle_rollouts counter"),
        "{open}"
    );
    let denied = d
        .http
        .post(format!("{}/trigger?target=prod", d.url))
        .send()
        .await
        .expect("trigger");
    assert_eq!(denied.status(), 401);
    let wrong = d
        .http
        .post(format!("{}/trigger?target=nope", d.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("trigger");
    assert_eq!(wrong.status(), 404);
    let ok = d
        .http
        .post(format!("{}/trigger?target=prod", d.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("trigger");
    assert_eq!(ok.status(), 202);

    // `status` prints the table.
    let url = d.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["status", "--url", &url])
            .output()
            .expect("status runs")
    })
    .await
    .expect("join");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("prod") && table.contains("activegate:2"),
        "{table}"
    );

    signal(&d.child, "TERM");
    assert_eq!(d.exit_code().await, 0);

    // Each verified version became a Dynatrace deployment event.
    let events = rig.w.sim.events();
    let deployments: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["eventType"] == "CUSTOM_DEPLOYMENT")
        .collect();
    assert_eq!(deployments.len(), 2, "{events:?}");
    assert_eq!(
        deployments[1]["properties"]["dt.event.deployment.version"],
        V2
    );
    // The API token is used, never printed.
    let log = std::fs::read_to_string(rig.dir.path().join("daemon.log")).expect("daemon log");
    assert!(log.contains("Dynatrace event sent"), "{log}");
    assert!(
        !log.contains("never-print-me"),
        "the token leaked into the log"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_rollout_ends_with_the_service_verified_or_rolled_back() {
    let rig = rig_with_daemon_config().await;
    rig.w.image(BAD, Mode::NeverHealthy);
    let d = Daemon::start(&rig).await;
    d.until_status(|s| outcome_count(s, "verified") == 1).await;
    let first = rig
        .w
        .service(SERVICE)
        .await
        .task_definition()
        .expect("td")
        .to_owned();

    set_config(&rig, |t| {
        t.replace(&format!("image = \"{V1}\""), &format!("image = \"{BAD}\""))
    });
    signal(&d.child, "HUP");
    // Wait until the bad revision is being verified, then ask the daemon to stop.
    until(Duration::from_secs(30), || async {
        rig.service_tags()
            .await
            .contains_key(tags::ROLLOUT_TO)
            .then_some(())
    })
    .await;
    signal(&d.child, "TERM");
    assert_eq!(d.exit_code().await, 0);

    // The in-flight rollout was finished (here: rolled back), not abandoned.
    let tags = rig.service_tags().await;
    assert!(!tags.contains_key(tags::ROLLOUT_TO), "{tags:?}");
    assert_eq!(tags.get(tags::LAST_GOOD), Some(&first));
    assert_eq!(
        rig.w.service(SERVICE).await.task_definition(),
        Some(first.as_str())
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_rolls_out_a_new_version_from_the_manifest() {
    let rig = rig_with_daemon_config().await;
    // The image comes from a manifest of our own, not from the config.
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/activegate-k8s.yaml"
    ))
    .expect("fixture");
    let manifest = rig.dir.path().join("activegate.yaml");
    std::fs::write(
        &manifest,
        fixture.replace(
            "image: <YOUR_ENVIRONMENT_URL>/linux/activegate\n          imagePullPolicy",
            &format!("image: {V1}\n          imagePullPolicy"),
        ),
    )
    .expect("manifest");
    set_config(&rig, |t| {
        let t = t.replace(&format!("image = \"{V1}\"\n"), "");
        let start = t.find("manifest = ").expect("manifest line");
        let end = start + t[start..].find('\n').expect("end of line");
        format!(
            "{}manifest = \"{}\"{}",
            &t[..start],
            manifest.display(),
            &t[end..]
        )
    });
    let d = Daemon::start(&rig).await;
    d.until_status(|s| outcome_count(s, "verified") == 1).await;
    // A new version lands in the manifest; no signal: the schedule (every 2 s) picks it up.
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, text.replace(V1, V2)).expect("manifest");
    let s = d.until_status(|s| outcome_count(s, "verified") == 2).await;
    assert_eq!(s["targets"]["prod"]["last_trigger"], "schedule");
    assert_eq!(s["reloads"], 0);
    let svc = rig.w.service(SERVICE).await;
    let image = rig.w.image_of(svc.task_definition().expect("td")).await;
    assert_eq!(image.as_deref(), Some(V2));
    signal(&d.child, "TERM");
    assert_eq!(d.exit_code().await, 0);
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once_and_the_next_start_resumes() {
    let rig = rig_with_daemon_config().await;
    // A long bake keeps the rollout in flight.
    set_config(&rig, |t| {
        t.replace("bake_seconds = 0.3", "bake_seconds = 20")
    });
    let d = Daemon::start(&rig).await;
    until(Duration::from_secs(30), || async {
        rig.service_tags()
            .await
            .contains_key(tags::ROLLOUT_TO)
            .then_some(())
    })
    .await;
    signal(&d.child, "TERM");
    // Signals sent back to back may arrive as one: send the second once the first is handled.
    let log = rig.dir.path().join("daemon.log");
    until(Duration::from_secs(10), || async {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("stopping: no new work")
            .then_some(())
    })
    .await;
    signal(&d.child, "TERM");
    assert_eq!(d.exit_code().await, 0);
    // Had the daemon waited for the rollout (its 20 s bake), the mark would be gone:
    // it is left for the next start, which finishes the rollout.
    assert!(rig.service_tags().await.contains_key(tags::ROLLOUT_TO));
    set_config(&rig, |t| {
        t.replace("bake_seconds = 20", "bake_seconds = 0.3")
    });
    let d = Daemon::start(&rig).await;
    d.until_status(|s| outcome_count(s, "verified") == 1).await;
    assert!(!rig.service_tags().await.contains_key(tags::ROLLOUT_TO));
    signal(&d.child, "TERM");
    assert_eq!(d.exit_code().await, 0);
    rig.w.sim.shutdown().await;
}

/// As in its Fargate task: the config and the manifest come from environment variables (ECS
/// fills them from SSM), and the container health check is the binary's `healthcheck`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_environment_like_in_its_container_with_the_healthcheck_command() {
    let rig = rig_with_daemon_config().await;
    let manifest_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/activegate-k8s.yaml"
    );
    let config_file = rig.dir.path().join("ag.toml");
    let config = std::fs::read_to_string(&config_file)
        .expect("config")
        .replace(
            &format!("manifest = \"{manifest_path}\""),
            "manifest = \"env:AGL_TEST_MANIFEST\"",
        );
    assert!(config.contains("env:AGL_TEST_MANIFEST"));
    // Only the environment has them.
    std::fs::remove_file(&config_file).expect("remove the config file");
    let manifest = std::fs::read_to_string(manifest_path).expect("manifest");
    let d = Daemon::start_with(
        &rig,
        std::ffi::OsStr::new("env:AGL_TEST_CONFIG"),
        &[
            ("AGL_TEST_CONFIG", config.as_str()),
            ("AGL_TEST_MANIFEST", manifest.as_str()),
        ],
    )
    .await;
    d.until_status(|s| outcome_count(s, "verified") == 1).await;

    let healthcheck = |listen: &str| {
        Command::new(BIN)
            .args(["healthcheck", "--timeout", "2", "--listen", listen])
            .output()
            .expect("healthcheck runs")
    };
    let listen = d.url.strip_prefix("http://").expect("http").to_owned();
    let up = healthcheck(&listen);
    assert!(up.status.success(), "{up:?}");
    assert!(String::from_utf8_lossy(&up.stdout).starts_with("healthy"));

    // Something that answers, but not 200: the simulator has no /healthz.
    let sim = rig
        .w
        .sim
        .endpoint()
        .strip_prefix("http://")
        .expect("http")
        .to_owned();
    let wrong = healthcheck(&sim);
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("404"),
        "{wrong:?}"
    );

    signal(&d.child, "TERM");
    assert_eq!(d.exit_code().await, 0);
    let down = healthcheck(&listen);
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("no answer from the status server"),
        "{down:?}"
    );
    rig.w.sim.shutdown().await;
}
