//! Side by side on one simulated ActiveGate service (2 tasks): this daemon with its default
//! settings, blue/green on ECS task sets (the default for services it creates) and its rolling
//! strategy (rolling update 100 % / 200 %), ECS's deployment circuit breaker alone (with
//! roll-back), and a deploy script that updates the service, waits for it to be stable and rolls
//! back after its timeout. ActiveGate-realistic timings in simulated seconds; the simulator runs
//! them `speed` times faster, and every time reported is simulated (= real-world) seconds, read
//! from the simulator's own timeline.

use std::collections::BTreeMap;
use std::time::Duration;

use activegate_lifecycle::config::{ProbeConfig, RolloutSettings};
use activegate_lifecycle::rollout::{Outcome, RollbackVia};
use activegate_lifecycle::sim::{Behaviour, Mode, TimelineEvent};
use aws_config::retry::RetryConfig;

use super::rig::*;
use super::*;

/// An ActiveGate answers healthy this long after its container starts.
pub const START: f64 = 90.0;
/// The crashing version exits this long after RUNNING (after it was healthy for a while).
pub const CRASH_AFTER: f64 = 150.0;
/// The version that fails after it was healthy answers 503 from this long after RUNNING on:
/// during the daemon's bake (healthy from 90 s, 3 healthy probes, then the bake).
pub const FAIL_AFTER: f64 = 150.0;
/// The deploy script: `aws ecs wait services-stable` polls every 15 s; it gives up after 300 s.
pub const SCRIPT_POLL: f64 = 15.0;
pub const SCRIPT_TIMEOUT: f64 = 300.0;
/// A service-level probe (is any task healthy?) every this many seconds.
pub const SERVICE_PROBE: f64 = 15.0;
/// Simulated seconds watched at least after a strategy returned (old tasks take a few seconds
/// to stop after the daemon deleted their task set).
pub const SETTLE: f64 = 30.0;
/// The service's desired count: tasks above it are the extra cost of a rollout.
pub const DESIRED: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// This daemon, `[target.rollout] strategy = "blue-green"` (the service created by it).
    BlueGreen,
    /// This daemon, `strategy = "rolling"`.
    Rolling,
    Breaker,
    Script,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::BlueGreen,
        Strategy::Rolling,
        Strategy::Breaker,
        Strategy::Script,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Strategy::BlueGreen => "this daemon, blue-green (default)",
            Strategy::Rolling => "this daemon, rolling",
            Strategy::Breaker => "ECS circuit breaker alone",
            Strategy::Script => "deploy script (300 s timeout)",
        }
    }

    /// This daemon (either strategy), as opposed to ECS alone or the script.
    pub fn is_daemon(self) -> bool {
        matches!(self, Strategy::BlueGreen | Strategy::Rolling)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Bad,
    FailsAfterHealthy,
    CrashAfterRunning,
    Good,
}

impl Case {
    pub const ALL: [Case; 4] = [
        Case::Bad,
        Case::FailsAfterHealthy,
        Case::CrashAfterRunning,
        Case::Good,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Case::Bad => "bad version (never healthy)",
            Case::FailsAfterHealthy => "fails after it was healthy (503 from 150 s)",
            Case::CrashAfterRunning => "crash after RUNNING (exit at 150 s)",
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
    /// How the daemon rolled back, if it did.
    pub via: Option<&'static str>,
    /// From the rollout (UpdateService, or CreateTaskSet of green) to the failure being acted
    /// on (a roll-back call, green's task set deleted, or ECS marking the deployment FAILED);
    /// `None`: never, within the window.
    pub detect_s: Option<f64>,
    /// From the failure acted on until no task of the new (bad) version runs any more, and none
    /// did again until the end of the observation; `None`: not within the window.
    pub only_good_s: Option<f64>,
    /// From the rollout to the good revision's deployment COMPLETED again (rolling), or green's
    /// task set gone (blue/green).
    pub back_s: Option<f64>,
    /// From the rollout to declared good (the daemon's verdict, ECS's COMPLETED, the
    /// script's "stable"; for a failing version too, when ECS or the script took it for good).
    pub done_s: Option<f64>,
    /// Good version: from the rollout until no task of the old version runs any more.
    pub old_gone_s: Option<f64>,
    /// Time with no healthy task, from the rollout to the end of the observation.
    pub none_healthy_s: f64,
    /// Service-level probes (every 15 s: is any task healthy?) that failed.
    pub failed_service_probes: u32,
    /// Task-seconds above the desired count (2) from the rollout to the end of the
    /// observation: a task counts from its launch to its stop, as Fargate bills it.
    pub extra_task_s: f64,
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

/// The daemon's settings in the comparison: the product's defaults (`[target.probe]`,
/// `[target.rollout]` when nothing is configured, `ProbeConfig::default()` and
/// `RolloutSettings::default()` from `src/config.rs`).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Defaults {
    pub probe_interval_s: f64,
    pub probe_timeout_s: f64,
    pub grace_s: f64,
    pub healthy_after: u32,
    pub unhealthy_after: u32,
    pub bake_s: f64,
    pub deadline_s: f64,
}

pub fn defaults() -> Defaults {
    let (p, r) = (ProbeConfig::default(), RolloutSettings::default());
    Defaults {
        probe_interval_s: p.interval_seconds.0,
        probe_timeout_s: p.timeout_seconds.0,
        grace_s: p.grace_seconds.0,
        healthy_after: p.healthy_after.0,
        unhealthy_after: p.unhealthy_after.0,
        bake_s: r.bake_seconds.0,
        deadline_s: r.deadline_seconds.0,
    }
}

fn via(v: RollbackVia) -> &'static str {
    match v {
        RollbackVia::GreenDeleted => "green deleted",
        RollbackVia::StopServiceDeployment => "StopServiceDeployment",
        RollbackVia::UpdateService => "new deployment of the last good",
        RollbackVia::AlreadyRestored => "ECS had rolled back",
    }
}

