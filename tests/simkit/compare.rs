//! Side by side on one simulated ActiveGate service (2 tasks, rolling update 100 % / 200 %):
//! this daemon with its default settings, ECS's deployment circuit breaker alone (with
//! roll-back), and a deploy script that updates the service, waits for it to be stable and rolls
//! back after its timeout. ActiveGate-realistic timings in simulated seconds; the simulator runs
//! them `speed` times faster, and every time reported is simulated (= real-world) seconds, read
//! from the simulator's own timeline.

use std::time::Duration;

use activegate_lifecycle::config::Config;
use activegate_lifecycle::sim::{Behaviour, Mode, TimelineEvent};
use aws_config::retry::RetryConfig;

use super::rig::*;
use super::*;

/// An ActiveGate answers healthy this long after its container starts.
pub const START: f64 = 90.0;
/// The crashing version exits this long after RUNNING (after it was healthy for a while).
pub const CRASH_AFTER: f64 = 150.0;
/// The daemon's defaults (`[target.probe]`, `[target.rollout]`).
pub const PROBE_INTERVAL: f64 = 15.0;
pub const PROBE_TIMEOUT: f64 = 2.0;
pub const GRACE: f64 = 120.0;
pub const BAKE: f64 = 60.0;
pub const DEADLINE: f64 = 1800.0;
/// The deploy script: `aws ecs wait services-stable` polls every 15 s; it gives up after 300 s.
pub const SCRIPT_POLL: f64 = 15.0;
pub const SCRIPT_TIMEOUT: f64 = 300.0;
/// A service-level probe (is any task healthy?) every this many seconds.
pub const SERVICE_PROBE: f64 = 15.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Daemon,
    Breaker,
    Script,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Daemon, Strategy::Breaker, Strategy::Script];

    pub fn label(self) -> &'static str {
        match self {
            Strategy::Daemon => "this daemon (defaults)",
            Strategy::Breaker => "ECS circuit breaker alone",
            Strategy::Script => "deploy script (300 s timeout)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Bad,
    CrashAfterRunning,
    Good,
}

impl Case {
    pub const ALL: [Case; 3] = [Case::Bad, Case::CrashAfterRunning, Case::Good];

    pub fn label(self) -> &'static str {
        match self {
            Case::Bad => "bad version (never healthy)",
            Case::CrashAfterRunning => "crash after RUNNING",
            Case::Good => "good version",
        }
    }
}

/// What one strategy did with one case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measured {
    pub strategy: &'static str,
    pub case: &'static str,
    pub outcome: String,
    /// From the rollout's UpdateService to the failure being acted on (a roll-back call, or
    /// ECS marking the deployment FAILED); `None`: never, within the window.
    pub detect_s: Option<f64>,
    /// From the rollout to the good revision's deployment COMPLETED again.
    pub back_s: Option<f64>,
    /// Good version: from the rollout to verified (the daemon) or COMPLETED / stable.
    pub done_s: Option<f64>,
    /// Time with no healthy task, from the rollout to the end of the observation.
    pub none_healthy_s: f64,
    /// Service-level probes (every 15 s: is any task healthy?) that failed.
    pub failed_service_probes: u32,
    /// AWS calls the strategy made (retries included).
    pub calls: u64,
    /// Simulated seconds observed after the rollout.
    pub observed_s: f64,
}

/// `text` with `from` replaced, which must be there (else the rig's config changed).
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the rig's config has no `{from}`");
    text.replacen(from, to, 1)
}

fn real(sim_seconds: f64, speed: f64) -> Duration {
    Duration::from_secs_f64(sim_seconds / speed)
}

