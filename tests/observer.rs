//! One observer per cluster (#16): targets in two clusters, the daemon in-process against the
//! simulator. Between reconciles the simulator sees ListTasks, DescribeTasks and (every
//! fourth poll) DescribeServices (in batches of 10) in proportion to the clusters, not to the
//! targets; at
//! start-up the monitors make no DescribeServices of their own; every target's monitor still
//! probes exactly its own service's tasks; and a service whose tasks are gone is counted down
//! (and its downtime tag written) while the others are not.

mod simkit;

use std::collections::BTreeMap;
use std::time::Duration;

use activegate_lifecycle::daemon::board::TargetStatus;
use activegate_lifecycle::ecs::SERVICES_PER_CALL;
use simkit::rig::*;
use simkit::*;

const TARGETS: usize = 12;
const CLUSTERS: [&str; 2] = [CLUSTER, "observability-b"];
/// Probe rounds every 0.25 s: the observer reads every 4 rounds, so once a second.
const INTERVAL: f64 = 0.25;
const POLL_EVERY: f64 = INTERVAL * 4.0;
/// Long enough for two of the observer's reads of the services, every 4 polls.
const QUIET: Duration = Duration::from_secs(8);
/// The observer reads the services every this many polls while nothing asks sooner.
const SERVICES_EVERY: u64 = 4;

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

fn config(w: &World, ca: &str, targets: usize) -> String {
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
    for i in 0..targets {
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
        config(&rig.w, ca.to_str().expect("UTF-8"), TARGETS),
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
        quiet.keys().all(|op| {
            ["ListTasks", "DescribeTasks", "DescribeServices"].contains(&op.as_str())
        }),
        "between reconciles only the observers' calls: {quiet:?}"
    );
    // One page of each per cluster and poll (every target's tasks fit in one page, its six
    // services in one DescribeServices), a poll a second: per cluster at most the polls the
    // window holds and one more at each edge; the services only every fourth poll.
    let polls = (QUIET.as_secs_f64() / POLL_EVERY).ceil() as u64 + 2;
    let most = CLUSTERS.len() as u64 * polls;
    for op in ["ListTasks", "DescribeTasks", "DescribeServices"] {
        let n = quiet.get(op).copied().unwrap_or(0);
        let most = match op {
            "DescribeServices" => CLUSTERS.len() as u64 * (polls / SERVICES_EVERY + 1),
            _ => most,
        };
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
        // In the window: on a loaded host a probe of a starting task may have timed out
        // before it (and counted), which is not what this test is about.
        assert_eq!(
            a.downtime_seconds, b.downtime_seconds,
            "{name}: downtime in the window"
        );
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
    let down = after[&target_name(0)].downtime_seconds;
    until(Duration::from_secs(30), || async {
        (targets(&d)[&target_name(0)].downtime_seconds > down).then_some(())
    })
    .await;
    let t = targets(&d);
    for i in 1..TARGETS {
        let name = target_name(i);
        assert_eq!(
            t[&name].downtime_seconds, after[&name].downtime_seconds,
            "{name}: downtime"
        );
    }
    d.stop().await;
    rig.w.sim.shutdown().await;
}

/// Starts the daemon in-process like `Rig::daemon`, without the start-up reconcile.
fn daemon_without_initial_run(rig: &Rig) -> Running {
    rig.daemon_with(|o| o.no_initial_run = true)
}

/// Twelve services per cluster: two DescribeServices a poll (10 and 2); a task each.
const MANY: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monitors_start_on_the_observers_batched_read_of_the_services() {
    let rig = Rig::new().await;
    rig.w.sim.create_cluster(CLUSTERS[1]);
    // The services run before the daemon starts, which does not reconcile at start: every
    // DescribeServices is then the monitors' or the observers'.
    let td = rig.w.register(V1, false).await;
    for i in 0..MANY {
        rig.w
            .ecs
            .create_service()
            .cluster(CLUSTERS[i % CLUSTERS.len()])
            .service_name(service_name(i))
            .task_definition(&td)
            .desired_count(1)
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .network_configuration(network())
            .deployment_configuration(deployment(true))
            .send()
            .await
            .expect("create service");
    }
    // Like ECS, the simulator describes at most 10 services a call.
    let names: Vec<String> = (0..MANY)
        .filter(|i| i % CLUSTERS.len() == 0)
        .map(service_name)
        .collect();
    let refused = rig
        .w
        .ecs
        .describe_services()
        .cluster(CLUSTERS[0])
        .set_services(Some(names[..SERVICES_PER_CALL + 1].to_vec()))
        .send()
        .await
        .expect_err("11 services in one DescribeServices");
    assert_eq!(
        refused.into_service_error().meta().code(),
        Some("InvalidParameterException")
    );
    let ca = rig.dir.path().join("ca.pem");
    std::fs::write(
        rig.dir.path().join("ag.toml"),
        config(&rig.w, ca.to_str().expect("UTF-8"), MANY),
    )
    .expect("write config");
    let before = rig.w.sim.calls();
    let d = daemon_without_initial_run(&rig);
    until(Duration::from_secs(90), || async {
        let t = targets(&d);
        (t.len() == MANY && t.values().all(|s| s.probes_ok > 0)).then_some(())
    })
    .await;
    let start = calls_between(&before, &rig.w.sim.calls());
    eprintln!("calls until every monitor probed: {start:?}");
    // Each poll of a cluster lists its tasks in one page and describes its services in
    // ceil(12 / 10) batches; a monitor's own DescribeServices would add one per target.
    let per_cluster = (MANY / CLUSTERS.len()).div_ceil(SERVICES_PER_CALL) as u64;
    let lists = start.get("ListTasks").copied().unwrap_or(0);
    let describes = start.get("DescribeServices").copied().unwrap_or(0);
    assert!(
        (1..=per_cluster * lists).contains(&describes),
        "{describes} DescribeServices at start-up for {lists} polls of {} clusters, expected \
         at most {per_cluster} a poll ({MANY} monitors)",
        CLUSTERS.len()
    );

    // The last service of the first cluster is in its second batch: its monitor knows its
    // ARN from that batch, counts its downtime and writes it to its tag.
    let last = (0..MANY)
        .rev()
        .find(|i| i % CLUSTERS.len() == 0)
        .expect("one");
    rig.w
        .ecs
        .update_service()
        .cluster(CLUSTERS[0])
        .service(service_name(last))
        .desired_count(0)
        .send()
        .await
        .expect("scale to zero");
    until(Duration::from_secs(30), || async {
        let tags = rig.service_tags_of(&service_name(last)).await;
        tags.contains_key(activegate_lifecycle::model::marks::DOWNTIME)
            .then_some(())
    })
    .await;
    assert!(targets(&d)[&target_name(last)].downtime_seconds > 0.0);
    d.stop().await;
    rig.w.sim.shutdown().await;
}
