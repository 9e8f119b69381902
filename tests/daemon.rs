//! The daemon in-process against the simulator, driven through its signal
//! channel: the availability monitor and the error budget, SIGHUP bursts that
//! coalesce, and scheduled times missed while a rollout runs.

mod simkit;

use std::time::Duration;

use activegate_lifecycle::daemon::{self, Signal};
use activegate_lifecycle::sim::{Behaviour, Mode};
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
