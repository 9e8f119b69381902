//! The simulator as ECS's EXTERNAL deployment controller (task sets) and as the
//! service-deployment API of rolling services, through the real AWS SDK.

mod simkit;

use std::collections::BTreeSet;
use std::time::Duration;

use activegate_lifecycle::sim::{Behaviour, Mode};
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{
    DeploymentController, DeploymentControllerType, LaunchType, Scale, ScaleUnit,
    ServiceDeploymentStatus, StopServiceDeploymentStopType, Tag, TaskSet,
};
use simkit::*;

const V1: &str = "registry.example/activegate:1.0";
const V2: &str = "registry.example/activegate:2.0";

fn code<E: ProvideErrorMetadata>(e: &aws_sdk_ecs::error::SdkError<E>) -> String {
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("no code")
        .to_owned()
}

fn message<E: ProvideErrorMetadata>(e: &aws_sdk_ecs::error::SdkError<E>) -> String {
    e.as_service_error()
        .and_then(|s| s.message())
        .unwrap_or_default()
        .to_owned()
}

fn external() -> DeploymentController {
    DeploymentController::builder()
        .r#type(DeploymentControllerType::External)
        .build()
        .expect("type is set")
}

fn percent(value: f64) -> Scale {
    Scale::builder()
        .unit(ScaleUnit::Percent)
        .value(value)
        .build()
}

async fn create_external(w: &World, name: &str, desired: i32) {
    w.ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name(name)
        .desired_count(desired)
        .deployment_controller(external())
        .send()
        .await
        .expect("create an EXTERNAL service");
}

/// Creates a task set of `td` at `scale` percent; returns it.
async fn create_task_set(w: &World, service: &str, td: &str, scale: f64) -> TaskSet {
    w.ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service(service)
        .task_definition(td)
        .launch_type(LaunchType::Fargate)
        .network_configuration(network())
        .scale(percent(scale))
        .send()
        .await
        .expect("create task set")
        .task_set()
        .cloned()
        .expect("a task set")
}

async fn task_sets(w: &World, service: &str) -> Vec<TaskSet> {
    w.ecs
        .describe_task_sets()
        .cluster(CLUSTER)
        .service(service)
        .send()
        .await
        .expect("describe task sets")
        .task_sets()
        .to_vec()
}

async fn task_set(w: &World, service: &str, id: &str) -> TaskSet {
    task_sets(w, service)
        .await
        .into_iter()
        .find(|t| t.id() == Some(id))
        .expect("the task set exists")
}

/// RUNNING tasks started by `started_by`, once there are exactly `n` of them.
async fn running_of(
    w: &World,
    service: &str,
    started_by: &str,
    n: usize,
) -> Vec<aws_sdk_ecs::types::Task> {
    until(w.sim.real(600.0), || async {
        let tasks: Vec<_> = w
            .tasks(service, false)
            .await
            .into_iter()
            .filter(|t| t.started_by() == Some(started_by))
            .collect();
        (tasks.len() == n && tasks.iter().all(|t| t.last_status() == Some("RUNNING")))
            .then_some(tasks)
    })
    .await
}

fn arns(tasks: &[aws_sdk_ecs::types::Task]) -> BTreeSet<String> {
    tasks
        .iter()
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect()
}

