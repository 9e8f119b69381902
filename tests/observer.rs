//! One observer per cluster (#16): twelve targets in two clusters, the daemon in-process
//! against the simulator. Between reconciles the simulator sees ListTasks and DescribeTasks
//! in proportion to the clusters, not to the targets; every target's monitor still probes
//! exactly its own service's tasks; and a service whose tasks are gone is counted down while
//! the others are not.

mod simkit;

use std::collections::BTreeMap;
use std::time::Duration;

use activegate_lifecycle::daemon::board::TargetStatus;
use simkit::rig::*;
use simkit::*;

const TARGETS: usize = 12;
const CLUSTERS: [&str; 2] = [CLUSTER, "observability-b"];
/// Probe rounds every 0.25 s: the observer reads every 4 rounds, so once a second.
const INTERVAL: f64 = 0.25;
const POLL_EVERY: f64 = INTERVAL * 4.0;
const QUIET: Duration = Duration::from_secs(4);

fn target_name(i: usize) -> String {
    format!("t{i:02}")
}

fn service_name(i: usize) -> String {
    format!("ag-{i:02}")
}

/// One, two or three tasks: a monitor that probed another service's tasks would show it.
fn desired(i: usize) -> u64 {
    (i % 3 + 1) as u64
}

fn config(w: &World, ca: &str) -> String {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/activegate-k8s.yaml"
    );
    let mut text = format!(
        r#"[daemon]
max_parallel = 12

[aws]
endpoint_url = "{endpoint}"
max_attempts = 10

# Twelve services created at once: the simulator does not throttle, and the default
# budgets would only make the test wait for RegisterTaskDefinition tokens.
{UNTHROTTLED}"#,
        endpoint = w.sim.endpoint()
    );
    for i in 0..TARGETS {
        text.push_str(&target_toml(
            &target_name(i),
            CLUSTERS[i % CLUSTERS.len()],
            &service_name(i),
            desired(i),
            INTERVAL,
            manifest,
            ca,
        ));
    }
    text
}

fn calls_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn targets(d: &Running) -> BTreeMap<String, TargetStatus> {
    d.board.snapshot().targets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_read_per_cluster_feeds_every_target_and_downtime_is_still_counted() {
    let rig = Rig::new().await;
    rig.w.sim.create_cluster(CLUSTERS[1]);
    let ca = rig.dir.path().join("ca.pem");
    std::fs::write(
        rig.dir.path().join("ag.toml"),
        config(&rig.w, ca.to_str().expect("UTF-8")),
    )
    .expect("write config");
    // The start-up reconcile creates every service; each monitor then probes its tasks.
    let d = rig.daemon();
    until(Duration::from_secs(90), || async {
        let t = targets(&d);
        (t.len() == TARGETS
            && t.values().all(|s| {
                s.outcomes.get("verified").copied().unwrap_or(0) == 1
                    && !s.running
                    && s.probes_ok > 0
            }))
        .then_some(())
    })
    .await;
    // Rounds that began while the tasks were starting are behind us.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A quiet window: no reconcile runs, every monitor probes on.
    let (calls, probes) = (rig.w.sim.calls(), targets(&d));
    tokio::time::sleep(QUIET).await;
    let quiet = calls_between(&calls, &rig.w.sim.calls());
    let after = targets(&d);
    eprintln!("calls in a quiet window of {QUIET:?}: {quiet:?}");
    assert!(
        quiet
            .keys()
            .all(|op| ["ListTasks", "DescribeTasks"].contains(&op.as_str())),
        "between reconciles only the observers' calls: {quiet:?}"
    );
    // One page of each per cluster and poll (every target's tasks fit in one page), a poll
    // a second: per cluster at most the polls the window holds and one more at each edge.
    let polls = (QUIET.as_secs_f64() / POLL_EVERY).ceil() as u64 + 2;
    let most = CLUSTERS.len() as u64 * polls;
    for op in ["ListTasks", "DescribeTasks"] {
        let n = quiet.get(op).copied().unwrap_or(0);
        assert!(
            (1..=most).contains(&n),
            "{op}: {n} calls in {QUIET:?}, expected 1..={most} ({} clusters; a read per \
             target would be about {})",
            CLUSTERS.len(),
            TARGETS as u64 * polls
        );
    }
    // Every monitor probed its own service's tasks, all healthy, every round.
    for i in 0..TARGETS {
        let name = target_name(i);
        let (b, a) = (&probes[&name], &after[&name]);
        let ok = a.probes_ok - b.probes_ok;
        assert!(
            ok > 0 && ok % desired(i) == 0,
            "{name}: {ok} healthy probes in the window, not rounds of its {} tasks",
            desired(i)
        );
        assert_eq!(a.probes_failed, b.probes_failed, "{name}: a failed probe");
        assert_eq!(a.downtime_seconds, 0.0, "{name}: downtime");
    }

    // One service's tasks are gone: its monitor counts downtime, the others do not.
    rig.w
        .ecs
        .update_service()
        .cluster(CLUSTERS[0])
        .service(service_name(0))
        .desired_count(0)
        .send()
        .await
        .expect("scale to zero");
    until(Duration::from_secs(30), || async {
        (targets(&d)[&target_name(0)].downtime_seconds > 0.0).then_some(())
    })
    .await;
    let t = targets(&d);
    for i in 1..TARGETS {
        let name = target_name(i);
        assert_eq!(t[&name].downtime_seconds, 0.0, "{name}: downtime");
    }
    d.stop().await;
    rig.w.sim.shutdown().await;
}
