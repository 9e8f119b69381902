//! Blue/green on ECS task sets against the simulator, for a service of 2 tasks: the last
//! good ActiveGates (blue) keep serving while the new revision (green) is verified and
//! baked beside them. A side prober counts moments with no healthy ActiveGate: zero in
//! every story, good version or bad.

mod simkit;

use std::collections::BTreeSet;

use activegate_lifecycle::rollout::{Outcome, RollbackVia, tags};
use activegate_lifecycle::sim::{Behaviour, Mode};
use simkit::rig::*;
use simkit::side::SideProber;

/// The service's live task sets: (id, status, task definition).
async fn task_sets(rig: &Rig) -> Vec<(String, String, String)> {
    rig.w
        .service(SERVICE)
        .await
        .task_sets()
        .iter()
        .map(|t| {
            (
                t.id().unwrap_or_default().to_owned(),
                t.status().unwrap_or_default().to_owned(),
                t.task_definition().unwrap_or_default().to_owned(),
            )
        })
        .filter(|(_, status, _)| status != "DRAINING")
        .collect()
}

/// ARNs of the RUNNING tasks of `revision`.
async fn running_of(rig: &Rig, revision: &str) -> BTreeSet<String> {
    rig.w
        .tasks(SERVICE, false)
        .await
        .iter()
        .filter(|t| t.task_definition_arn() == Some(revision) && t.last_status() == Some("RUNNING"))
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect()
}

