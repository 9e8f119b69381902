//! The real binary rolling a blue/green service, killed with SIGKILL at every step of the
//! rollout and started again: it converges, and at every kill point the promise holds —
//! blue serves, never two green task sets, never both scaled to 0, never a promotion of
//! an unverified set.

mod simkit;

use std::collections::BTreeMap;

use activegate_lifecycle::rollout::tags;
use activegate_lifecycle::sim::Fault;
use simkit::binary::{kill, run, spawn};
use simkit::rig::*;
use simkit::side::SideProber;
use simkit::*;

/// Live task sets: id → (status, task definition, scale).
async fn task_sets(rig: &Rig) -> BTreeMap<String, (String, String, f64)> {
    rig.w
        .service(SERVICE)
        .await
        .task_sets()
        .iter()
        .filter(|t| t.status() != Some("DRAINING"))
        .map(|t| {
            (
                t.id().unwrap_or_default().to_owned(),
                (
                    t.status().unwrap_or_default().to_owned(),
                    t.task_definition().unwrap_or_default().to_owned(),
                    t.scale().map_or(0.0, |s| s.value()),
                ),
            )
        })
        .collect()
}

/// What must hold whenever the process dies, whatever it was doing.
async fn invariants(rig: &Rig, first: &str, point: &str) {
    let sets = task_sets(rig).await;
    let tags = rig.service_tags().await;
    let new: Vec<_> = sets.values().filter(|(_, td, _)| td != first).collect();
    assert!(new.len() <= 1, "{point}: two green task sets: {sets:?}");
    assert!(
        sets.values().any(|(_, _, scale)| *scale >= 100.0),
        "{point}: no task set at 100 %: {sets:?}"
    );
    let primary = sets
        .iter()
        .find(|(_, (status, ..))| status == "PRIMARY")
        .expect("a primary task set");
    if primary.1.1 != first {
        let verdict = tags.get(tags::VERDICT).cloned().unwrap_or_default();
        assert!(
            verdict == format!("passed:{}", primary.0)
                || tags.get(tags::LAST_GOOD) == Some(&primary.1.1),
            "{point}: an unverified set was promoted: {sets:?} {tags:?}"
        );
    }
    assert!(
        rig.w.sim.healthy_tasks(SERVICE) >= 2,
        "{point}: fewer than 2 healthy ActiveGates"
    );
}

/// Starts `rollout --image V2`, waits for `point` to be reached, SIGKILLs the process,
/// checks the invariants, then runs the rollout again to the end.
async fn killed_at(point: &str, slow: Option<&str>) {
    let rig = Rig::blue_green().await;
    let first = rig.started().await;
    let side = SideProber::start(&rig.w);
    if let Some(op) = slow {
        // Holds the process inside this call, so the kill lands right after the step before.
        rig.w.sim.set_fault(
            op,
            Fault {
                latency_ms: 60_000,
                ..Fault::default()
            },
        );
    }
    let child = spawn(&rig, &["rollout", "--image", V2]);
    until(rig.w.sim.real(3000.0), || async {
        let sets = task_sets(&rig).await;
        let green = sets.values().find(|(_, td, _)| *td != first);
        let blue = sets.values().find(|(_, td, _)| *td == first);
        let reached = match point {
            "after CreateTaskSet" => green.is_some(),
            "during the bake" => green.is_some() && rig.w.sim.healthy_tasks(SERVICE) >= 4,
            "after UpdateServicePrimaryTaskSet" => green.is_some_and(|g| g.0 == "PRIMARY"),
            "while blue drains" => {
                green.is_some_and(|g| g.0 == "PRIMARY") && blue.is_none_or(|b| b.2 == 0.0)
            }
            other => panic!("unknown kill point {other}"),
        };
        reached.then_some(())
    })
    .await;
    kill(child).await;
    rig.w.sim.clear_faults();
    invariants(&rig, &first, point).await;
    let to = rig.service_tags().await.get(tags::ROLLOUT_TO).cloned();
    assert!(to.is_some(), "{point}: the rollout mark survives the kill");

    let (code, out, err) = run(&rig, &["rollout", "--image", V2]).await;
    assert_eq!(code, 0, "{point}: {out}{err}");
    assert!(out.contains("verified"), "{point}: {out}");
    let (rounds, empty) = side.finish().await;
    let sets = task_sets(&rig).await;
    assert_eq!(sets.len(), 1, "{point}: {sets:?}");
    let (status, td, _) = sets.values().next().expect("one set");
    assert_eq!(status, "PRIMARY");
    assert_eq!(
        Some(td),
        to.as_ref(),
        "{point}: the same revision, not a second rollout"
    );
    let tags = rig.service_tags().await;
    assert_eq!(tags.get(tags::LAST_GOOD), to.as_ref());
    assert!(!tags.contains_key(tags::ROLLOUT_TO) && !tags.contains_key(tags::VERDICT));
    let registered = rig
        .w
        .ecs
        .list_task_definitions()
        .family_prefix("activegate")
        .send()
        .await
        .expect("list")
        .task_definition_arns()
        .len();
    assert_eq!(registered, 2, "{point}: one revision per version");
    assert!(rounds > 3);
    assert_eq!(
        empty, 0,
        "{point}: {empty} of {rounds} moments without a healthy ActiveGate"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_create_task_set() {
    killed_at("after CreateTaskSet", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_the_bake() {
    // The bake ends in a primary swap, held here so the kill lands before it.
    killed_at("during the bake", Some("UpdateServicePrimaryTaskSet")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_update_service_primary_task_set() {
    killed_at("after UpdateServicePrimaryTaskSet", Some("UpdateTaskSet")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_blue_drains() {
    killed_at("while blue drains", Some("DeleteTaskSet")).await;
}
