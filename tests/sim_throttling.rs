//! ECS's request throttling in the simulator (`SimOptions::ecs_rate_limits`, issue #16): a
//! client that ignores ECS's buckets is throttled once RegisterTaskDefinition's burst of 20
//! is spent; the product's budgeted client with the default `[aws.rate_limits]` is paced
//! instead and never throttled. Counts are asserted, not timings.

mod simkit;

use activegate_lifecycle::ecs::{ClientSettings, Clients};
use activegate_lifecycle::sim::{Sim, SimHandle, SimOptions};
use aws_config::retry::RetryConfig;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{Compatibility, ContainerDefinition, NetworkMode};

const REGISTER: &str = "RegisterTaskDefinition";

async fn sim(ecs_rate_limits: bool) -> SimHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sim::start(SimOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        // Simulated time runs 600 times faster: refilled on simulated time, the bucket would
        // be full again after 0.04 s of real time and the raw client never throttled. The
        // buckets refill in real time.
        speed: 600.0,
        ecs_rate_limits,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts")
}

/// A raw SDK client: one attempt per call, no client-side pacing.
async fn raw_ecs(sim: &SimHandle) -> aws_sdk_ecs::Client {
    let config = simkit::sdk_config(
        sim.endpoint(),
        "us-east-1",
        simkit::credentials("AKIDRAW"),
        RetryConfig::disabled(),
    )
    .await;
    aws_sdk_ecs::Client::new(&config)
}

async fn register_raw(ecs: &aws_sdk_ecs::Client) -> Result<(), (String, String)> {
    ecs.register_task_definition()
        .family("throttling")
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(
            ContainerDefinition::builder()
                .name("activegate")
                .image("public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512")
                .essential(true)
                .build(),
        )
        .send()
        .await
        .map(drop)
        .map_err(|e| {
            let e = e.into_service_error();
            (
                e.code().unwrap_or_default().to_owned(),
                e.message().unwrap_or_default().to_owned(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_client_is_throttled_after_the_burst_of_twenty_registrations() {
    let sim = sim(true).await;
    let ecs = raw_ecs(&sim).await;
    let mut outcomes = Vec::new();
    for _ in 0..40 {
        outcomes.push(register_raw(&ecs).await);
    }
    let served = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();

    assert!(
        outcomes[..20].iter().all(Result::is_ok),
        "the burst of 20 is served: {outcomes:?}"
    );
    assert!(
        !refused.is_empty(),
        "40 at once exceed 20 + 1 /s: {outcomes:?}"
    );
    assert!(
        refused
            .iter()
            .all(|(code, message)| code == "ThrottlingException" && message == "Rate exceeded"),
        "{refused:?}"
    );
    assert_eq!(served + refused.len(), 40);
    assert_eq!(sim.calls().get(REGISTER), Some(&40));
    assert_eq!(
        sim.throttled().get(REGISTER).copied(),
        Some(refused.len() as u64),
        "every refusal is counted under its operation"
    );
    assert_eq!(sim.throttled().len(), 1, "{:?}", sim.throttled());
    assert_eq!(
        sim.throttled_by_key().get("AKIDRAW").copied(),
        Some(refused.len() as u64),
        "and under the key that signed it"
    );

    // The control API tells the same.
    let answer: serde_json::Value = reqwest::get(format!("{}/sim/v1/throttled", sim.endpoint()))
        .await
        .expect("control API")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        answer["by_operation"][REGISTER].as_u64(),
        Some(refused.len() as u64),
        "{answer}"
    );
    assert_eq!(
        answer["by_key"]["AKIDRAW"].as_u64(),
        Some(refused.len() as u64)
    );

    // Other families draw from their own buckets: a read is still served.
    ecs.list_task_definitions()
        .send()
        .await
        .expect("ListTaskDefinitions has tokens of its own");

    // Refilled, the bucket serves a full burst again.
    let refill = reqwest::Client::new()
        .post(format!("{}/sim/v1/buckets/refill", sim.endpoint()))
        .send()
        .await
        .expect("control API");
    assert!(refill.status().is_success(), "{refill:?}");
    let mut again = Vec::new();
    for _ in 0..40 {
        again.push(register_raw(&ecs).await);
    }
    assert!(again[..20].iter().all(Result::is_ok), "{again:?}");
    assert!(
        again.iter().any(Result::is_err),
        "and throttled again: {again:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ecs_rate_limits_nothing_is_throttled() {
    let sim = sim(false).await;
    let ecs = raw_ecs(&sim).await;
    for _ in 0..30 {
        register_raw(&ecs).await.expect("no bucket to run out of");
    }
    assert!(sim.throttled().is_empty(), "{:?}", sim.throttled());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budgeted_client_with_default_rate_limits_is_never_throttled() {
    let sim = sim(true).await;
    let mut settings = ClientSettings::new("us-east-1");
    settings.endpoint_url = Some(sim.endpoint().to_owned());
    settings.static_credentials = Some(("AKIDBUDGET".into(), "not-a-secret".into()));
    // One attempt: a throttle would surface as an error instead of being retried away.
    settings.max_attempts = 1;
    let aws = Clients::new().aws(settings).await;
    let td = simkit::golden_task_definition();
    // 20 at once, then 5 paced at 1 /s: about 5 s.
    for i in 0..25 {
        aws.register_task_definition(&td, &[])
            .await
            .unwrap_or_else(|e| panic!("registration {i}: {e}"));
    }
    let count = aws.counts()[REGISTER];
    assert_eq!((count.calls, count.throttled, count.retries), (25, 0, 0));
    assert_eq!(count.budget_waits, 5, "{count:?}");
    assert_eq!(sim.calls().get(REGISTER), Some(&25));
    assert!(sim.throttled().is_empty(), "{:?}", sim.throttled());
    sim.shutdown().await;
}