/// One strategy against one case, on a fresh simulator running `speed` times faster; the
/// service is watched for `window` simulated seconds after the rollout (or until the daemon's
/// reconcile returns, if later).
pub async fn measure(strategy: Strategy, case: Case, speed: f64, window: f64) -> Measured {
    let w = World::with(RetryConfig::disabled(), speed).await;
    let mut rig = Rig::with_world(w, |_| String::new());
    let path = rig.dir.path().join("ag.toml");
    let secs = |s: f64| format!("{}", s / speed);
    let mut text = std::fs::read_to_string(&path).expect("config");
    for (from, to) in [
        (
            "bake_seconds = 0.3",
            format!("bake_seconds = {}", secs(BAKE)),
        ),
        (
            "deadline_seconds = 30",
            format!("deadline_seconds = {}", secs(DEADLINE)),
        ),
        (
            "interval_seconds = 0.02",
            format!("interval_seconds = {}", secs(PROBE_INTERVAL)),
        ),
        // A TLS handshake on a busy 2-core machine needs more than 2 s / speed.
        (
            "timeout_seconds = 0.5",
            format!("timeout_seconds = {}", (PROBE_TIMEOUT / speed).max(0.25)),
        ),
        (
            "grace_seconds = 0.3",
            format!("grace_seconds = {}", secs(GRACE)),
        ),
        ("healthy_after = 2", "healthy_after = 3".to_owned()),
    ] {
        text = replace_once(&text, from, &to);
    }
    std::fs::write(&path, text).expect("write");
    rig.config = Config::load(&path).expect("config");
    let healthy = Behaviour {
        start_seconds: Some(START),
        ..Behaviour::of(Mode::Healthy)
    };
    for image in [V1, V2] {
        rig.w.sim.set_image(image, healthy);
    }
    let image = match case {
        Case::Good => V2,
        Case::Bad => {
            rig.w.sim.set_image(
                BAD,
                Behaviour {
                    start_seconds: Some(START),
                    ..Behaviour::of(Mode::NeverHealthy)
                },
            );
            BAD
        }
        Case::CrashAfterRunning => {
            rig.w.sim.set_image(
                BAD,
                Behaviour {
                    mode: Mode::CrashesAfter,
                    start_seconds: Some(START),
                    after_seconds: Some(CRASH_AFTER),
                    exit_code: Some(1),
                },
            );
            BAD
        }
    };
    let good = rig.started().await;
    let from = rig.w.sim.now();
    let (outcome, calls) = match strategy {
        Strategy::Daemon => {
            let engine = rig.engine().await;
            let outcome = match engine.reconcile(Some(image)).await {
                Ok(o) => o.label().to_owned(),
                Err(e) => format!("error: {e}"),
            };
            let calls = engine.aws().counts().values().map(|c| c.calls).sum();
            (outcome, calls)
        }
        Strategy::Breaker | Strategy::Script => {
            let next = register_like(&rig, &good, image).await;
            update(&rig, &next, strategy == Strategy::Breaker).await;
            if strategy == Strategy::Breaker {
                tokio::time::sleep(real(window, speed)).await;
                ("ECS alone".to_owned(), 1)
            } else {
                script(&rig, &good, &next, speed).await
            }
        }
    };
    // Watch what follows until the window ends.
    let elapsed = rig.w.sim.now() - from;
    if elapsed < window {
        tokio::time::sleep(real(window - elapsed, speed)).await;
    }
    let until = rig.w.sim.now();
    let timeline = rig.w.sim.timeline();
    rig.w.sim.shutdown().await;
    let mut m = analyse(&timeline, from, until, &good);
    m.strategy = strategy.label();
    m.case = case.label();
    m.calls = calls;
    m.outcome = match (strategy, &m.detect_s) {
        (Strategy::Breaker, Some(_)) => "deployment FAILED, rolled back by ECS".into(),
        (Strategy::Breaker, None) if case == Case::Good => "COMPLETED".into(),
        (Strategy::Breaker, None) => "not detected".into(),
        _ => outcome,
    };
    m
}

/// The deploy script: poll DescribeServices until stable or the timeout, then roll back.
async fn script(rig: &Rig, good: &str, next: &str, speed: f64) -> (String, u64) {
    let start = rig.w.sim.now();
    let mut calls = 1; // the UpdateService
    loop {
        tokio::time::sleep(real(SCRIPT_POLL, speed)).await;
        calls += 1;
        let s = rig.w.service(SERVICE).await;
        let primary = s.deployments().first();
        let stable = s.deployments().len() == 1
            && primary.is_some_and(|d| {
                d.task_definition() == Some(next) && d.running_count() == d.desired_count()
            });
        if stable {
            return ("stable: declared a success".into(), calls);
        }
        if rig.w.sim.now() - start >= SCRIPT_TIMEOUT {
            update(rig, good, false).await;
            return ("timed out: rolled back".into(), calls + 1);
        }
    }
}