/// Every task answers GET /rest/health with 200 RUNNING over TLS from the simulator's CA.
async fn all_serve(w: &World, tasks: &[aws_sdk_ecs::types::Task]) {
    let client = https_client(w.sim.ca_pem(), Duration::from_secs(5));
    for t in tasks {
        let url = format!("https://{}:9999/rest/health", task_ip(t));
        let body = until(w.sim.real(300.0), || async {
            let r = client.get(&url).send().await.ok()?;
            let ok = r.status() == 200;
            let body = r.text().await.ok()?;
            (ok && body == "RUNNING").then_some(body)
        })
        .await;
        assert_eq!(body, "RUNNING", "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_service_runs_swaps_scales_and_deletes_task_sets() {
    let w = World::new().await;
    w.image(V1, Mode::Healthy);
    w.image(V2, Mode::Healthy);
    let td1 = w.register(V1, true).await;
    let td2 = w.register(V2, true).await;
    create_external(&w, "ag", 2).await;

    // No task set yet: EXTERNAL, no deployments, no task definition.
    let s = w.service("ag").await;
    assert_eq!(
        s.deployment_controller().map(|c| c.r#type().as_str()),
        Some("EXTERNAL")
    );
    assert!(s.deployments().is_empty());
    assert!(s.task_sets().is_empty());
    assert_eq!(s.task_definition(), None);
    assert_eq!(s.network_configuration(), None);

    // A first task set at 100 %: ACTIVE (ECS makes none PRIMARY by itself).
    let blue = create_task_set(&w, "ag", &td1, 100.0).await;
    let blue_id = blue.id().expect("an id").to_owned();
    let digits = blue_id.strip_prefix("ecs-svc/").expect("ecs-svc/ id");
    assert_eq!(digits.len(), 19, "{blue_id}");
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{blue_id}");
    assert_eq!(
        blue.task_set_arn(),
        Some(
            format!("arn:aws:ecs:us-east-1:123456789012:task-set/{CLUSTER}/ag/{blue_id}").as_str()
        )
    );
    assert_eq!(blue.status(), Some("ACTIVE"));
    assert_eq!(blue.task_definition(), Some(td1.as_str()));
    assert_eq!(blue.computed_desired_count(), 2);
    assert_eq!(blue.scale().map(|s| s.value()), Some(100.0));
    assert_eq!(
        blue.stability_status().map(|s| s.as_str()),
        Some("STABILIZING")
    );
    assert_eq!(
        blue.service_arn(),
        Some(format!("arn:aws:ecs:us-east-1:123456789012:service/{CLUSTER}/ag").as_str())
    );

    // Its tasks: startedBy = the task set's id, real HTTPS ActiveGates.
    let blue_tasks = running_of(&w, "ag", &blue_id, 2).await;
    all_serve(&w, &blue_tasks).await;
    let t = until(w.sim.real(600.0), || async {
        let t = task_set(&w, "ag", &blue_id).await;
        (t.stability_status().map(|s| s.as_str()) == Some("STEADY_STATE")).then_some(t)
    })
    .await;
    assert_eq!((t.running_count(), t.pending_count()), (2, 0));

    // PRIMARY: the service takes its task definition and network from it.
    let p = w
        .ecs
        .update_service_primary_task_set()
        .cluster(CLUSTER)
        .service("ag")
        .primary_task_set(&blue_id)
        .send()
        .await
        .expect("primary");
    assert_eq!(p.task_set().and_then(|t| t.status()), Some("PRIMARY"));
    let s = w.service("ag").await;
    assert_eq!(s.task_definition(), Some(td1.as_str()));
    assert!(s.network_configuration().is_some());
    assert_eq!(s.running_count(), 2);

    // A second task set beside it: both serve, 2 × desired tasks.
    let green = create_task_set(&w, "ag", &td2, 100.0).await;
    let green_id = green.id().expect("an id").to_owned();
    assert_ne!(green_id, blue_id);
    let green_tasks = running_of(&w, "ag", &green_id, 2).await;
    all_serve(&w, &green_tasks).await;
    let s = until(w.sim.real(300.0), || async {
        let s = w.service("ag").await;
        (s.running_count() == 4).then_some(s)
    })
    .await;
    assert_eq!(s.task_sets().len(), 2);
    // The healthy-count timeline record counts the tasks of every task set.
    until(w.sim.real(300.0), || async {
        (w.sim.healthy_tasks("ag") == 4).then_some(())
    })
    .await;

    // The swap: green PRIMARY, blue ACTIVE keeping its scale and its tasks.
    w.ecs
        .update_service_primary_task_set()
        .cluster(CLUSTER)
        .service("ag")
        .primary_task_set(green.task_set_arn().expect("arn"))
        .send()
        .await
        .expect("swap");
    let sets = task_sets(&w, "ag").await;
    let status = |id: &str| {
        sets.iter()
            .find(|t| t.id() == Some(id))
            .and_then(|t| t.status())
            .map(str::to_owned)
    };
    assert_eq!(status(&green_id).as_deref(), Some("PRIMARY"));
    assert_eq!(status(&blue_id).as_deref(), Some("ACTIVE"));
    assert_eq!(
        sets.iter()
            .filter(|t| t.status() == Some("PRIMARY"))
            .count(),
        1,
        "one PRIMARY task set at a time"
    );
    assert_eq!(w.service("ag").await.task_definition(), Some(td2.as_str()));
    assert_eq!(
        arns(&running_of(&w, "ag", &blue_id, 2).await),
        arns(&blue_tasks)
    );

    // Blue to 0 %: its tasks stop, as a scale-in by ECS.
    let scaled = w
        .ecs
        .update_task_set()
        .cluster(CLUSTER)
        .service("ag")
        .task_set(&blue_id)
        .scale(percent(0.0))
        .send()
        .await
        .expect("scale to 0");
    assert_eq!(
        scaled.task_set().map(TaskSet::computed_desired_count),
        Some(0)
    );
    let stopped = until(w.sim.real(300.0), || async {
        let stopped: Vec<_> = w
            .tasks("ag", true)
            .await
            .into_iter()
            .filter(|t| t.started_by() == Some(blue_id.as_str()))
            .collect();
        (stopped.len() == 2 && stopped.iter().all(|t| t.last_status() == Some("STOPPED")))
            .then_some(stopped)
    })
    .await;
    assert_eq!(arns(&stopped), arns(&blue_tasks));
    for t in &stopped {
        let reason = t.stopped_reason().unwrap_or_default();
        assert_eq!(
            reason,
            format!("Scaling activity initiated by (deployment {blue_id})")
        );
        assert_eq!(
            t.stop_code().map(|c| c.as_str()),
            Some("ServiceSchedulerInitiated")
        );
    }

    // Delete blue: DRAINING, then gone; green keeps its tasks.
    let deleted = w
        .ecs
        .delete_task_set()
        .cluster(CLUSTER)
        .service("ag")
        .task_set(&blue_id)
        .send()
        .await
        .expect("delete a task set scaled to 0");
    assert_eq!(
        deleted.task_set().and_then(|t| t.status()),
        Some("DRAINING")
    );
    until(w.sim.real(300.0), || async {
        let out = w
            .ecs
            .describe_task_sets()
            .cluster(CLUSTER)
            .service("ag")
            .task_sets(&blue_id)
            .send()
            .await
            .expect("describe");
        (out.task_sets().is_empty()
            && out.failures().first().and_then(|f| f.reason()) == Some("MISSING"))
        .then_some(())
    })
    .await;
    let s = w.service("ag").await;
    assert_eq!(s.task_sets().len(), 1);
    assert_eq!(s.task_sets()[0].id(), Some(green_id.as_str()));
    assert_eq!(
        arns(&running_of(&w, "ag", &green_id, 2).await),
        arns(&green_tasks)
    );

    // UpdateService's desired count moves every task set's computed desired count.
    w.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ag")
        .desired_count(3)
        .send()
        .await
        .expect("scale the service");
    assert_eq!(
        task_set(&w, "ag", &green_id).await.computed_desired_count(),
        3
    );
    let green_now = running_of(&w, "ag", &green_id, 3).await;
    assert!(arns(&green_tasks).is_subset(&arns(&green_now)));
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_token_creates_one_task_set_and_tags_are_kept() {
    let w = World::new().await;
    let td = w.register(V1, false).await;
    create_external(&w, "ag", 1).await;
    let create = || {
        w.ecs
            .create_task_set()
            .cluster(CLUSTER)
            .service("ag")
            .task_definition(&td)
            .network_configuration(network())
            .scale(percent(50.0))
            .external_id("rollout-7")
            .client_token("token-1")
            .tags(Tag::builder().key("owner").value("lifecycle").build())
            .send()
    };
    let first = create()
        .await
        .expect("create")
        .task_set()
        .cloned()
        .expect("set");
    let again = create()
        .await
        .expect("retry")
        .task_set()
        .cloned()
        .expect("set");
    assert_eq!(first.task_set_arn(), again.task_set_arn());
    assert_eq!(task_sets(&w, "ag").await.len(), 1);
    // ceil(1 × 50 / 100) = 1.
    assert_eq!(first.computed_desired_count(), 1);
    assert_eq!(first.external_id(), Some("rollout-7"));

    // Tags: given at creation, and through TagResource on the task set's ARN.
    let arn = first.task_set_arn().expect("arn").to_owned();
    w.ecs
        .tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("stage").value("green").build())
        .send()
        .await
        .expect("tag a task set");
    let listed = w
        .ecs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("list tags");
    let keys: Vec<_> = listed.tags().iter().filter_map(|t| t.key()).collect();
    assert_eq!(keys, ["owner", "stage"]);
    w.ecs
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("owner")
        .send()
        .await
        .expect("untag");
    let described = w
        .ecs
        .describe_task_sets()
        .cluster(CLUSTER)
        .service("ag")
        .task_sets(&arn)
        .include(aws_sdk_ecs::types::TaskSetField::Tags)
        .send()
        .await
        .expect("describe with tags");
    let tags: Vec<_> = described.task_sets()[0]
        .tags()
        .iter()
        .filter_map(|t| t.key())
        .collect();
    assert_eq!(tags, ["stage"]);
    // Without include=TAGS, no tags.
    assert!(task_sets(&w, "ag").await[0].tags().is_empty());
    w.sim.shutdown().await;
}

#[tokio::test]
async fn refusals_carry_ecs_error_codes() {
    let w = World::new().await;
    let td = w.register(V1, false).await;

    // CreateService (EXTERNAL): no circuit breaker, no task definition, no network.
    let err = w
        .ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name("ext")
        .deployment_controller(external())
        .deployment_configuration(deployment(true))
        .send()
        .await
        .expect_err("a breaker on EXTERNAL");
    assert_eq!(code(&err), "InvalidParameterException");
    assert!(
        message(&err).contains("circuit breaker"),
        "{}",
        message(&err)
    );
    let err = w
        .ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name("ext")
        .deployment_controller(external())
        .task_definition(&td)
        .send()
        .await
        .expect_err("a task definition on EXTERNAL");
    assert_eq!(code(&err), "InvalidParameterException");
    assert_eq!(message(&err), "TaskDefinition must be blank.");
    let err = w
        .ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name("ext")
        .deployment_controller(external())
        .network_configuration(network())
        .send()
        .await
        .expect_err("a network on EXTERNAL");
    assert_eq!(message(&err), "NetworkConfiguration must be null.");
    create_external(&w, "ext", 1).await;

    // UpdateService (EXTERNAL): the task definition belongs to task sets.
    let err = w
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ext")
        .task_definition(&td)
        .send()
        .await
        .expect_err("a task definition on EXTERNAL");
    assert_eq!(code(&err), "InvalidParameterException");
    assert!(
        message(&err).starts_with(
            "Unable to update task definition on services with a EXTERNAL deployment controller."
        ),
        "{}",
        message(&err)
    );
    let err = w
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ext")
        .network_configuration(network())
        .send()
        .await
        .expect_err("a network on EXTERNAL");
    assert_eq!(code(&err), "InvalidParameterException");

    // CreateTaskSet on a rolling service, on no service, with a bad scale or no subnets.
    w.create_service("rolling", &td, 1).await;
    let err = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("rolling")
        .task_definition(&td)
        .network_configuration(network())
        .send()
        .await
        .expect_err("a rolling service has no task sets");
    assert_eq!(code(&err), "InvalidParameterException");
    assert_eq!(
        message(&err),
        "Amazon ECS only supports task set management on services configured to use external deployment controllers."
    );
    let err = w
        .ecs
        .describe_task_sets()
        .cluster(CLUSTER)
        .service("rolling")
        .send()
        .await
        .expect_err("nor describes them");
    assert_eq!(code(&err), "InvalidParameterException");
    let err = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("nope")
        .task_definition(&td)
        .network_configuration(network())
        .send()
        .await
        .expect_err("no service");
    assert_eq!(code(&err), "ServiceNotFoundException");
    let err = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_definition(&td)
        .network_configuration(network())
        .scale(percent(150.0))
        .send()
        .await
        .expect_err("more than 100 %");
    assert_eq!(code(&err), "InvalidParameterException");
    let err = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_definition(&td)
        .send()
        .await
        .expect_err("awsvpc needs subnets");
    assert_eq!(code(&err), "InvalidParameterException");
    let err = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_definition("activegate:99")
        .network_configuration(network())
        .send()
        .await
        .expect_err("no such task definition");
    assert_eq!(code(&err), "ClientException");
    let inactive = w.register(V2, false).await;
    w.ecs
        .deregister_task_definition()
        .task_definition(&inactive)
        .send()
        .await
        .expect("deregister");
    let err = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_definition(&inactive)
        .network_configuration(network())
        .send()
        .await
        .expect_err("an inactive task definition");
    assert_eq!(code(&err), "InvalidParameterException");
    assert_eq!(message(&err), "TaskDefinition is inactive");

    // Without scale a task set starts at 0 %.
    let a = create_task_set(&w, "ext", &td, 100.0).await;
    let b = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_definition(&td)
        .network_configuration(network())
        .send()
        .await
        .expect("create")
        .task_set()
        .cloned()
        .expect("set");
    assert_eq!(b.scale().map(|s| s.value()), Some(0.0));
    assert_eq!(b.computed_desired_count(), 0);
    let (a_id, b_id) = (a.id().expect("id"), b.id().expect("id"));

    // Unknown task sets.
    let err = w
        .ecs
        .update_service_primary_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .primary_task_set("ecs-svc/1234567890123456789")
        .send()
        .await
        .expect_err("no such task set");
    assert_eq!(code(&err), "TaskSetNotFoundException");
    let err = w
        .ecs
        .delete_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_set("ecs-svc/1234567890123456789")
        .send()
        .await
        .expect_err("no such task set");
    assert_eq!(code(&err), "TaskSetNotFoundException");

    // The PRIMARY task set, and one not scaled to zero, are deleted only with force.
    w.ecs
        .update_service_primary_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .primary_task_set(a_id)
        .send()
        .await
        .expect("primary");
    let err = w
        .ecs
        .delete_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_set(a_id)
        .send()
        .await
        .expect_err("the PRIMARY task set");
    assert_eq!(code(&err), "InvalidParameterException");
    w.ecs
        .update_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_set(b_id)
        .scale(percent(100.0))
        .send()
        .await
        .expect("scale b");
    let err = w
        .ecs
        .delete_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_set(b_id)
        .send()
        .await
        .expect_err("not scaled to zero");
    assert_eq!(code(&err), "InvalidParameterException");
    let forced = w
        .ecs
        .delete_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_set(b_id)
        .force(true)
        .send()
        .await
        .expect("force deletes it");
    assert_eq!(forced.task_set().and_then(|t| t.status()), Some("DRAINING"));

    // PRIMARY stays unique.
    let primaries = task_sets(&w, "ext")
        .await
        .iter()
        .filter(|t| t.status() == Some("PRIMARY"))
        .count();
    assert_eq!(primaries, 1);

    // Five task sets at most (DRAINING ones count until they are gone).
    until(w.sim.real(300.0), || async {
        (task_sets(&w, "ext").await.len() == 1).then_some(())
    })
    .await;
    for _ in 0..4 {
        create_task_set(&w, "ext", &td, 0.0).await;
    }
    let err = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("ext")
        .task_definition(&td)
        .network_configuration(network())
        .send()
        .await
        .expect_err("a sixth task set");
    assert_eq!(code(&err), "InvalidParameterException");
    assert!(
        message(&err).contains("exceeds the maximum limit"),
        "{}",
        message(&err)
    );
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_task_set_is_neither_made_primary_nor_scaled() {
    // Slower time, so that the deleted set's task takes 100 ms to stop.
    let w = World::with(aws_config::retry::RetryConfig::disabled(), 20.0).await;
    let td = w.register(V1, false).await;
    create_external(&w, "ag", 1).await;
    let set = create_task_set(&w, "ag", &td, 100.0).await;
    let id = set.id().expect("id").to_owned();
    running_of(&w, "ag", &id, 1).await;
    let deleted = w
        .ecs
        .delete_task_set()
        .cluster(CLUSTER)
        .service("ag")
        .task_set(&id)
        .force(true)
        .send()
        .await
        .expect("force deletes it");
    assert_eq!(
        deleted.task_set().and_then(|t| t.status()),
        Some("DRAINING")
    );
    let err = w
        .ecs
        .update_service_primary_task_set()
        .cluster(CLUSTER)
        .service("ag")
        .primary_task_set(&id)
        .send()
        .await
        .expect_err("a DRAINING task set");
    assert_eq!(code(&err), "InvalidParameterException");
    let err = w
        .ecs
        .update_task_set()
        .cluster(CLUSTER)
        .service("ag")
        .task_set(&id)
        .scale(percent(50.0))
        .send()
        .await
        .expect_err("a DRAINING task set");
    assert_eq!(code(&err), "InvalidParameterException");
    // Its task stops; then the task set is gone.
    until(w.sim.real(60.0), || async {
        task_sets(&w, "ag").await.is_empty().then_some(())
    })
    .await;
    let stopped = w.tasks("ag", true).await;
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].last_status(), Some("STOPPED"));
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_task_of_a_task_set_is_replaced() {
    let w = World::new().await;
    w.sim.set_image(
        V1,
        Behaviour {
            start_seconds: Some(10.0),
            after_seconds: Some(40.0),
            exit_code: Some(137),
            ..Behaviour::of(Mode::CrashesAfter)
        },
    );
    let td = w.register(V1, false).await;
    create_external(&w, "ag", 1).await;
    // The task set's own subnet: its tasks' ENIs are in it.
    let subnet = "subnet-0fedcba9876543210";
    let set = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("ag")
        .task_definition(&td)
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .subnets(subnet)
                        .build()
                        .expect("awsvpc configuration"),
                )
                .build(),
        )
        .scale(percent(100.0))
        .send()
        .await
        .expect("create task set")
        .task_set()
        .cloned()
        .expect("a task set");
    let id = set.id().expect("id").to_owned();
    let first = running_of(&w, "ag", &id, 1).await;
    let eni_subnet = first[0]
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("subnetId"))
        .and_then(|d| d.value());
    assert_eq!(eni_subnet, Some(subnet));
    let first_arn = first[0].task_arn().expect("arn").to_owned();
    let crashed = until(w.sim.real(600.0), || async {
        w.tasks("ag", true)
            .await
            .into_iter()
            .find(|t| t.task_arn() == Some(first_arn.as_str()))
    })
    .await;
    assert_eq!(
        crashed.stop_code().map(|c| c.as_str()),
        Some("EssentialContainerExited")
    );
    // A new task of the same task set replaces it.
    let replacement = until(w.sim.real(600.0), || async {
        w.tasks("ag", false).await.into_iter().find(|t| {
            t.started_by() == Some(id.as_str())
                && t.task_arn() != Some(first_arn.as_str())
                && t.last_status() == Some("RUNNING")
        })
    })
    .await;
    assert_eq!(replacement.task_definition_arn(), Some(td.as_str()));
    w.sim.shutdown().await;
}

