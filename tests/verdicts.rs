//! A busy or cut-off daemon never blames a good version: the new tasks are judged against
//! the old ones, probed in the same rounds. Against the simulator, with the network path to
//! every task cut for a while (the fake ActiveGates hold their answers; ECS sees nothing).

mod simkit;

use std::time::Duration;

use activegate_lifecycle::rollout::{Outcome, tags};
use activegate_lifecycle::sim::Mode;
use simkit::rig::*;
use simkit::*;

/// Waits until the green task set of `image` runs RUNNING tasks.
async fn until_green_runs(rig: &Rig, first: &str) {
    until(rig.w.sim.real(2000.0), || async {
        rig.w
            .tasks(SERVICE, false)
            .await
            .iter()
            .any(|t| t.task_definition_arn() != Some(first) && t.last_status() == Some("RUNNING"))
            .then_some(())
    })
    .await;
}

fn quarantined(tags: &std::collections::BTreeMap<String, String>) -> bool {
    tags.keys().any(|k| k.starts_with(tags::QUARANTINE_PREFIX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_survives_a_cut_to_every_task_and_is_verified() {
    let rig = Rig::blue_green().await;
    let first = rig.started().await;
    let engine = rig.engine().await;
    let rollout = tokio::spawn(async move { engine.reconcile(Some(V2)).await });
    until_green_runs(&rig, &first).await;
    // Cut for 2 s: with probes every 20 ms, a 0.5 s timeout and 3 failures to fail, a
    // version judged alone would be rolled back several times over.
    rig.w.sim.set_unreachable(true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.w.sim.set_unreachable(false);
    let outcome = rollout.await.expect("join").expect("rollout");
    assert!(
        matches!(outcome, Outcome::Verified { .. }),
        "a good version was blamed for the daemon's cut: {outcome:?}"
    );
    assert!(!quarantined(&rig.service_tags().await));
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_until_the_deadline_the_rollout_is_inconclusive_and_nothing_is_quarantined() {
    let mut rig = Rig::blue_green().await;
    rig.edit_config(&[("deadline_seconds = 30", "deadline_seconds = 4")]);
    let first = rig.started().await;
    let blue_tasks: Vec<String> = rig
        .w
        .tasks(SERVICE, false)
        .await
        .iter()
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect();
    let engine = rig.engine().await;
    let rollout = tokio::spawn(async move { engine.reconcile(Some(V2)).await });
    until_green_runs(&rig, &first).await;
    rig.w.sim.set_unreachable(true);
    let outcome = rollout.await.expect("join").expect("rollout");
    rig.w.sim.set_unreachable(false);
    let Outcome::Inconclusive {
        serving, reasons, ..
    } = &outcome
    else {
        panic!("expected inconclusive, got {outcome:?}")
    };
    assert_eq!(outcome.exit_code(), 1);
    assert_eq!(outcome.label(), "inconclusive");
    assert_eq!(serving, &first);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("old and new tasks failed together")),
        "{reasons:?}"
    );
    let tags = rig.service_tags().await;
    assert!(
        !quarantined(&tags),
        "an unproven version is not quarantined: {tags:?}"
    );
    assert!(!tags.contains_key(tags::ROLLOUT_TO) && !tags.contains_key(tags::VERDICT));
    let now: Vec<String> = rig
        .w
        .tasks(SERVICE, false)
        .await
        .iter()
        .filter(|t| t.task_definition_arn() == Some(first.as_str()))
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect();
    assert_eq!(now, blue_tasks, "blue kept serving, the same tasks");
    // The next run tries the same version again, and with the path back, verifies it.
    let again = rig
        .engine()
        .await
        .reconcile(Some(V2))
        .await
        .expect("rollout");
    assert!(matches!(again, Outcome::Verified { .. }), "{again:?}");
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_is_still_blamed_while_the_old_tasks_answer() {
    let rig = Rig::blue_green().await;
    rig.started().await;
    rig.w.image(BAD, Mode::NeverHealthy);
    let outcome = rig
        .engine()
        .await
        .reconcile(Some(BAD))
        .await
        .expect("rollout");
    assert!(matches!(outcome, Outcome::RolledBack { .. }), "{outcome:?}");
    assert!(quarantined(&rig.service_tags().await));
    rig.w.sim.shutdown().await;
}
