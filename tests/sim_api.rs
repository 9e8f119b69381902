//! The simulator's API surface through the real AWS SDK and raw HTTP: errors
//! shaped as AWS shapes them, tags, task definitions, logs, the control API.

mod simkit;

use activegate_lifecycle::sim::Mode;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{Compatibility, ContainerDefinition, NetworkMode, Tag};
use simkit::*;

fn code<E: ProvideErrorMetadata>(e: &aws_sdk_ecs::error::SdkError<E>) -> Option<String> {
    e.as_service_error()
        .and_then(|s| s.code())
        .map(str::to_owned)
}

/// A Fargate task definition of 256 CPU units with `memory` MiB, in `mode`.
async fn register(
    w: &World,
    mode: NetworkMode,
    memory: &str,
) -> Result<
    aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput,
    aws_sdk_ecs::error::SdkError<
        aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionError,
    >,
> {
    w.ecs
        .register_task_definition()
        .family("ag")
        .network_mode(mode)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory(memory)
        .container_definitions(
            ContainerDefinition::builder()
                .name("ag")
                .image("x:1")
                .build(),
        )
        .send()
        .await
}

#[tokio::test]
async fn invalid_fargate_sizes_are_refused_as_aws_does() {
    let w = World::new().await;
    let err = register(&w, NetworkMode::Awsvpc, "1536")
        .await
        .expect_err("256 CPU with 1536 MiB is no Fargate size");
    assert_eq!(code(&err).as_deref(), Some("ClientException"));
    let msg = err
        .as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default()
        .to_owned();
    assert!(
        msg.contains("No Fargate configuration exists for given values: 256 CPU, 1536 memory"),
        "{msg}"
    );
    let err = register(&w, NetworkMode::Bridge, "512")
        .await
        .expect_err("Fargate needs awsvpc");
    assert_eq!(code(&err).as_deref(), Some("ClientException"));
    w.sim.shutdown().await;
}

#[tokio::test]
async fn unknown_things_are_named_by_aws_errors() {
    let w = World::new().await;
    let err = w
        .ecs
        .describe_services()
        .cluster("nope")
        .services("ag")
        .send()
        .await
        .expect_err("no cluster");
    assert_eq!(code(&err).as_deref(), Some("ClusterNotFoundException"));
    let err = w
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service("nope")
        .desired_count(1)
        .send()
        .await
        .expect_err("no service");
    assert_eq!(code(&err).as_deref(), Some("ServiceNotFoundException"));
    let err = w
        .ecs
        .describe_task_definition()
        .task_definition("nope:7")
        .send()
        .await
        .expect_err("no task definition");
    assert_eq!(code(&err).as_deref(), Some("ClientException"));
    let err = w
        .ecs
        .list_tasks()
        .cluster(CLUSTER)
        .service_name("nope")
        .send()
        .await
        .expect_err("no service");
    assert_eq!(code(&err).as_deref(), Some("ServiceNotFoundException"));
    // DescribeServices reports missing services as failures, not errors.
    let out = w
        .ecs
        .describe_services()
        .cluster(CLUSTER)
        .services("nope")
        .send()
        .await
        .expect("describe");
    assert!(out.services().is_empty());
    assert_eq!(out.failures()[0].reason(), Some("MISSING"));
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_service_cannot_move_to_an_inactive_revision() {
    let w = World::new().await;
    let td1 = w.register("x:1", false).await;
    let td2 = w.register("x:2", false).await;
    w.create_service("ag", &td1, 1).await;
    let out = w
        .ecs
        .deregister_task_definition()
        .task_definition(&td2)
        .send()
        .await
        .expect("deregister");
    assert_eq!(
        out.task_definition()
            .and_then(|t| t.status())
            .map(|s| s.as_str()),
        Some("INACTIVE")
    );
    let err = w
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ag")
        .task_definition(&td2)
        .send()
        .await
        .expect_err("inactive");
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"));
    // The family alone names its latest ACTIVE revision.
    let d = w
        .ecs
        .describe_task_definition()
        .task_definition("activegate")
        .send()
        .await
        .expect("describe");
    assert_eq!(
        d.task_definition().and_then(|t| t.task_definition_arn()),
        Some(td1.as_str())
    );
    let listed = w
        .ecs
        .list_task_definitions()
        .family_prefix("activegate")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.task_definition_arns(), std::slice::from_ref(&td1));
    let inactive = w
        .ecs
        .list_task_definitions()
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Inactive)
        .send()
        .await
        .expect("list inactive");
    assert_eq!(inactive.task_definition_arns(), [td2]);
    w.sim.shutdown().await;
}