async fn deployments_of(
    w: &World,
    service: &str,
    status: Option<ServiceDeploymentStatus>,
) -> Vec<aws_sdk_ecs::types::ServiceDeploymentBrief> {
    w.ecs
        .list_service_deployments()
        .cluster(CLUSTER)
        .service(service)
        .set_status(status.map(|s| vec![s]))
        .send()
        .await
        .expect("list service deployments")
        .service_deployments()
        .to_vec()
}

async fn describe_deployment(w: &World, arn: &str) -> aws_sdk_ecs::types::ServiceDeployment {
    w.ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .expect("describe service deployments")
        .service_deployments()
        .first()
        .cloned()
        .expect("found")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_rolling_deployment_rolls_back_to_the_old_tasks() {
    let w = World::new().await;
    w.image(V1, Mode::Healthy);
    w.image(V2, Mode::NeverHealthy);
    let td1 = w.register(V1, true).await;
    let td2 = w.register(V2, true).await;
    // No breaker: only StopServiceDeployment rolls back.
    w.ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name("ag")
        .task_definition(&td1)
        .desired_count(2)
        .launch_type(LaunchType::Fargate)
        .network_configuration(network())
        .deployment_configuration(deployment(false))
        .send()
        .await
        .expect("create");
    let s = w.until_completed("ag").await;
    assert_eq!(
        s.deployment_controller().map(|c| c.r#type().as_str()),
        Some("ECS")
    );
    let first = until(w.sim.real(60.0), || async {
        let d = deployments_of(&w, "ag", None).await;
        (d.len() == 1 && d[0].status() == Some(&ServiceDeploymentStatus::Successful))
            .then_some(d[0].clone())
    })
    .await;
    let old_revision = first
        .target_service_revision_arn()
        .expect("a revision")
        .to_owned();
    assert!(
        old_revision.starts_with(&format!(
            "arn:aws:ecs:us-east-1:123456789012:service-revision/{CLUSTER}/ag/"
        )),
        "{old_revision}"
    );
    assert!(
        first
            .service_deployment_arn()
            .expect("arn")
            .starts_with(&format!(
                "arn:aws:ecs:us-east-1:123456789012:service-deployment/{CLUSTER}/ag/"
            ))
    );
    let old = arns(&w.tasks("ag", false).await);
    assert_eq!(old.len(), 2);

    w.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ag")
        .task_definition(&td2)
        .send()
        .await
        .expect("update to a never-healthy image");
    let current = deployments_of(&w, "ag", Some(ServiceDeploymentStatus::InProgress)).await;
    assert_eq!(current.len(), 1);
    let sd = current[0].service_deployment_arn().expect("arn").to_owned();
    assert_eq!(
        w.service("ag").await.current_service_deployment(),
        Some(sd.as_str())
    );
    let full = describe_deployment(&w, &sd).await;
    assert_eq!(full.source_service_revisions().len(), 1);
    assert_eq!(
        full.source_service_revisions()[0].arn(),
        Some(old_revision.as_str())
    );
    // The new tasks run, unhealthy; the old ones stay.
    until(w.sim.real(300.0), || async {
        let n = w
            .tasks("ag", false)
            .await
            .iter()
            .filter(|t| {
                t.task_definition_arn() == Some(td2.as_str()) && t.last_status() == Some("RUNNING")
            })
            .count();
        (n > 0).then_some(())
    })
    .await;

    let out = w
        .ecs
        .stop_service_deployment()
        .service_deployment_arn(&sd)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .expect("stop with rollback");
    assert_eq!(out.service_deployment_arn(), Some(sd.as_str()));
    let done = until(w.sim.real(600.0), || async {
        let d = describe_deployment(&w, &sd).await;
        (d.status() == Some(&ServiceDeploymentStatus::RollbackSuccessful)).then_some(d)
    })
    .await;
    let rollback = done.rollback().expect("a rollback");
    assert_eq!(rollback.service_revision_arn(), Some(old_revision.as_str()));
    assert!(done.finished_at().is_some());

    // The old tasks (same ARNs) are what runs; the new ones stopped; td1 again.
    let s = until(w.sim.real(300.0), || async {
        let s = w.service("ag").await;
        (s.deployments().len() == 1 && s.running_count() == 2).then_some(s)
    })
    .await;
    assert_eq!(s.task_definition(), Some(td1.as_str()));
    assert_eq!(s.deployments()[0].task_definition(), Some(td1.as_str()));
    assert_eq!(arns(&w.tasks("ag", false).await), old);
    let stopped = w.tasks("ag", true).await;
    assert!(!stopped.is_empty());
    assert!(
        stopped
            .iter()
            .all(|t| t.task_definition_arn() == Some(td2.as_str())),
        "only new tasks were stopped"
    );
    // No task of the old revision was launched for the rollback.
    let launched_td1: BTreeSet<String> = w
        .tasks("ag", false)
        .await
        .iter()
        .chain(stopped.iter())
        .filter(|t| t.task_definition_arn() == Some(td1.as_str()))
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect();
    assert_eq!(launched_td1, old);
    assert!(s.events().iter().any(|e| {
        e.message()
            .is_some_and(|m| m.contains("rolling back to deployment"))
    }));
    // The timeline records the roll-back as the service's second update, back to td1.
    let updates: Vec<String> = w
        .sim
        .timeline()
        .into_iter()
        .filter(|e| e.kind == "service-updated")
        .map(|e| e.detail)
        .collect();
    assert_eq!(
        updates,
        [
            format!("task definition {td2}, desired 2"),
            format!("task definition {td1}, desired 2")
        ]
    );

    // A finished service deployment cannot be stopped; an unknown one is not found.
    let err = w
        .ecs
        .stop_service_deployment()
        .service_deployment_arn(&sd)
        .send()
        .await
        .expect_err("already rolled back");
    assert_eq!(code(&err), "ConflictException");
    let err = w
        .ecs
        .stop_service_deployment()
        .service_deployment_arn(format!(
            "arn:aws:ecs:us-east-1:123456789012:service-deployment/{CLUSTER}/ag/nope"
        ))
        .send()
        .await
        .expect_err("no such service deployment");
    assert_eq!(code(&err), "ServiceDeploymentNotFoundException");
    let missing = w
        .ecs
        .describe_service_deployments()
        .service_deployment_arns("arn:aws:ecs:us-east-1:123456789012:service-deployment/x/y/z")
        .send()
        .await
        .expect("describe");
    assert_eq!(missing.failures()[0].reason(), Some("MISSING"));
    let all = deployments_of(&w, "ag", None).await;
    assert_eq!(
        all.len(),
        2,
        "one service deployment per deployment started"
    );
    assert_eq!(
        all[0].service_deployment_arn(),
        Some(sd.as_str()),
        "newest first"
    );
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_rollback_is_a_service_deployment_rollback() {
    let w = World::new().await;
    w.image(V1, Mode::Healthy);
    w.image(V2, Mode::NeverHealthy);
    let td1 = w.register(V1, true).await;
    let td2 = w.register(V2, true).await;
    w.create_service("ag", &td1, 2).await;
    w.until_completed("ag").await;
    let first = until(w.sim.real(60.0), || async {
        let d = deployments_of(&w, "ag", None).await;
        (d.len() == 1 && d[0].status() == Some(&ServiceDeploymentStatus::Successful))
            .then_some(d[0].clone())
    })
    .await;
    w.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ag")
        .task_definition(&td2)
        .send()
        .await
        .expect("update");
    let sd = deployments_of(&w, "ag", Some(ServiceDeploymentStatus::InProgress)).await[0]
        .service_deployment_arn()
        .expect("arn")
        .to_owned();
    let done = until(w.sim.real(3000.0), || async {
        let d = describe_deployment(&w, &sd).await;
        (d.status() == Some(&ServiceDeploymentStatus::RollbackSuccessful)).then_some(d)
    })
    .await;
    assert_eq!(
        done.rollback().and_then(|r| r.service_revision_arn()),
        first.target_service_revision_arn()
    );
    let breaker = done.deployment_circuit_breaker().expect("breaker");
    assert_eq!(breaker.status().map(|s| s.as_str()), Some("TRIGGERED"));
    assert!(breaker.failure_count() >= 3);
    assert_eq!(breaker.threshold(), 3);
    assert_eq!(w.service("ag").await.task_definition(), Some(td1.as_str()));
    w.sim.shutdown().await;
}