/// One strategy against one case, on a fresh simulator running `speed` times faster; the
/// service is watched for `window` simulated seconds after the rollout, and at least `SETTLE`
/// after the daemon's reconcile (or the script) returned.
pub async fn measure(strategy: Strategy, case: Case, speed: f64, window: f64) -> Measured {
    let d = defaults();
    let w = World::with(RetryConfig::disabled(), speed).await;
    let mut rig = Rig::with_world(w, |_| String::new());
    let secs = |s: f64| format!("{}", s / speed);
    // The first revision is created with a 1 s bake (setup only: it is verified either way),
    // then the config goes back to the default bake for the rollout measured.
    let bake = format!("bake_seconds = {}", secs(d.bake_s));
    let setup_bake = format!("bake_seconds = {}", secs(1.0));
    let mut edits = vec![
        ("bake_seconds = 0.3", setup_bake.clone()),
        (
            "deadline_seconds = 30",
            format!("deadline_seconds = {}", secs(d.deadline_s)),
        ),
        (
            "interval_seconds = 0.02",
            format!("interval_seconds = {}", secs(d.probe_interval_s)),
        ),
        // A TLS handshake on a busy 2-core machine needs more than 2 s / speed.
        (
            "timeout_seconds = 0.5",
            format!(
                "timeout_seconds = {}",
                (d.probe_timeout_s / speed).max(0.25)
            ),
        ),
        (
            "grace_seconds = 0.3",
            format!("grace_seconds = {}", secs(d.grace_s)),
        ),
        (
            "healthy_after = 2",
            format!("healthy_after = {}", d.healthy_after),
        ),
        (
            "unhealthy_after = 3",
            format!("unhealthy_after = {}", d.unhealthy_after),
        ),
    ];
    // Blue/green: the engine creates the service with the EXTERNAL controller and its first
    // task set; everyone else gets the rolling service.
    if strategy == Strategy::BlueGreen {
        edits.push((
            "strategy = \"rolling\"",
            "strategy = \"blue-green\"".to_owned(),
        ));
    }
    let edits: Vec<(&str, &str)> = edits.iter().map(|(f, t)| (*f, t.as_str())).collect();
    rig.edit_config(&edits);
    let healthy = Behaviour {
        start_seconds: Some(START),
        ..Behaviour::of(Mode::Healthy)
    };
    for image in [V1, V2] {
        rig.w.sim.set_image(image, healthy);
    }
    let failing = |mode, after: Option<f64>, exit_code| Behaviour {
        mode,
        start_seconds: Some(START),
        after_seconds: after,
        exit_code,
    };
    let image = match case {
        Case::Good => V2,
        Case::Bad => {
            rig.w
                .sim
                .set_image(BAD, failing(Mode::NeverHealthy, None, None));
            BAD
        }
        Case::FailsAfterHealthy => {
            rig.w
                .sim
                .set_image(BAD, failing(Mode::FailsAfter, Some(FAIL_AFTER), None));
            BAD
        }
        Case::CrashAfterRunning => {
            rig.w
                .sim
                .set_image(BAD, failing(Mode::CrashesAfter, Some(CRASH_AFTER), Some(1)));
            BAD
        }
    };
    let good = rig.started().await;
    rig.edit_config(&[(setup_bake.as_str(), bake.as_str())]);
    let from = rig.w.sim.now();
    let (outcome, rolled_back_via, calls, declared) = match strategy {
        Strategy::BlueGreen | Strategy::Rolling => {
            let engine = rig.engine().await;
            let result = engine.reconcile(Some(image)).await;
            let at = rig.w.sim.now();
            let calls = engine.aws().counts().values().map(|c| c.calls).sum();
            match result {
                Ok(o) => {
                    let v = match &o {
                        Outcome::RolledBack { via: v, .. } => Some(via(*v)),
                        _ => None,
                    };
                    let declared = matches!(o, Outcome::Verified { .. }).then_some(at);
                    (o.label().to_owned(), v, calls, declared)
                }
                Err(e) => (format!("error: {e}"), None, calls, None),
            }
        }
        Strategy::Breaker | Strategy::Script => {
            let next = register_like(&rig, &good, image).await;
            update(&rig, &next, strategy == Strategy::Breaker).await;
            if strategy == Strategy::Breaker {
                // ECS alone: watched below, like everyone, for the window.
                ("ECS alone".to_owned(), None, 1, None)
            } else {
                let (outcome, calls, stable) = script(&rig, &good, &next, speed).await;
                (outcome, None, calls, stable)
            }
        }
    };
    // Watch what follows until the window ends, and what the strategy's last calls did.
    let now = rig.w.sim.now();
    let end = (from + window).max(now + SETTLE);
    tokio::time::sleep(real(end - now, speed)).await;
    let until = rig.w.sim.now();
    let timeline = rig.w.sim.timeline();
    rig.w.sim.shutdown().await;
    // ECS alone declares a version good when its deployment is COMPLETED.
    let declared = if strategy == Strategy::Breaker {
        completed(&timeline, from, |revision| revision != good)
    } else {
        declared
    };
    let mut m = analyse(&timeline, from, until, &good, image, V1, declared);
    m.strategy = strategy.label();
    m.case = case.label();
    m.calls = calls;
    m.via = rolled_back_via;
    m.outcome = match (strategy, &m.detect_s) {
        (Strategy::Breaker, Some(_)) => "deployment FAILED, rolled back by ECS".into(),
        (Strategy::Breaker, None) if case == Case::Good => "COMPLETED".into(),
        (Strategy::Breaker, None) => "not detected".into(),
        _ => outcome,
    };
    m
}