#[tokio::test]
async fn creating_a_fargate_service_needs_a_network_configuration() {
    let w = World::new().await;
    let td = w.register("x:1", false).await;
    let err = w
        .ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name("ag")
        .task_definition(&td)
        .desired_count(1)
        .send()
        .await
        .expect_err("awsvpc needs subnets");
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"));
    w.create_service("ag", &td, 1).await;
    let err = w
        .ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name("ag")
        .task_definition(&td)
        .network_configuration(network())
        .send()
        .await
        .expect_err("exists");
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"));
    w.sim.shutdown().await;
}

#[tokio::test]
async fn tags_are_kept_on_services_and_task_definitions() {
    let w = World::new().await;
    let td = w.register("x:1", false).await;
    w.create_service("ag", &td, 1).await;
    let arn = w.service("ag").await.service_arn().expect("arn").to_owned();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    w.ecs
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("last-good", "activegate:1"))
        .tags(tag("in-flight", "no"))
        .send()
        .await
        .expect("tag");
    w.ecs
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("in-flight", "yes"))
        .send()
        .await
        .expect("retag");
    w.ecs
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("last-good")
        .send()
        .await
        .expect("untag");
    let tags = w
        .ecs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("list tags");
    let pairs: Vec<(&str, &str)> = tags
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))
        .collect();
    assert_eq!(pairs, [("in-flight", "yes")]);
    let described = w
        .ecs
        .describe_services()
        .cluster(CLUSTER)
        .services("ag")
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("describe");
    assert_eq!(described.services()[0].tags().len(), 1);

    w.ecs
        .tag_resource()
        .resource_arn(&td)
        .tags(tag("content-hash", "abc"))
        .send()
        .await
        .expect("tag td");
    let d = w
        .ecs
        .describe_task_definition()
        .task_definition(&td)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .expect("describe td");
    assert_eq!(d.tags()[0].key(), Some("content-hash"));
    let err = w
        .ecs
        .tag_resource()
        .resource_arn("arn:aws:ecs:us-east-1:123456789012:service/observability/nope")
        .tags(tag("a", "b"))
        .send()
        .await
        .expect_err("no such service");
    assert_eq!(code(&err).as_deref(), Some("ServiceNotFoundException"));
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_write_their_logs_and_why_they_died() {
    let w = World::new().await;
    w.image("x:1", Mode::Healthy);
    w.image("x:broken", Mode::PullFails);
    let td = w.register("x:1", false).await;
    w.create_service("ag", &td, 1).await;
    w.until_completed("ag").await;
    let t = &w.tasks("ag", false).await[0];
    let id = t
        .task_arn()
        .and_then(|a| a.rsplit('/').next())
        .expect("task id");
    let stream = format!("ag/activegate/{id}");
    let events = until(w.sim.real(300.0), || async {
        let out = w
            .logs
            .get_log_events()
            .log_group_name(LOG_GROUP)
            .log_stream_name(&stream)
            .start_from_head(true)
            .send()
            .await
            .ok()?;
        let lines: Vec<String> = out
            .events()
            .iter()
            .filter_map(|e| e.message().map(str::to_owned))
            .collect();
        lines
            .iter()
            .any(|l| l.contains("state RUNNING"))
            .then_some(lines)
    })
    .await;
    assert!(
        events[0].contains("starting x:1 on port 9999"),
        "{events:?}"
    );

    // A task that cannot pull its image stops before RUNNING, saying why.
    let broken = w.register("x:broken", false).await;
    w.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ag")
        .task_definition(&broken)
        .send()
        .await
        .expect("update");
    let stopped = until(w.sim.real(600.0), || async {
        w.tasks("ag", true)
            .await
            .into_iter()
            .find(|t| t.task_definition_arn() == Some(broken.as_str()))
    })
    .await;
    assert!(
        stopped
            .stopped_reason()
            .is_some_and(|r| r.starts_with("CannotPullContainerError")),
        "{stopped:?}"
    );
    assert_eq!(
        stopped.stop_code().map(|c| c.as_str()),
        Some("TaskFailedToStart")
    );
    assert!(stopped.started_at().is_none());

    let groups = w
        .logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/")
        .send()
        .await
        .expect("describe log groups");
    assert_eq!(groups.log_groups()[0].log_group_name(), Some(LOG_GROUP));
    w.logs
        .put_retention_policy()
        .log_group_name(LOG_GROUP)
        .retention_in_days(30)
        .send()
        .await
        .expect("retention");
    let err = w
        .logs
        .put_retention_policy()
        .log_group_name(LOG_GROUP)
        .retention_in_days(31)
        .send()
        .await
        .expect_err("31 days");
    assert_eq!(
        err.as_service_error()
            .and_then(|e| aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata::code(e)),
        Some("InvalidParameterException")
    );
    let err = w
        .logs
        .create_log_group()
        .log_group_name(LOG_GROUP)
        .send()
        .await
        .expect_err("exists");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_already_exists_exception())
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_task_whose_log_group_is_missing_fails_to_start() {
    let w = World::new().await;
    let name = "ag-nolog";
    // The task logs to a group nobody created (and without awslogs-create-group).
    let other = w
        .ecs
        .register_task_definition()
        .family("nolog")
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(
            ContainerDefinition::builder()
                .name("activegate")
                .image("x:1")
                .log_configuration(
                    aws_sdk_ecs::types::LogConfiguration::builder()
                        .log_driver(aws_sdk_ecs::types::LogDriver::Awslogs)
                        .options("awslogs-group", "/ecs/missing")
                        .options("awslogs-region", "us-east-1")
                        .options("awslogs-stream-prefix", "ag")
                        .build()
                        .expect("log configuration"),
                )
                .build(),
        )
        .send()
        .await
        .expect("register")
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("arn")
        .to_owned();
    w.create_service(name, &other, 1).await;
    let stopped = until(w.sim.real(300.0), || async {
        w.tasks(name, true).await.into_iter().next()
    })
    .await;
    assert!(
        stopped
            .stopped_reason()
            .is_some_and(|r| r.contains("The specified log group does not exist")),
        "{stopped:?}"
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_aws_shaped_errors() {
    let w = World::new().await;
    install_crypto();
    let http = reqwest::Client::new();
    let post = |target: &str, body: &'static str| {
        http.post(w.sim.endpoint())
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body)
            .send()
    };
    let r = post(
        "AmazonEC2ContainerServiceV20141113.CreateCluster",
        "{not json",
    )
    .await
    .expect("answer");
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.expect("JSON error");
    assert_eq!(v["__type"], "SerializationException");

    let r = post(
        "AmazonEC2ContainerServiceV20141113.CreateService",
        "{\"cluster\":\"observability\"}",
    )
    .await
    .expect("answer");
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.expect("JSON error");
    assert_eq!(v["__type"], "ValidationException");
    assert!(
        v["message"].as_str().unwrap_or("").contains("serviceName"),
        "{v}"
    );

    let r = post(
        "AmazonEC2ContainerServiceV20141113.UpdateService",
        "{\"service\":\"ag\",\"desiredCount\":\"three\"}",
    )
    .await
    .expect("answer");
    let v: serde_json::Value = r.json().await.expect("JSON error");
    assert_eq!(v["__type"], "SerializationException");

    let r = post("AmazonEC2ContainerServiceV20141113.LaunchRocket", "{}")
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.expect("JSON error");
    assert_eq!(v["__type"], "UnknownOperationException");

    // The control API checks its input too.
    let r = http
        .post(format!("{}/sim/v1/images", w.sim.endpoint()))
        .body("{\"image\":\"x:1\",\"mode\":\"sometimes\"}")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{}/sim/v1/faults", w.sim.endpoint()))
        .body("{\"operation\":\"*\",\"throttle\":2}")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{}/sim/v1/images", w.sim.endpoint()))
        .body("{\"image\":\"x:1\",\"mode\":\"never-healthy\"}")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let timeline: serde_json::Value = http
        .get(format!("{}/sim/v1/timeline", w.sim.endpoint()))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert!(timeline.as_array().is_some_and(|t| {
        t.iter()
            .any(|e| e["kind"] == "image-behaviour" && e["detail"] == "NeverHealthy")
    }));
    w.sim.shutdown().await;
}