/// Registers a copy of `like` (the translated ActiveGate task definition) running `image`.
async fn register_like(rig: &Rig, like: &str, image: &str) -> String {
    let td = rig
        .w
        .ecs
        .describe_task_definition()
        .task_definition(like)
        .send()
        .await
        .expect("describe task definition")
        .task_definition
        .expect("a task definition");
    let containers: Vec<_> = td
        .container_definitions()
        .iter()
        .cloned()
        .map(|mut c| {
            if c.name() == Some("activegate") {
                c.image = Some(image.to_owned());
            }
            c
        })
        .collect();
    rig.w
        .ecs
        .register_task_definition()
        .family(td.family().unwrap_or("activegate"))
        .set_container_definitions(Some(containers))
        .set_volumes(Some(td.volumes().to_vec()))
        .set_cpu(td.cpu().map(str::to_owned))
        .set_memory(td.memory().map(str::to_owned))
        .set_network_mode(td.network_mode().cloned())
        .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
        .set_execution_role_arn(td.execution_role_arn().map(str::to_owned))
        .set_task_role_arn(td.task_role_arn().map(str::to_owned))
        .set_runtime_platform(td.runtime_platform().cloned())
        .send()
        .await
        .expect("register")
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("an ARN")
        .to_owned()
}

async fn update(rig: &Rig, task_definition: &str, breaker: bool) {
    rig.w
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(task_definition)
        .deployment_configuration(deployment(breaker))
        .send()
        .await
        .expect("update service");
}

/// Reads the rollout out of the simulator's timeline (simulated seconds).
pub fn analyse(timeline: &[TimelineEvent], from: f64, until: f64, good: &str) -> Measured {
    let service = format!("/{SERVICE}");
    let ours = |e: &&TimelineEvent| e.subject.ends_with(&service);
    let after: Vec<&TimelineEvent> = timeline
        .iter()
        .filter(ours)
        .filter(|e| e.time >= from && e.time <= until)
        .collect();
    let updates: Vec<&&TimelineEvent> = after
        .iter()
        .filter(|e| e.kind == "service-updated")
        .collect();
    let t0 = updates.first().map_or(from, |e| e.time);
    let acted = [
        updates.get(1).map(|e| e.time),
        after
            .iter()
            .find(|e| e.kind == "deployment-failed")
            .map(|e| e.time),
    ]
    .into_iter()
    .flatten()
    .reduce(f64::min);
    let completed = |good_one: bool| {
        after
            .iter()
            .find(|e| {
                e.kind == "deployment-completed" && e.time > t0 && (e.detail == good) == good_one
            })
            .map(|e| e.time - t0)
    };
    // Healthy tasks over time: a step function from the healthy-count events.
    let mut healthy = timeline
        .iter()
        .filter(ours)
        .rfind(|e| e.kind == "healthy-count" && e.time < t0)
        .and_then(|e| e.detail.parse::<u32>().ok())
        .unwrap_or(0);
    let mut steps = vec![(t0, healthy)];
    for e in after
        .iter()
        .filter(|e| e.kind == "healthy-count" && e.time >= t0)
    {
        healthy = e.detail.parse().unwrap_or(healthy);
        steps.push((e.time, healthy));
    }
    let at = |t: f64| {
        steps
            .iter()
            .rev()
            .find(|(s, _)| *s <= t)
            .map_or(0, |(_, h)| *h)
    };
    let mut none_healthy_s = 0.0;
    for (i, (s, h)) in steps.iter().enumerate() {
        let end = steps.get(i + 1).map_or(until, |n| n.0);
        if *h == 0 {
            none_healthy_s += (end - s).max(0.0);
        }
    }
    let mut failed_service_probes = 0;
    let mut probe = t0 + SERVICE_PROBE;
    while probe <= until {
        failed_service_probes += u32::from(at(probe) == 0);
        probe += SERVICE_PROBE;
    }
    Measured {
        strategy: "",
        case: "",
        outcome: String::new(),
        detect_s: acted.map(|a| a - t0),
        back_s: acted.and(completed(true)),
        done_s: completed(false),
        none_healthy_s,
        failed_service_probes,
        calls: 0,
        observed_s: until - t0,
    }
}
