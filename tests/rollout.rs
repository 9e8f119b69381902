//! The rollout engine against the simulator, each test a short story for a
//! service of 2 tasks. A side prober counts moments in which no task of the
//! service answered its HTTPS health check: it must stay at zero.

mod simkit;

use activegate_lifecycle::rollout::{Outcome, RollbackVia, tags};
use activegate_lifecycle::sim::{Behaviour, Fault, Mode};
use simkit::rig::*;
use simkit::side::SideProber;
use simkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_image_is_verified_and_becomes_last_good() {
    let rig = Rig::new().await;
    let first = rig.started().await;
    assert_eq!(rig.service_tags().await.get(tags::LAST_GOOD), Some(&first));
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
    let tags = rig.service_tags().await;
    assert_eq!(tags.get(tags::LAST_GOOD), Some(&to));
    assert!(
        !tags.contains_key(tags::ROLLOUT_TO),
        "the in-flight mark is cleared: {tags:?}"
    );
    let svc = rig.w.service(SERVICE).await;
    assert_eq!(svc.task_definition(), Some(to.as_str()));
    assert!(rounds > 10, "the side prober ran {rounds} rounds");
    assert_eq!(
        empty, 0,
        "{empty} of {rounds} moments without a healthy ActiveGate"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_healthy_image_is_rolled_back_and_quarantined() {
    let rig = Rig::new().await;
    let first = rig.started().await;
    rig.w.image(BAD, Mode::NeverHealthy);
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
        logs,
        ..
    } = &outcome
    else {
        panic!("expected a roll-back, got {outcome:?}")
    };
    assert_eq!(outcome.exit_code(), 3);
    assert_eq!(restored, &first);
    assert!(!reasons.is_empty());
    assert!(
        !logs.is_empty(),
        "the failed tasks' last log lines are attached"
    );
    assert!(rounds > 10, "the side prober ran {rounds} rounds");
    assert_eq!(
        empty, 0,
        "{empty} of {rounds} moments without a healthy ActiveGate"
    );
    let tags = rig.service_tags().await;
    assert_eq!(tags.get(tags::LAST_GOOD), Some(&first));
    assert!(
        tags.values().any(|v| v == BAD),
        "the image is quarantined: {tags:?}"
    );
    assert_eq!(
        rig.w.service(SERVICE).await.task_definition(),
        Some(first.as_str())
    );
    let td = rig
        .w
        .ecs
        .describe_task_definition()
        .task_definition(failed)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .expect("describe");
    assert!(td.tags().iter().any(|t| t.key() == Some(tags::QUARANTINED)));

    // The next run does not try the quarantined image again, and writes nothing.
    let before = rig.w.sim.calls();
    let again = rig
        .engine()
        .await
        .reconcile(Some(BAD))
        .await
        .expect("rollout");
    assert_eq!(again, Outcome::Quarantined { image: BAD.into() });
    let after = rig.w.sim.calls();
    for op in ["RegisterTaskDefinition", "UpdateService", "TagResource"] {
        assert_eq!(before.get(op), after.get(op), "{op} was called");
    }
    rig.w.sim.shutdown().await;
}

/// Rolls out a bad image; `no_gap` asserts that a healthy ActiveGate was always there.
async fn rolled_back_with(behaviour: Behaviour, no_gap: bool) -> (Rig, Outcome) {
    let rig = Rig::new().await;
    rig.started().await;
    rig.w.sim.set_image(BAD, behaviour);
    let side = SideProber::start(&rig.w);
    let outcome = rig
        .engine()
        .await
        .reconcile(Some(BAD))
        .await
        .expect("rollout");
    let (rounds, empty) = side.finish().await;
    assert!(rounds > 10, "the side prober ran {rounds} rounds");
    if no_gap {
        assert_eq!(
            empty, 0,
            "{empty} of {rounds} moments without a healthy ActiveGate"
        );
    }
    assert!(
        matches!(outcome, Outcome::RolledBack { .. }),
        "expected a roll-back, got {outcome:?}"
    );
    (rig, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_fails_during_the_bake_is_rolled_back() {
    let (rig, outcome) = rolled_back_with(
        Behaviour {
            mode: Mode::FailsAfter,
            start_seconds: Some(20.0),
            after_seconds: Some(45.0),
            exit_code: None,
        },
        false,
    )
    .await;
    let Outcome::RolledBack { reasons, .. } = outcome else {
        unreachable!()
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("HTTP 503") || r.contains("stopped")),
        "{reasons:?}"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_running_is_rolled_back_where_the_breaker_would_not() {
    let (rig, outcome) = rolled_back_with(
        Behaviour {
            mode: Mode::CrashesAfter,
            start_seconds: Some(0.0),
            after_seconds: Some(10.0),
            exit_code: Some(137),
        },
        true,
    )
    .await;
    let Outcome::RolledBack { reasons, .. } = outcome else {
        unreachable!()
    };
    assert!(
        reasons.iter().any(
            |r| r.contains("after RUNNING") && r.contains("Essential container in task exited")
        ),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("exited 137")),
        "{reasons:?}"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_fails_verification_is_rolled_back_with_the_tls_error() {
    let (rig, outcome) = rolled_back_with(Behaviour::of(Mode::WrongCertificate), false).await;
    let Outcome::RolledBack { reasons, .. } = outcome else {
        unreachable!()
    };
    assert!(
        reasons.iter().any(|r| r.contains("TLS failed")),
        "{reasons:?}"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_public_key_is_trusted_without_a_ca() {
    let rig = Rig::with_trust(|w| format!("pin_sha256 = \"{}\"", w.sim.pin_sha256())).await;
    let outcome = rig
        .engine()
        .await
        .reconcile(None)
        .await
        .expect("verified by pin");
    assert!(matches!(outcome, Outcome::Verified { .. }), "{outcome:?}");
    rig.w.sim.shutdown().await;

    // Another key: the probes fail, and with nothing to return to, the engine says so.
    let wrong = "00".repeat(32);
    let rig = Rig::with_trust(|_| format!("pin_sha256 = \"{wrong}\"")).await;
    let err = rig
        .engine()
        .await
        .reconcile(None)
        .await
        .expect_err("a wrong pin never verifies");
    let text = err.to_string();
    assert!(text.contains("no last good revision"), "{text}");
    assert!(text.contains("public key does not match"), "{text}");
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_on_every_call_changes_nothing_but_time() {
    let rig = Rig::new().await;
    rig.started().await;
    rig.w.sim.set_fault(
        "*",
        Fault {
            throttle: 0.3,
            ..Fault::default()
        },
    );
    let engine = rig.engine().await;
    let outcome = engine
        .reconcile(Some(V2))
        .await
        .expect("rollout despite throttling");
    assert!(matches!(outcome, Outcome::Verified { .. }), "{outcome:?}");
    let counts = engine.aws().counts();
    let throttled: u64 = counts.values().map(|c| c.throttled).sum();
    let retries: u64 = counts.values().map(|c| c.retries).sum();
    assert!(
        throttled > 0 && retries >= throttled,
        "throttled {throttled}, retried {retries}"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_changed_means_no_writes_to_ecs() {
    let rig = Rig::new().await;
    let first = rig.started().await;
    let before = rig.w.sim.calls();
    let outcome = rig.engine().await.reconcile(None).await.expect("rollout");
    assert_eq!(outcome, Outcome::Unchanged { revision: first });
    let after = rig.w.sim.calls();
    let changed: Vec<(&String, u64)> = after
        .iter()
        .map(|(op, n)| (op, n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    for (op, _) in &changed {
        assert!(
            op.starts_with("Describe") || op.starts_with("List"),
            "a write: {op} ({changed:?})"
        );
    }
    assert!(changed.len() <= 2, "{changed:?}");
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_change_and_changes_nothing() {
    let rig = Rig::new().await;
    let first = rig.started().await;
    let before = rig.w.sim.calls();
    let plan = rig.engine().await.plan(Some(V2)).await.expect("plan");
    assert_eq!(plan.running.as_deref(), Some(first.as_str()));
    assert_eq!(plan.last_good.as_deref(), Some(first.as_str()));
    assert!(
        plan.changes
            .iter()
            .any(|c| c.contains(&format!("image {V1} → {V2}"))),
        "{:?}",
        plan.changes
    );
    let after = rig.w.sim.calls();
    for op in [
        "RegisterTaskDefinition",
        "UpdateService",
        "TagResource",
        "UntagResource",
    ] {
        assert_eq!(before.get(op), after.get(op), "{op} was called by plan");
    }
    let same = rig.engine().await.plan(None).await.expect("plan");
    assert!(same.changes.is_empty(), "{:?}", same.changes);
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_puts_the_last_good_revision_back() {
    let rig = Rig::new().await;
    let first = rig.started().await;
    // Someone moves the service to another revision by hand.
    let other = rig.w.register(V2, false).await;
    rig.w
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&other)
        .send()
        .await
        .expect("update");
    let outcome = rig.engine().await.rollback().await.expect("rollback");
    let Outcome::RolledBack {
        failed, restored, ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(failed, other);
    assert_eq!(restored, first);
    assert_eq!(
        rig.w.service(SERVICE).await.task_definition(),
        Some(first.as_str())
    );
    // Nothing left to roll back.
    assert_eq!(
        rig.engine().await.rollback().await.expect("rollback"),
        Outcome::Unchanged { revision: first }
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_never_touched_before_adopts_its_running_revision_first() {
    let rig = Rig::new().await;
    // Created by hand, outside the product.
    let manual = rig.w.register(V1, false).await;
    rig.w.create_service(SERVICE, &manual, 2).await;
    rig.w.until_completed(SERVICE).await;
    let outcome = rig
        .engine()
        .await
        .reconcile(Some(V2))
        .await
        .expect("rollout");
    let Outcome::Verified { from, to, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(from.as_deref(), Some(manual.as_str()));
    // The adopted revision was tagged last good before the service was updated to the new one.
    let timeline = rig.w.sim.timeline();
    let adopted = timeline
        .iter()
        .position(|e| e.kind == "tagged" && e.detail == format!("{}={manual}", tags::LAST_GOOD))
        .expect("the running revision was tagged last good");
    let updated = timeline
        .iter()
        .position(|e| e.kind == "service-updated")
        .expect("the service was updated");
    assert!(adopted < updated, "adopted after the update");
    let registered = timeline
        .iter()
        .filter(|e| e.kind == "task-definition-registered")
        .count();
    assert_eq!(registered, 2, "the hand-made revision and the new one");
    assert_eq!(rig.service_tags().await.get(tags::LAST_GOOD), Some(&to));
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_revisions_beyond_the_retention_are_deregistered() {
    let rig = Rig::new().await;
    rig.started().await;
    let images: Vec<String> = (1..=4).map(|i| format!("{V2}-r{i}")).collect();
    let engine = rig.engine().await;
    let mut last = String::new();
    for image in &images {
        rig.w.image(image, Mode::Healthy);
        match engine.reconcile(Some(image)).await.expect("rollout") {
            Outcome::Verified { to, .. } => last = to,
            other => panic!("{other:?}"),
        }
    }
    let active = rig
        .w
        .ecs
        .list_task_definitions()
        .family_prefix("activegate")
        .send()
        .await
        .expect("list");
    let arns = active.task_definition_arns();
    assert_eq!(arns.len(), 3, "keep_revisions = 3: {arns:?}");
    assert!(arns.contains(&last));
    assert!(
        arns.iter()
            .all(|a| a.ends_with(":3") || a.ends_with(":4") || a.ends_with(":5")),
        "{arns:?}"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reconciles_of_one_service_never_run_at_once() {
    let rig = Rig::new().await;
    rig.started().await;
    let (a, b) = (rig.engine().await, rig.engine().await);
    let (ra, rb) = tokio::join!(a.reconcile(Some(V2)), b.reconcile(Some(V2)));
    let busy = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Err(activegate_lifecycle::rollout::RolloutError::Busy(_))))
        .count();
    assert_eq!(busy, 1, "{ra:?} / {rb:?}");
    assert!(
        [&ra, &rb]
            .iter()
            .any(|r| matches!(r, Ok(Outcome::Verified { .. })))
    );
    // Released afterwards.
    assert!(matches!(
        a.reconcile(Some(V2)).await,
        Ok(Outcome::Unchanged { .. })
    ));
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_returns_onto_the_old_tasks_with_stop_service_deployment() {
    let rig = Rig::new().await;
    let first = rig.started().await;
    let old_tasks: std::collections::BTreeSet<String> = rig
        .w
        .tasks(SERVICE, false)
        .await
        .iter()
        .filter(|t| t.last_status() == Some("RUNNING"))
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect();
    assert_eq!(old_tasks.len(), 2);
    let launched_before = rig
        .w
        .sim
        .timeline()
        .iter()
        .filter(|e| e.kind == "task-launched")
        .count();
    rig.w.image(BAD, Mode::NeverHealthy);
    let side = SideProber::start(&rig.w);
    let outcome = rig
        .engine()
        .await
        .reconcile(Some(BAD))
        .await
        .expect("rollout");
    let (rounds, empty) = side.finish().await;
    let Outcome::RolledBack { restored, via, .. } = &outcome else {
        panic!("expected a roll-back, got {outcome:?}")
    };
    assert_eq!(restored, &first);
    assert_eq!(*via, RollbackVia::StopServiceDeployment);
    let now: std::collections::BTreeSet<String> = rig
        .w
        .tasks(SERVICE, false)
        .await
        .iter()
        .filter(|t| t.last_status() == Some("RUNNING"))
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect();
    assert_eq!(now, old_tasks, "the old tasks serve again, the same ones");
    // Only the failed revision's 2 tasks were launched: no fresh deployment of the old one.
    let launched: Vec<_> = rig
        .w
        .sim
        .timeline()
        .into_iter()
        .filter(|e| e.kind == "task-launched")
        .skip(launched_before)
        .collect();
    assert!(
        launched.iter().all(|e| e.detail.starts_with(BAD)),
        "{launched:?}"
    );
    assert_eq!(
        rig.w.service(SERVICE).await.task_definition(),
        Some(first.as_str())
    );
    assert!(rounds > 3);
    assert_eq!(
        empty, 0,
        "{empty} of {rounds} moments without a healthy ActiveGate"
    );
    rig.w.sim.shutdown().await;
}