#[tokio::test]
async fn the_registry_lists_published_tags_and_resolves_digests() {
    let w = World::new().await;
    install_crypto();
    let http = reqwest::Client::new();
    let repo = "dynatrace/dynatrace-activegate";
    let d1 = w.sim.publish_tag(repo, "1.301.70.20241127-162512");
    let r = http
        .post(format!("{}/sim/v1/registry/tags", w.sim.endpoint()))
        .body(format!(
            "{{\"repository\":\"{repo}\",\"tag\":\"1.303.10.20250115-101010\"}}"
        ))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let published: serde_json::Value = r.json().await.expect("JSON");
    let d2 = published["digest"].as_str().expect("digest").to_owned();
    assert_ne!(d1, d2);
    assert!(d1.starts_with("sha256:") && d1.len() == 71, "{d1}");

    let list: serde_json::Value = http
        .get(format!("{}/v2/{repo}/tags/list", w.sim.endpoint()))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(list["name"], repo);
    assert_eq!(
        list["tags"],
        serde_json::json!(["1.301.70.20241127-162512", "1.303.10.20250115-101010"])
    );

    let head = http
        .head(format!(
            "{}/v2/{repo}/manifests/1.303.10.20250115-101010",
            w.sim.endpoint()
        ))
        .header("accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .await
        .expect("answer");
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok()),
        Some(d2.as_str())
    );
    // The digest is the SHA-256 of the manifest served for it.
    let body = http
        .get(format!("{}/v2/{repo}/manifests/{d2}", w.sim.endpoint()))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    assert_eq!(activegate_lifecycle::sim::registry::digest_of(&body), d2);

    let missing = http
        .get(format!("{}/v2/{repo}/manifests/9.9.9", w.sim.endpoint()))
        .send()
        .await
        .expect("answer");
    assert_eq!(missing.status(), 404);
    let v: serde_json::Value = missing.json().await.expect("JSON");
    assert_eq!(v["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let r = http
        .post(format!("{}/sim/v1/registry/tags", w.sim.endpoint()))
        .body("{\"repository\":\"Bad Name\",\"tag\":\"x\"}")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    w.sim.shutdown().await;
}

#[tokio::test]
async fn dropped_connections_and_latency_are_injected_per_operation() {
    let w = World::new().await;
    w.sim.set_fault(
        "DescribeClusters",
        activegate_lifecycle::sim::Fault {
            drop: 1.0,
            ..Default::default()
        },
    );
    let err = w
        .ecs
        .describe_clusters()
        .clusters(CLUSTER)
        .send()
        .await
        .expect_err("dropped");
    assert!(
        err.as_service_error().is_none(),
        "a dropped connection is no service error: {err:?}"
    );
    assert!(
        matches!(
            err,
            aws_sdk_ecs::error::SdkError::DispatchFailure(_)
                | aws_sdk_ecs::error::SdkError::ResponseError(_)
        ),
        "{err:?}"
    );

    w.sim.set_fault(
        "DescribeClusters",
        activegate_lifecycle::sim::Fault {
            latency_ms: 300,
            ..Default::default()
        },
    );
    let started = std::time::Instant::now();
    w.ecs
        .describe_clusters()
        .clusters(CLUSTER)
        .send()
        .await
        .expect("slow but answered");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));

    w.sim.set_fault(
        "*",
        activegate_lifecycle::sim::Fault {
            error: 1.0,
            ..Default::default()
        },
    );
    let err = w.ecs.list_task_definitions().send().await.expect_err("500");
    assert_eq!(code(&err).as_deref(), Some("ServerException"));
    w.sim.shutdown().await;
}

