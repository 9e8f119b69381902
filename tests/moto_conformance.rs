//! The ECS and CloudWatch Logs calls the engine makes, against moto — an AWS
//! emulator we did not write — so that our request shapes are checked by
//! someone else's reading of the AWS model, not only by our simulator.
//!
//! moto stores objects but runs no tasks, so only the calls are checked here,
//! not rollouts. The test script starts `moto_server` and sets MOTO_ENDPOINT;
//! run by hand with `MOTO_ENDPOINT=http://127.0.0.1:5000 cargo test --test
//! moto_conformance -- --ignored`.

use activegate_lifecycle::config::Config;
use activegate_lifecycle::ecs::{Aws, ClientSettings};
use activegate_lifecycle::rollout::{content_hash, tags};
use activegate_lifecycle::translate;

fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT names a running moto_server (the test script starts one)")
}

#[tokio::test]
#[ignore = "needs moto_server; run by scripts/test.sh"]
async fn the_engines_calls_are_understood_by_moto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let endpoint = endpoint();
    let mut settings = ClientSettings::new("eu-central-1");
    settings.endpoint_url = Some(endpoint.clone());
    settings.static_credentials = Some(("testing".into(), "testing".into()));
    settings.max_attempts = 1;
    let aws = Aws::connect(settings).await;

    // The translated documents of the example config.
    let config_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/activegate-lifecycle.toml"
    );
    let config = Config::load(std::path::Path::new(config_path)).expect("example config");
    let target = &config.targets[0];
    let manifest_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/activegate-k8s.yaml"
    );
    let manifest = translate::parse("fixture", &std::fs::read(manifest_path).expect("fixture"))
        .expect("parse");
    let settings = target.translate_settings();
    let t = translate::translate(&manifest, &settings).expect("translate");
    let mut td = t.task_definition.clone();
    // moto insists on a memory value for every container (ECS does not).
    for c in &mut td.container_definitions {
        c.memory.get_or_insert(128);
    }

    // CreateCluster and writing log events are no engine calls; the SDK does them directly.
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-central-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .endpoint_url(&endpoint)
        .http_client(http)
        .load()
        .await;
    let sdk = aws_sdk_ecs::Client::new(&sdk_config);
    sdk.create_cluster()
        .cluster_name(target.cluster.as_str())
        .send()
        .await
        .expect("create cluster");

    // Logs: ensure the group (create + retention), then idempotently again.
    aws.ensure_log_group("/ecs/dynatrace-activegate", 30)
        .await
        .expect("create log group");
    aws.ensure_log_group("/ecs/dynatrace-activegate", 30)
        .await
        .expect("log group exists");
    assert_eq!(aws.counts().get("CreateLogGroup").map(|c| c.calls), Some(1));
    assert_eq!(
        aws.counts().get("PutRetentionPolicy").map(|c| c.calls),
        Some(1)
    );

    // Register with tags, read the tags back.
    let hash = content_hash(&td);
    let arn = aws
        .register_task_definition(&td, &[(tags::HASH.into(), hash.clone())])
        .await
        .expect("register the translated task definition");
    let described = aws
        .describe_task_definition(&arn)
        .await
        .expect("describe with tags");
    assert_eq!(described.tags.get(tags::HASH), Some(&hash));
    assert_eq!(
        described.tags.get(tags::MANAGED_BY).map(String::as_str),
        Some("activegate-lifecycle")
    );
    assert_eq!(described.image, td.container_definitions[0].image);
    assert_eq!(
        aws.task_definitions(&td.family).await.expect("list"),
        vec![arn.clone()]
    );

    // Create and update the service, tag and untag it, read it with tags.
    let mut doc = translate::service_document(&t, &settings).expect("service document");
    doc.task_definition = arn.clone();
    // moto checks that subnets and security groups exist: use its default VPC's.
    let vpc = &mut doc.network_configuration.awsvpc_configuration;
    vpc.subnets =
        vec![std::env::var("MOTO_SUBNET").expect("MOTO_SUBNET: a subnet of moto's default VPC")];
    vpc.security_groups = vec![
        std::env::var("MOTO_SECURITY_GROUP")
            .expect("MOTO_SECURITY_GROUP: a security group in moto"),
    ];
    aws.create_service(&doc)
        .await
        .expect("create the translated service");
    let arn2 = aws
        .register_task_definition(&td, &[])
        .await
        .expect("register again");
    aws.update_service(
        target.cluster.as_str(),
        target.service.as_str(),
        &arn2,
        &doc.deployment_configuration,
    )
    .await
    .expect("update service");
    let svc = aws
        .describe_service(target.cluster.as_str(), target.service.as_str())
        .await
        .expect("describe")
        .expect("the service exists");
    assert_eq!(svc.task_definition, arn2);
    aws.tag(
        &svc.arn,
        &[
            (tags::LAST_GOOD.into(), arn.clone()),
            (tags::ROLLOUT_TO.into(), arn2.clone()),
        ],
    )
    .await
    .expect("tag service");
    aws.untag(&svc.arn, &[tags::ROLLOUT_TO.into()])
        .await
        .expect("untag service");
    let svc = aws
        .describe_service(target.cluster.as_str(), target.service.as_str())
        .await
        .expect("describe")
        .expect("service");
    assert_eq!(svc.tags.get(tags::LAST_GOOD), Some(&arn));
    assert!(!svc.tags.contains_key(tags::ROLLOUT_TO));
    aws.tasks(target.cluster.as_str(), target.service.as_str(), false)
        .await
        .expect("list tasks");

    // Read log events the way roll-backs do (a missing stream reads as empty).
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk_config);
    // AWS (and moto) refuse events older than 14 days: stamp it now.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    logs.create_log_stream()
        .log_group_name("/ecs/dynatrace-activegate")
        .log_stream_name("activegate/activegate/t1")
        .send()
        .await
        .expect("stream");
    logs.put_log_events()
        .log_group_name("/ecs/dynatrace-activegate")
        .log_stream_name("activegate/activegate/t1")
        .log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now_ms)
                .message("activegate: fatal")
                .build()
                .expect("event"),
        )
        .send()
        .await
        .expect("put");
    let lines = aws
        .last_log_lines("/ecs/dynatrace-activegate", "activegate/activegate/t1", 10)
        .await
        .expect("read");
    assert_eq!(lines, ["activegate: fatal"]);
    assert!(
        aws.last_log_lines("/ecs/dynatrace-activegate", "nope", 10)
            .await
            .expect("missing stream")
            .is_empty()
    );

    aws.deregister(&arn).await.expect("deregister");
    assert_eq!(
        aws.task_definitions(&td.family).await.expect("list"),
        vec![arn2]
    );
}
