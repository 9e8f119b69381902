//! Client-side rate budgets (issue #16, item 2): every ECS call waits for a token of its
//! throttling family, in buckets shared per (identity, region) by the `Aws` values one
//! `ecs::Clients` hands out, so that a burst of calls is paced instead of throttled.
//!
//! Against the simulator in real time: the SDK's own timeouts run on tokio's clock, so a
//! paused clock would expire them while a request is on the wire. (The bucket arithmetic
//! on a paused clock is unit-tested in `ecs::budget`.)

mod simkit;

use std::time::{Duration, Instant};

use activegate_lifecycle::ecs::{Aws, Bucket, ClientSettings, Clients, Family, RateLimits};

const REGISTER: &str = "RegisterTaskDefinition";

fn settings(world: &simkit::World, region: &str) -> ClientSettings {
    let mut s = ClientSettings::new(region);
    s.endpoint_url = Some(world.sim.endpoint().to_owned());
    s.static_credentials = Some(("AKIDSIMULATOR".into(), "not-a-secret".into()));
    s
}

/// Budget waits of `aws` for RegisterTaskDefinition.
fn register_waits(aws: &Aws) -> u64 {
    aws.counts().get(REGISTER).map_or(0, |c| c.budget_waits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_registrations_is_paced_by_the_default_bucket_and_never_throttled() {
    let world = simkit::World::new().await;
    let clients = Clients::new();
    let aws = clients.aws(settings(&world, "us-east-1")).await;
    assert_eq!(
        aws.settings().rate_limits.task_definitions,
        Bucket {
            burst: 20,
            per_second: 1.0
        },
        "ECS's documented RegisterTaskDefinition bucket"
    );
    let td = simkit::golden_task_definition();

    let start = Instant::now();
    for _ in 0..25 {
        aws.register_task_definition(&td, &[])
            .await
            .expect("registered");
    }
    let elapsed = start.elapsed();

    // 20 at once, then one a second: the 25th goes out 5 s after the first.
    assert!(elapsed >= Duration::from_millis(4_900), "{elapsed:?}");
    let count = aws.counts()[REGISTER];
    assert_eq!((count.calls, count.throttled, count.retries), (25, 0, 0));
    assert_eq!(count.budget_waits, 5, "{count:?}");
    assert!(
        count.budget_waited >= Duration::from_millis(4_500),
        "{count:?}"
    );
    assert_eq!(world.sim.calls().get(REGISTER), Some(&25));

    let waits = clients.budget_waits();
    assert_eq!(waits[&Family::TaskDefinitions].waits, 5, "{waits:?}");
    assert_eq!(waits[&Family::Services].waits, 0, "{waits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_one_key_share_a_bucket_and_other_regions_and_caches_do_not() {
    let world = simkit::World::new().await;
    let one_a_quarter_second = |mut s: ClientSettings| {
        s.rate_limits = RateLimits {
            task_definitions: Bucket {
                burst: 1,
                per_second: 4.0,
            },
            ..RateLimits::default()
        };
        s
    };
    let clients = Clients::new();
    let first = clients
        .aws(one_a_quarter_second(settings(&world, "us-east-1")))
        .await;
    let second = clients
        .aws(one_a_quarter_second(settings(&world, "us-east-1")))
        .await;
    let other_region = clients
        .aws(one_a_quarter_second(settings(&world, "eu-central-1")))
        .await;
    let other_cache = Clients::new()
        .aws(one_a_quarter_second(settings(&world, "us-east-1")))
        .await;
    let td = simkit::golden_task_definition();

    first
        .register_task_definition(&td, &[])
        .await
        .expect("first");
    assert_eq!(register_waits(&first), 0, "the bucket's one token");

    // The same (identity, region): the token is gone, the second client waits for it.
    let start = Instant::now();
    second
        .register_task_definition(&td, &[])
        .await
        .expect("second");
    assert_eq!(register_waits(&second), 1);
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );

    // Another region has buckets of its own, and so has another `Clients`: nothing
    // process-wide.
    other_region
        .register_task_definition(&td, &[])
        .await
        .expect("other region");
    assert_eq!(register_waits(&other_region), 0);
    other_cache
        .register_task_definition(&td, &[])
        .await
        .expect("other cache");
    assert_eq!(register_waits(&other_cache), 0);

    // Budget waits are counted per family on the cache, for every client of it.
    let waits = clients.budget_waits();
    assert_eq!(waits[&Family::TaskDefinitions].waits, 1, "{waits:?}");
}

#[test]
fn metrics_show_budget_waits_per_family() {
    use activegate_lifecycle::daemon::board::Board;
    use activegate_lifecycle::ecs::CallCount;
    let board = Board::default();
    let waited = |waits, secs| CallCount {
        calls: waits,
        budget_waits: waits,
        budget_waited: Duration::from_millis(secs),
        ..CallCount::default()
    };
    // Two operations of one family add up; the others show 0.
    board.add_aws_counts(
        [
            ("RegisterTaskDefinition", waited(5, 4_500)),
            ("DeregisterTaskDefinition", waited(1, 500)),
            ("DescribeServices", CallCount::default()),
        ]
        .into(),
    );
    let m = board.metrics();
    for line in [
        "# TYPE activegate_lifecycle_aws_rate_budget_waits_total counter",
        "activegate_lifecycle_aws_rate_budget_waits_total{family=\"task_definitions\"} 6",
        "activegate_lifecycle_aws_rate_budget_waits_total{family=\"services\"} 0",
        "activegate_lifecycle_aws_rate_budget_waits_total{family=\"other\"} 0",
        "# TYPE activegate_lifecycle_aws_rate_budget_wait_seconds_total counter",
        "activegate_lifecycle_aws_rate_budget_wait_seconds_total{family=\"task_definitions\"} 5.0",
        "activegate_lifecycle_aws_rate_budget_wait_seconds_total{family=\"tasks\"} 0.0",
    ] {
        assert!(m.lines().any(|l| l == line), "no `{line}` in:\n{m}");
    }
}