/// Every ECS write call is recorded with the caller's user agent (which carries the SDK
/// config's app name), the operation, the resource and the simulated time; reads are
/// not; the control API lists them.
#[tokio::test]
async fn write_calls_are_recorded_with_the_callers_app_name() {
    let w = World::new().await;
    let app = aws_sdk_ecs::config::AppName::new("fleet-observer").expect("a valid app name");
    let ecs = aws_sdk_ecs::Client::from_conf(w.ecs.config().to_builder().app_name(app).build());
    let before = w.sim.now();
    ecs.create_cluster()
        .cluster_name("recorded")
        .send()
        .await
        .expect("cluster");
    ecs.describe_clusters()
        .clusters("recorded")
        .send()
        .await
        .expect("read");

    let writes = w.sim.write_calls();
    let mine: Vec<_> = writes
        .iter()
        .filter(|c| c.user_agent.contains("app/fleet-observer"))
        .collect();
    assert_eq!(mine.len(), 1, "{writes:?}");
    assert_eq!(mine[0].operation, "CreateCluster");
    assert_eq!(mine[0].resource, "recorded");
    assert!(
        mine[0].time >= before && mine[0].time <= w.sim.now(),
        "{mine:?}"
    );
    // The kit's own client (no app name) created the scenario's cluster.
    assert!(
        writes.iter().any(|c| c.operation == "CreateCluster"
            && c.resource == CLUSTER
            && !c.user_agent.contains("app/fleet-observer")),
        "{writes:?}"
    );
    assert!(writes.iter().all(|c| !c.operation.starts_with("Describe")));

    let listed: serde_json::Value =
        reqwest::get(format!("{}/sim/v1/calls/writes", w.sim.endpoint()))
            .await
            .expect("control API")
            .json()
            .await
            .expect("JSON");
    let listed = listed.as_array().expect("a list");
    assert!(
        listed.iter().any(|c| c["operation"] == "CreateCluster"
            && c["resource"] == "recorded"
            && c["user_agent"]
                .as_str()
                .is_some_and(|u| u.contains("app/fleet-observer"))),
        "{listed:?}"
    );
    w.sim.shutdown().await;
}
