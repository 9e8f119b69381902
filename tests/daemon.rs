//! The daemon in-process against the simulator, driven through its signal
//! channel: the availability monitor and the error budget, SIGHUP bursts that
//! coalesce, scheduled times missed while a rollout runs, and the retry with
//! backoff after a reconcile that failed for a passing reason.

mod simkit;

use std::time::Duration;

use activegate_lifecycle::daemon::board::Trigger;
use activegate_lifecycle::daemon::retry::Backoff;
use activegate_lifecycle::daemon::{self, Signal};
use activegate_lifecycle::sim::{Behaviour, Fault, Mode};
use simkit::rig::*;
use simkit::*;

fn edit(rig: &Rig, f: impl FnOnce(String) -> String) {
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, f(text)).expect("write");
}

fn count(t: &daemon::board::TargetStatus, outcome: &str) -> u64 {
    t.outcomes.get(outcome).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_is_counted_and_a_spent_budget_pauses_scheduled_rollouts() {
    let rig = Rig::new().await;
    // Healthy for a while, then failing: ECS replaces the tasks, and in between none is healthy.
    rig.w.sim.set_image(
        V1,
        Behaviour {
            mode: Mode::FailsAfter,
            start_seconds: Some(20.0),
            after_seconds: Some(150.0),
            exit_code: None,
        },
    );
    edit(&rig, |t| {
        t.replace(
            "manifest = ",
            "schedule = \"* * * * * *\"\nslo_percent = 99.9999999\nmanifest = ",
        )
    });
    let d = rig.daemon();
    d.until(|t| count(t, "verified") == 1).await;
    let t = d
        .until(|t| t.downtime_seconds > 0.0 && t.skipped_for_budget > 0)
        .await;
    assert!(t.availability.is_some_and(|a| a < 1.0), "{t:?}");
    assert!(
        t.error_budget_remaining_seconds.is_some_and(|b| b < 0.0),
        "{t:?}"
    );
    assert!(t.probes_failed > 0 && t.probes_ok > 0, "{t:?}");
    let metrics = d.board.metrics();
    assert!(
        metrics.contains("activegate_lifecycle_skipped_for_budget_total{target=\"prod\"}"),
        "{metrics}"
    );
    let ratio: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("activegate_lifecycle_availability_ratio{target=\"prod\"} "))
        .and_then(|v| v.parse().ok())
        .expect("an availability gauge");
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    // A manual reload still rolls.
    let before = t.outcomes.values().sum::<u64>() + t.errors.values().sum::<u64>();
    d.signals.send(Signal::Reload).await.expect("send");
    d.until(|t| t.outcomes.values().sum::<u64>() + t.errors.values().sum::<u64>() > before)
        .await;
    d.stop().await;
    // The downtime survives in the service's tags.
    let tags = rig.service_tags().await;
    assert!(
        tags.get("activegate-lifecycle:downtime")
            .is_some_and(|v| !v.is_empty()),
        "{tags:?}"
    );
    assert!(
        tags.contains_key("activegate-lifecycle:observed-since"),
        "{tags:?}"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sighups_during_a_rollout_makes_one_follow_up_run() {
    let rig = Rig::new().await;
    let d = rig.daemon();
    d.until(|t| count(t, "verified") == 1).await;
    // A slower-starting new version (within the probes' grace): the next rollout takes a while.
    rig.w.sim.set_image(
        V2,
        Behaviour {
            mode: Mode::Healthy,
            start_seconds: Some(50.0),
            after_seconds: None,
            exit_code: None,
        },
    );
    edit(&rig, |t| {
        t.replace(&format!("image = \"{V1}\""), &format!("image = \"{V2}\""))
    });
    d.signals.send(Signal::Reload).await.expect("send");
    d.until(|t| t.running).await;
    for _ in 0..5 {
        d.signals.send(Signal::Reload).await.expect("send");
    }
    let t = d
        .until(|t| count(t, "verified") == 2 && count(t, "unchanged") == 1 && !t.running)
        .await;
    // Give any stray extra run the chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t2 = d.board.snapshot().targets["prod"].clone();
    assert_eq!(
        t2.outcomes, t.outcomes,
        "one follow-up run for the whole burst"
    );
    assert_eq!(d.board.snapshot().reloads, 6);
    d.stop().await;
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_times_that_pass_during_a_rollout_are_skipped_and_logged() {
    let rig = Rig::new().await;
    edit(&rig, |t| {
        t.replace("manifest = ", "schedule = \"* * * * * *\"\nmanifest = ")
    });
    let d = rig.daemon();
    d.until(|t| count(t, "verified") == 1).await;
    // A rollout that takes longer than the schedule's second: a long bake.
    edit(&rig, |t| {
        t.replace(&format!("image = \"{V1}\""), &format!("image = \"{V2}\""))
            .replace("bake_seconds = 0.3", "bake_seconds = 2.5")
    });
    d.signals.send(Signal::Reload).await.expect("send");
    let t = d.until(|t| count(t, "verified") == 2).await;
    assert!(t.missed_fires >= 1, "{t:?}");
    assert!(
        d.board
            .metrics()
            .contains("activegate_lifecycle_missed_fires_total{target=\"prod\"}")
    );
    d.stop().await;
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_of_one_group_never_roll_at_the_same_time() {
    let rig = Rig::new().await;
    edit(&rig, |t| {
        let target_start = t.find("[[target]]").expect("a target");
        let second = t[target_start..]
            .replace("name = \"prod\"", "name = \"prod-b\"")
            .replace("service = \"activegate\"", "service = \"activegate-b\"")
            .replace("family = \"activegate\"", "family = \"activegate-b\"");
        format!("{t}\n{second}").replace("manifest = ", "group = \"zone-a\"\nmanifest = ")
    });
    let d = rig.daemon();
    let both = until(Duration::from_secs(40), || async {
        let s = d.board.snapshot();
        let a = s.targets.get("prod")?.clone();
        let b = s.targets.get("prod-b")?.clone();
        (count(&a, "verified") == 1 && count(&b, "verified") == 1).then_some((a, b))
    })
    .await;
    let (a, b) = both;
    let (a0, a1) = (
        a.last_started.expect("started"),
        a.last_finished.expect("finished"),
    );
    let (b0, b1) = (
        b.last_started.expect("started"),
        b.last_finished.expect("finished"),
    );
    assert!(
        a1 <= b0 || b1 <= a0,
        "the runs overlapped: {a0}..{a1} and {b0}..{b1}"
    );
    d.stop().await;
    rig.w.sim.shutdown().await;
}

/// The daemon as `Rig::daemon` starts it, with the given retry backoff.
fn daemon_retrying(rig: &Rig, retry: Backoff) -> Running {
    rig.daemon_with(|o| o.retry = retry)
}

/// DescribeServices answers ThrottlingException to every call, and the daemon makes one attempt
/// per AWS call: every reconcile fails at once, retriably.
fn throttle_every_describe(rig: &Rig) {
    edit(rig, |t| t.replace("max_attempts = 10", "max_attempts = 1"));
    rig.w.sim.set_fault(
        "DescribeServices",
        Fault {
            throttle: 1.0,
            ..Fault::default()
        },
    );
}

/// The value of a per-target metric line of `prod`.
fn gauge(metrics: &str, name: &str) -> f64 {
    let prefix = format!("activegate_lifecycle_{name}{{target=\"prod\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for prod in:\n{metrics}"))
}

/// The wait the pending retry was armed with, as the board shows it: the time from the end of
/// the failed run to `retry_at`.
fn armed_wait(t: &daemon::board::TargetStatus) -> Duration {
    let at = t.retry_at.expect("a pending retry");
    let finished = t.last_finished.expect("a finished run");
    (at - finished)
        .to_std()
        .expect("the retry is after the failure")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_a_schedule_retries_a_throttled_reconcile_by_itself() {
    let rig = Rig::new().await;
    throttle_every_describe(&rig);
    let base = Duration::from_millis(400);
    let d = daemon_retrying(
        &rig,
        Backoff {
            base,
            cap: Duration::from_millis(800),
        },
    );

    // The start-up reconcile is throttled: a retry is armed after the base wait (less ≤ 10 % jitter).
    let t = d
        .until(|t| t.retry_attempt == 1 && t.retry_at.is_some())
        .await;
    assert!(t.schedule.is_none() && t.next_run.is_none(), "{t:?}");
    assert_eq!(t.errors.get("throttled"), Some(&1), "{t:?}");
    assert!(t.outcomes.is_empty(), "{t:?}");
    let wait = armed_wait(&t);
    assert!(wait <= base && wait >= base.mul_f64(0.9), "{wait:?}");
    assert!(
        (t.retry_backoff_seconds - wait.as_secs_f64()).abs() < 0.002,
        "{t:?}"
    );
    assert_eq!(t.retries, 0, "{t:?}");
    // In /status: retry_at in RFC 3339.
    let status = serde_json::to_value(d.board.snapshot()).expect("JSON");
    let prod = &status["targets"]["prod"];
    assert_eq!(prod["retry_attempt"], 1, "{prod}");
    assert_eq!(prod["retries"], 0, "{prod}");
    let at = prod["retry_at"].as_str().expect("retry_at is a string");
    chrono::DateTime::parse_from_rfc3339(at).expect("retry_at in RFC 3339");
    let metrics = d.board.metrics();
    assert!(
        metrics.contains("# TYPE activegate_lifecycle_reconcile_retries_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE activegate_lifecycle_reconcile_retry_backoff_seconds gauge"),
        "{metrics}"
    );
    assert_eq!(gauge(&metrics, "reconcile_retries_total"), 0.0);
    let backoff = gauge(&metrics, "reconcile_retry_backoff_seconds");
    assert!((0.36..=0.4).contains(&backoff), "{backoff}");

    // Still throttled: the retry runs by itself, fails again, and the next wait doubles.
    let t = d
        .until(|t| t.retry_attempt == 2 && t.retry_at.is_some())
        .await;
    assert_eq!(t.retries, 1, "{t:?}");
    assert_eq!(t.last_trigger, Some(Trigger::Retry), "{t:?}");
    assert_eq!(t.errors.get("throttled"), Some(&2), "{t:?}");
    let wait = armed_wait(&t);
    assert!(
        wait <= base * 2 && wait >= (base * 2).mul_f64(0.9),
        "{wait:?}"
    );

    // AWS answers again: the pending retry creates the service, no trigger sent.
    rig.w.sim.clear_faults();
    let t = d.until(|t| count(t, "verified") == 1 && !t.running).await;
    assert_eq!(t.last_trigger, Some(Trigger::Retry), "{t:?}");
    assert_eq!(t.retry_attempt, 0, "{t:?}");
    assert_eq!(t.retry_at, None, "{t:?}");
    assert_eq!(t.retry_backoff_seconds, 0.0, "{t:?}");
    assert_eq!(t.last_error, None, "{t:?}");
    assert!(t.retries >= 2, "{t:?}");
    let metrics = d.board.metrics();
    assert_eq!(gauge(&metrics, "reconcile_retries_total"), t.retries as f64);
    assert_eq!(gauge(&metrics, "reconcile_retry_backoff_seconds"), 0.0);
    d.stop().await;
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_needs_a_new_config_arms_no_retry_and_drops_the_pending_one() {
    let rig = Rig::new().await;
    // The manifest from a copy this test can take away.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/activegate-k8s.yaml"
    );
    let manifest = rig.dir.path().join("activegate-k8s.yaml");
    std::fs::copy(fixture, &manifest).expect("copy the manifest");
    edit(&rig, |t| {
        t.replace(fixture, manifest.to_str().expect("UTF-8"))
    });
    throttle_every_describe(&rig);
    // Long enough that the retry never comes during the test.
    let d = daemon_retrying(
        &rig,
        Backoff {
            base: Duration::from_secs(600),
            cap: Duration::from_secs(600),
        },
    );
    let t = d
        .until(|t| t.retry_attempt == 1 && t.retry_at.is_some())
        .await;
    assert!(t.retry_backoff_seconds >= 540.0, "{t:?}");

    // The manifest is gone: a trigger runs at once, fails for good, and the retry is dropped.
    std::fs::remove_file(&manifest).expect("remove the manifest");
    assert!(d.board.trigger("prod", Trigger::Manual));
    let t = d.until(|t| t.errors.contains_key("config")).await;
    assert_eq!(t.last_trigger, Some(Trigger::Manual), "{t:?}");
    assert!(
        t.last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot read the manifest")),
        "{t:?}"
    );
    assert_eq!(t.retry_attempt, 0, "{t:?}");
    assert_eq!(t.retry_at, None, "{t:?}");
    assert_eq!(t.retry_backoff_seconds, 0.0, "{t:?}");
    assert_eq!(t.retries, 0, "{t:?}");
    let status = serde_json::to_value(d.board.snapshot()).expect("JSON");
    assert!(status["targets"]["prod"]["retry_at"].is_null(), "{status}");
    assert_eq!(
        gauge(&d.board.metrics(), "reconcile_retry_backoff_seconds"),
        0.0
    );
    d.stop().await;
    rig.w.sim.shutdown().await;
}