/// A blue/green rig whose service the engine created at V1 (first task set, verified).
async fn started() -> (Rig, String) {
    let rig = Rig::blue_green().await;
    let first = rig.started().await;
    let svc = rig.w.service(SERVICE).await;
    assert_eq!(
        svc.deployment_controller().map(|c| c.r#type().as_str()),
        Some("EXTERNAL"),
        "a service the product creates uses task sets"
    );
    let sets = task_sets(&rig).await;
    assert_eq!(
        sets.iter()
            .map(|(_, status, td)| (status.as_str(), td.as_str()))
            .collect::<Vec<_>>(),
        vec![("PRIMARY", first.as_str())]
    );
    assert_eq!(rig.service_tags().await.get(tags::LAST_GOOD), Some(&first));
    (rig, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_is_verified_beside_blue_then_promoted() {
    let (rig, first) = started().await;
    let blue_tasks = running_of(&rig, &first).await;
    assert_eq!(blue_tasks.len(), 2);
    let side = SideProber::start(&rig.w);
    let outcome = rig
        .engine()
        .await
        .reconcile(Some(V2))
        .await
        .expect("rollout");
    let (rounds, empty) = side.finish().await;
    let Outcome::Verified { from, to, .. } = outcome else {
        panic!("expected verified, got {outcome:?}")
    };
    assert_eq!(from.as_deref(), Some(first.as_str()));
    let sets = task_sets(&rig).await;
    assert_eq!(sets.len(), 1, "blue is deleted: {sets:?}");
    assert_eq!(
        (sets[0].1.as_str(), sets[0].2.as_str()),
        ("PRIMARY", to.as_str())
    );
    let tags = rig.service_tags().await;
    assert_eq!(tags.get(tags::LAST_GOOD), Some(&to));
    for k in [tags::ROLLOUT_TO, tags::VERDICT] {
        assert!(!tags.contains_key(k), "{k} is cleared: {tags:?}");
    }
    // Blue served until green had baked: green's tasks were running while blue's still did.
    let timeline = rig.w.sim.timeline();
    let most_healthy = timeline
        .iter()
        .filter(|e| e.kind == "healthy-count")
        .filter_map(|e| e.detail.parse::<u32>().ok())
        .max();
    assert_eq!(most_healthy, Some(4), "blue and green served side by side");
    assert!(
        running_of(&rig, &first).await.is_empty(),
        "blue's tasks stopped"
    );
    assert!(rounds > 10, "the side prober ran {rounds} rounds");
    assert_eq!(
        empty, 0,
        "{empty} of {rounds} moments without a healthy ActiveGate"
    );
    rig.w.sim.shutdown().await;
}

/// Rolls out `behaviour` as BAD and checks the blue/green promise: green deleted, blue
/// untouched (same tasks), image quarantined, exit 3, no moment without a healthy task.
async fn green_fails(behaviour: Behaviour) -> Vec<String> {
    let (rig, first) = started().await;
    let blue_tasks = running_of(&rig, &first).await;
    rig.w.sim.set_image(BAD, behaviour);
    let side = SideProber::start(&rig.w);
    let outcome = rig
        .engine()
        .await
        .reconcile(Some(BAD))
        .await
        .expect("rollout");
    let (rounds, empty) = side.finish().await;
    let Outcome::RolledBack {
        failed,
        restored,
        reasons,
        via,
        ..
    } = &outcome
    else {
        panic!("expected a roll-back, got {outcome:?}")
    };
    assert_eq!(outcome.exit_code(), 3);
    assert_eq!(*via, RollbackVia::GreenDeleted);
    assert_eq!(restored, &first);
    assert_ne!(failed, &first);
    assert_eq!(
        running_of(&rig, &first).await,
        blue_tasks,
        "blue's tasks are the same before and after"
    );
    let sets = task_sets(&rig).await;
    assert_eq!(
        sets.iter()
            .map(|s| (s.1.as_str(), s.2.as_str()))
            .collect::<Vec<_>>(),
        vec![("PRIMARY", first.as_str())],
        "only blue is left"
    );
    let tags = rig.service_tags().await;
    assert_eq!(tags.get(tags::LAST_GOOD), Some(&first));
    assert!(
        tags.iter()
            .any(|(k, v)| k.starts_with(tags::QUARANTINE_PREFIX) && v == BAD),
        "the image is quarantined: {tags:?}"
    );
    assert!(!tags.contains_key(tags::ROLLOUT_TO) && !tags.contains_key(tags::VERDICT));
    // A crash is caught within a few rounds; the prober must have run through it.
    assert!(rounds > 3, "the side prober ran {rounds} rounds");
    assert_eq!(
        empty, 0,
        "{empty} of {rounds} moments without a healthy ActiveGate"
    );

    // The next run does not try it again.
    let again = rig
        .engine()
        .await
        .reconcile(Some(BAD))
        .await
        .expect("rollout");
    assert_eq!(again, Outcome::Quarantined { image: BAD.into() });
    rig.w.sim.shutdown().await;
    reasons.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_healthy_green_is_deleted_and_blue_never_stops() {
    let reasons = green_fails(Behaviour::of(Mode::NeverHealthy)).await;
    assert!(
        reasons.iter().any(|r| r.contains("HTTP 503")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_that_fails_during_the_bake_is_deleted_while_blue_serves() {
    // Healthy from 20 s, failing from 100 s (simulated): caught during the bake.
    let reasons = green_fails(Behaviour {
        mode: Mode::FailsAfter,
        start_seconds: Some(20.0),
        after_seconds: Some(100.0),
        exit_code: None,
    })
    .await;
    assert!(
        reasons.iter().any(|r| r.contains("HTTP 503")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_that_crashes_after_running_is_deleted() {
    let reasons = green_fails(Behaviour {
        mode: Mode::CrashesAfter,
        start_seconds: Some(0.0),
        after_seconds: Some(10.0),
        exit_code: Some(137),
    })
    .await;
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("after RUNNING") && r.contains("exited 137")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_with_a_wrong_certificate_is_deleted() {
    let reasons = green_fails(Behaviour::of(Mode::WrongCertificate)).await;
    assert!(
        reasons.iter().any(|r| r.contains("TLS failed")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_names_the_step_a_reconcile_takes_and_changes_nothing() {
    let (rig, _) = started().await;
    let engine = rig.engine().await;
    let plan = engine.plan(None).await.expect("plan");
    assert!(
        plan.next_step.starts_with("nothing to do"),
        "{}",
        plan.next_step
    );
    let before = rig.w.sim.calls();
    let plan = engine.plan(Some(V2)).await.expect("plan");
    assert_eq!(plan.strategy.as_str(), "blue-green");
    assert!(
        plan.next_step.starts_with("create a task set at 100 %")
            && plan.next_step.contains("green beside"),
        "{}",
        plan.next_step
    );
    let after = rig.w.sim.calls();
    for op in ["RegisterTaskDefinition", "CreateTaskSet", "TagResource"] {
        assert_eq!(before.get(op), after.get(op), "plan called {op}");
    }
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_service_moves_to_blue_green_beside_itself_without_a_gap() {
    let mut rig = Rig::new().await;
    let first = rig.started().await;
    let image = rig.w.image_of(&first).await.expect("image");
    let plan = rig.engine().await.plan(None).await.expect("plan");
    assert_eq!(plan.strategy.as_str(), "rolling");
    assert!(
        plan.migration
            .as_deref()
            .is_some_and(|m| m.contains("activegate-bg")),
        "{:?}",
        plan.migration
    );
    let side = SideProber::start_in_cluster(&rig.w);
    let outcome = rig.engine().await.migrate().await.expect("migrate");
    let (rounds, empty) = side.finish().await;
    let Outcome::Migrated {
        from_service,
        to_service,
        revision,
    } = &outcome
    else {
        panic!("expected a migration, got {outcome:?}")
    };
    assert_eq!(
        (from_service.as_str(), to_service.as_str()),
        (SERVICE, "activegate-bg")
    );
    let new = rig.w.service("activegate-bg").await;
    assert_eq!(
        new.deployment_controller().map(|c| c.r#type().as_str()),
        Some("EXTERNAL")
    );
    assert_eq!(
        rig.w.image_of(revision).await.as_deref(),
        Some(image.as_str())
    );
    let old = rig.w.service(SERVICE).await;
    assert_eq!(old.desired_count(), 0, "the old service is scaled to 0");
    assert!(rounds > 3);
    assert_eq!(
        empty, 0,
        "{empty} of {rounds} moments without a healthy ActiveGate"
    );

    // The old name now says where the service went; the new name rolls blue/green.
    let err = rig
        .engine()
        .await
        .reconcile(None)
        .await
        .expect_err("the old service is retired");
    assert!(
        err.to_string().contains("service = \"activegate-bg\""),
        "{err}"
    );
    rig.edit_config(&[("service = \"activegate\"", "service = \"activegate-bg\"")]);
    let again = rig.engine().await.reconcile(None).await.expect("reconcile");
    assert!(matches!(again, Outcome::Unchanged { .. }), "{again:?}");
    let tags = rig.service_tags_of("activegate-bg").await;
    assert_eq!(tags.get(tags::LAST_GOOD), Some(revision));
    rig.w.sim.shutdown().await;
}