/// The deploy script: poll DescribeServices until stable or the timeout, then roll back.
/// Returns its verdict, its AWS calls and when it declared the version stable.
async fn script(rig: &Rig, good: &str, next: &str, speed: f64) -> (String, u64, Option<f64>) {
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
            let at = rig.w.sim.now();
            return ("stable: declared a success".into(), calls, Some(at));
        }
        if rig.w.sim.now() - start >= SCRIPT_TIMEOUT {
            update(rig, good, false).await;
            return ("timed out: rolled back".into(), calls + 1, None);
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

/// Events about the service itself, its task sets and its service deployments.
fn of_service(e: &TimelineEvent) -> bool {
    let service = format!("/{SERVICE}");
    e.subject.ends_with(&service) || e.subject.contains(&format!("{service}/"))
}

/// The first deployment COMPLETED after `from` whose revision satisfies `which`.
fn completed(timeline: &[TimelineEvent], from: f64, which: impl Fn(&str) -> bool) -> Option<f64> {
    timeline
        .iter()
        .filter(|e| of_service(e) && e.time > from)
        .find(|e| e.kind == "deployment-completed" && which(&e.detail))
        .map(|e| e.time)
}

/// One task's life from the timeline (simulated seconds); `end` is `None` while it runs.
#[derive(Debug, Default)]
struct Life {
    image: String,
    start: f64,
    end: Option<f64>,
}

/// Every task of the world (the comparison's world has this one service), launch to stop.
fn lives(timeline: &[TimelineEvent]) -> Vec<Life> {
    let mut by_task: BTreeMap<&str, (Life, bool, Option<f64>)> = BTreeMap::new();
    for e in timeline {
        if !e.subject.contains(":task/") {
            continue;
        }
        match e.kind.as_str() {
            "task-launched" => {
                let image = e.detail.rsplit_once(" at ").map_or("", |(i, _)| i);
                by_task.insert(
                    &e.subject,
                    (
                        Life {
                            image: image.to_owned(),
                            start: e.time,
                            end: None,
                        },
                        false,
                        None,
                    ),
                );
            }
            "task-running" => {
                if let Some(t) = by_task.get_mut(e.subject.as_str()) {
                    t.1 = true;
                }
            }
            // A task stopped before RUNNING goes straight to STOPPED with this event only.
            "task-stopping" => {
                if let Some(t) = by_task.get_mut(e.subject.as_str()) {
                    t.2 = Some(e.time);
                }
            }
            "task-stopped" => {
                if let Some(t) = by_task.get_mut(e.subject.as_str()) {
                    t.0.end = Some(e.time);
                }
            }
            _ => {}
        }
    }
    by_task
        .into_values()
        .map(|(mut life, ran, stopping)| {
            if life.end.is_none() && !ran {
                life.end = stopping;
            }
            life
        })
        .collect()
}

/// `image` as launched: the reference itself or pinned to a digest.
fn is_image(launched: &str, image: &str) -> bool {
    launched == image || launched.starts_with(&format!("{image}@"))
}

/// When the last task of `image` stopped, if none ran at `until` (`from` if there were none).
fn last_stop(lives: &[Life], image: &str, from: f64, until: f64) -> Option<f64> {
    let mut last = from;
    for l in lives.iter().filter(|l| is_image(&l.image, image)) {
        match l.end {
            Some(end) if end <= until => last = last.max(end),
            _ => return None,
        }
    }
    Some(last)
}

/// Task-seconds above `DESIRED` between `from` and `until`.
fn extra_task_seconds(lives: &[Life], from: f64, until: f64) -> f64 {
    let mut changes: Vec<(f64, i64)> = Vec::new();
    let mut alive: i64 = 0;
    for l in lives {
        let end = l.end.unwrap_or(f64::INFINITY);
        if l.start <= from && end > from {
            alive += 1;
        } else if l.start > from && l.start < until {
            changes.push((l.start, 1));
        }
        if end > from && end < until {
            changes.push((end, -1));
        }
    }
    changes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut extra, mut t) = (0.0, from);
    for (at, delta) in changes {
        extra += (at - t) * (alive - DESIRED as i64).max(0) as f64;
        alive += delta;
        t = at;
    }
    extra + (until - t) * (alive - DESIRED as i64).max(0) as f64
}

/// Reads the rollout out of the simulator's timeline (simulated seconds): `good` is the
/// revision serving before, `new_image` the image rolled out, `old_image` the image before;
/// `declared` when the strategy declared the new version good.
pub fn analyse(
    timeline: &[TimelineEvent],
    from: f64,
    until: f64,
    good: &str,
    new_image: &str,
    old_image: &str,
    declared: Option<f64>,
) -> Measured {
    let after: Vec<&TimelineEvent> = timeline
        .iter()
        .filter(|e| of_service(e))
        .filter(|e| e.time >= from && e.time <= until)
        .collect();
    let updates: Vec<&&TimelineEvent> = after
        .iter()
        .filter(|e| e.kind == "service-updated")
        .collect();
    // Blue/green: the rollout is green's CreateTaskSet.
    let green = after.iter().find(|e| e.kind == "task-set-created");
    let t0 = updates
        .first()
        .map(|e| e.time)
        .or(green.map(|e| e.time))
        .unwrap_or(from);
    let green_event = |kind: &str| {
        green.and_then(|g| {
            after
                .iter()
                .find(|e| e.kind == kind && e.subject == g.subject)
                .map(|e| e.time)
        })
    };
    let acted = [
        // The script's roll-back, or the daemon's fresh deployment of the last good revision.
        updates.get(1).map(|e| e.time),
        // ECS's breaker.
        after
            .iter()
            .find(|e| e.kind == "deployment-failed")
            .map(|e| e.time),
        // The daemon's rolling roll-back onto the old tasks.
        after
            .iter()
            .find(|e| e.kind == "service-deployment-stop-requested")
            .map(|e| e.time),
        // The daemon's blue/green: green's task set deleted.
        green_event("task-set-draining"),
    ]
    .into_iter()
    .flatten()
    .reduce(f64::min);
    let back = match green {
        Some(_) => acted.and(green_event("task-set-deleted")),
        None => acted.and(completed(timeline, t0, |revision| revision == good)),
    };
    let lives = lives(timeline);
    // Healthy tasks over time: a step function from the healthy-count events.
    let mut healthy = timeline
        .iter()
        .filter(|e| of_service(e))
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
        via: None,
        detect_s: acted.map(|a| a - t0),
        only_good_s: acted
            .and_then(|a| last_stop(&lives, new_image, a, until).map(|stop| (stop - a).max(0.0))),
        back_s: back.map(|b| b - t0),
        done_s: declared.map(|d| d - t0),
        old_gone_s: last_stop(&lives, old_image, t0, until).map(|stop| stop - t0),
        none_healthy_s,
        failed_service_probes,
        extra_task_s: extra_task_seconds(&lives, t0, until),
        calls: 0,
        observed_s: until - t0,
    }
}
