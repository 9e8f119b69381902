//! Stories against the simulator, told through the real AWS SDK: rolling
//! updates, the circuit breaker, crashes, throttling. Each asserts what ECS
//! would do, so that the rollout engine can be tested against it.

mod simkit;

use std::time::Duration;

use activegate_lifecycle::sim::{Fault, Mode};
use simkit::*;

const V1: &str = "public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512";
const V2: &str = "public.ecr.aws/dynatrace/dynatrace-activegate:1.303.10.20250115-101010";

/// Healthy-count changes of one service, in order.
fn healthy_counts(w: &World, service_arn: &str) -> Vec<usize> {
    w.sim
        .timeline()
        .iter()
        .filter(|e| e.kind == "healthy-count" && e.subject == service_arn)
        .map(|e| e.detail.parse().expect("a count"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_update_completes_and_a_healthy_task_is_always_there() {
    let w = World::new().await;
    w.image(V1, Mode::Healthy);
    w.image(V2, Mode::Healthy);
    let td1 = w.register(V1, true).await;
    w.create_service("ag", &td1, 2).await;
    let s = w.until_completed("ag").await;
    let first: Vec<String> = w
        .tasks("ag", false)
        .await
        .iter()
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect();
    assert_eq!(first.len(), 2);
    assert!(s.events().iter().any(|e| {
        e.message()
            .is_some_and(|m| m.contains("has reached a steady state"))
    }));

    let td2 = w.register(V2, true).await;
    assert!(td2.ends_with(":2"), "{td2}");
    w.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ag")
        .task_definition(&td2)
        .send()
        .await
        .expect("update");
    let s = w.until_completed("ag").await;
    assert_eq!(s.task_definition(), Some(td2.as_str()));
    assert_eq!(s.running_count(), 2);

    let running = w.tasks("ag", false).await;
    assert_eq!(running.len(), 2);
    for t in &running {
        assert_eq!(t.task_definition_arn(), Some(td2.as_str()));
        assert_eq!(t.last_status(), Some("RUNNING"));
        assert_eq!(t.health_status().map(|h| h.as_str()), Some("HEALTHY"));
        assert!(!first.contains(&t.task_arn().unwrap_or_default().to_owned()));
    }
    let stopped = w.tasks("ag", true).await;
    assert!(
        stopped
            .iter()
            .filter(|t| first.contains(&t.task_arn().unwrap_or_default().to_owned()))
            .count()
            == 2
    );

    // From the first healthy task on, the service never had none.
    let counts = healthy_counts(&w, s.service_arn().expect("arn"));
    let from_first = counts
        .iter()
        .skip_while(|c| **c == 0)
        .copied()
        .collect::<Vec<_>>();
    assert!(!from_first.is_empty(), "{counts:?}");
    assert!(
        from_first.iter().all(|c| *c >= 2),
        "a moment below minimumHealthyPercent: {counts:?}"
    );

    // Every new task is a real HTTPS ActiveGate at its ENI address.
    let client = https_client(w.sim.ca_pem(), Duration::from_secs(5));
    for t in &running {
        let url = format!("https://{}:9999/rest/health", task_ip(t));
        let r = client
            .get(&url)
            .send()
            .await
            .expect("the fake ActiveGate answers over TLS");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "RUNNING");
    }
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_healthy_image_keeps_the_old_tasks_and_the_breaker_rolls_back() {
    let w = World::new().await;
    w.image(V1, Mode::Healthy);
    w.image(V2, Mode::NeverHealthy);
    let td1 = w.register(V1, true).await;
    w.create_service("ag", &td1, 2).await;
    w.until_completed("ag").await;
    let old: Vec<String> = w
        .tasks("ag", false)
        .await
        .iter()
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect();

    let td2 = w.register(V2, true).await;
    w.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ag")
        .task_definition(&td2)
        .send()
        .await
        .expect("update");
    // The breaker trips after clamp(ceil(0.5 × 2), 3, 200) = 3 failed tasks and rolls back.
    let s = until(w.sim.real(3000.0), || async {
        let s = w.service("ag").await;
        let rolled_back = s.events().iter().any(|e| {
            e.message()
                .is_some_and(|m| m.contains("rolling back to deployment"))
        });
        (rolled_back
            && s.deployments().len() == 1
            && s.deployments()[0].rollout_state().map(|r| r.as_str()) == Some("COMPLETED"))
        .then_some(s)
    })
    .await;
    assert_eq!(s.task_definition(), Some(td1.as_str()));
    assert!(s.events().iter().any(|e| {
        e.message()
            .is_some_and(|m| m.contains("deployment failed: tasks failed to start"))
    }));
    let failed = w
        .sim
        .timeline()
        .iter()
        .filter(|e| e.kind == "deployment-failed")
        .count();
    assert_eq!(failed, 1);

    // The old tasks were never stopped.
    let running: Vec<String> = w
        .tasks("ag", false)
        .await
        .iter()
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect();
    assert_eq!(running.len(), 2);
    for arn in &old {
        assert!(running.contains(arn), "old task {arn} was replaced");
    }
    assert_eq!(old.len(), 2);
    let counts = healthy_counts(&w, s.service_arn().expect("arn"));
    assert!(!counts.is_empty(), "the timeline has healthy counts");
    assert!(
        counts.iter().skip_while(|c| **c == 0).all(|c| *c >= 2),
        "{counts:?}"
    );

    // The bad tasks say why they stopped, and wrote it to their log.
    let stopped = w.tasks("ag", true).await;
    let bad: Vec<_> = stopped
        .iter()
        .filter(|t| t.task_definition_arn() == Some(td2.as_str()))
        .collect();
    let unhealthy = bad
        .iter()
        .filter(|t| t.stopped_reason() == Some("Task failed container health checks"))
        .count();
    assert!(
        unhealthy >= 3,
        "{unhealthy} tasks failed their health checks"
    );
    // The rest were in flight when the breaker rolled back, and were stopped by it.
    assert!(bad.iter().all(|t| {
        t.stopped_reason().is_some_and(|r| {
            r == "Task failed container health checks"
                || r.starts_with("Scaling activity initiated by")
        })
    }));
    let lines = w
        .logs
        .filter_log_events()
        .log_group_name(LOG_GROUP)
        .filter_pattern("\"failed container health checks\"")
        .send()
        .await
        .expect("filter log events");
    assert!(lines.events().len() >= 3);
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_after_running_are_not_counted_by_the_breaker() {
    let w = World::new().await;
    w.sim.set_image(
        V1,
        activegate_lifecycle::sim::Behaviour {
            mode: Mode::CrashesAfter,
            start_seconds: Some(0.0),
            after_seconds: Some(5.0),
            exit_code: Some(137),
        },
    );
    let td = w.register(V1, false).await;
    w.create_service("ag", &td, 1).await;
    // Wait for more crashes than the breaker's threshold of 3.
    until(w.sim.real(3000.0), || async {
        let crashes = w
            .sim
            .timeline()
            .iter()
            .filter(|e| {
                e.kind == "task-stopping" && e.detail == "Essential container in task exited"
            })
            .count();
        (crashes >= 5).then_some(())
    })
    .await;
    let s = w.service("ag").await;
    let d = &s.deployments()[0];
    assert_eq!(d.failed_tasks(), 0);
    assert_ne!(d.rollout_state().map(|r| r.as_str()), Some("FAILED"));
    assert!(
        w.sim
            .timeline()
            .iter()
            .all(|e| e.kind != "deployment-failed")
    );
    let crashed = w.tasks("ag", true).await;
    let t = crashed.first().expect("a crashed task");
    assert_eq!(
        t.stop_code().map(|c| c.as_str()),
        Some("EssentialContainerExited")
    );
    assert_eq!(t.containers()[0].exit_code(), Some(137));
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_at_half_fails_calls_as_aws_does() {
    let w = World::new().await;
    w.sim.set_fault(
        "DescribeClusters",
        Fault {
            throttle: 0.5,
            ..Fault::default()
        },
    );
    let mut throttled = 0;
    for _ in 0..200 {
        match w.ecs.describe_clusters().clusters(CLUSTER).send().await {
            Ok(_) => {}
            Err(e) => {
                let code = e
                    .as_service_error()
                    .and_then(|s| aws_sdk_ecs::error::ProvideErrorMetadata::code(s));
                assert_eq!(code, Some("ThrottlingException"), "{e:?}");
                throttled += 1;
            }
        }
    }
    // Binomial(200, 0.5): outside 60..=140 has a probability below 1e-8.
    assert!(
        (60..=140).contains(&throttled),
        "{throttled} of 200 throttled"
    );
    assert_eq!(w.sim.calls().get("DescribeClusters"), Some(&200));
    // Other operations are untouched.
    for _ in 0..20 {
        w.ecs
            .list_task_definitions()
            .send()
            .await
            .expect("not throttled");
    }
    w.sim.clear_faults();
    w.ecs
        .describe_clusters()
        .clusters(CLUSTER)
        .send()
        .await
        .expect("after clearing");
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_activegates_behave_as_their_image_says() {
    let w = World::new().await;
    let hang = "example/ag:hang";
    let rogue = "example/ag:rogue";
    w.image(hang, Mode::Hangs);
    w.image(rogue, Mode::WrongCertificate);
    let td_hang = w.register(hang, false).await;
    w.create_service("hang", &td_hang, 1).await;
    let td_rogue = w.register(rogue, false).await;
    w.create_service("rogue", &td_rogue, 1).await;
    w.until_completed("hang").await;
    w.until_completed("rogue").await;
    let client = https_client(w.sim.ca_pem(), Duration::from_millis(300));

    let t = &w.tasks("hang", false).await[0];
    let err = client
        .get(format!("https://{}:9999/rest/health", task_ip(t)))
        .send()
        .await
        .expect_err("a hung ActiveGate never answers");
    assert!(err.is_timeout(), "{err:?}");

    let t = &w.tasks("rogue", false).await[0];
    let err = client
        .get(format!("https://{}:9999/rest/health", task_ip(t)))
        .send()
        .await
        .expect_err("a foreign certificate is refused");
    assert!(err.is_connect(), "{err:?}");
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_fails_after_a_while_is_replaced_by_ecs_health_checks() {
    let w = World::new().await;
    w.sim.set_image(
        V1,
        activegate_lifecycle::sim::Behaviour {
            mode: Mode::FailsAfter,
            start_seconds: Some(20.0),
            after_seconds: Some(300.0),
            exit_code: None,
        },
    );
    let td = w.register(V1, true).await;
    w.create_service("ag", &td, 1).await;
    w.until_completed("ag").await;
    let first = w.tasks("ag", false).await[0]
        .task_arn()
        .expect("arn")
        .to_owned();
    // Healthy at first: the fake ActiveGate answers 200.
    let client = https_client(w.sim.ca_pem(), Duration::from_secs(5));
    let ip = task_ip(&w.tasks("ag", false).await[0]);
    let r = client
        .get(format!("https://{ip}:9999/rest/health"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    // Then it fails, ECS's health check notices and replaces the task.
    let stopped = until(w.sim.real(600.0), || async {
        w.tasks("ag", true)
            .await
            .into_iter()
            .find(|t| t.task_arn() == Some(first.as_str()))
    })
    .await;
    assert_eq!(
        stopped.stopped_reason(),
        Some("Task failed container health checks")
    );
    assert_eq!(
        stopped.health_status().map(|h| h.as_str()),
        Some("UNHEALTHY")
    );
    w.sim.shutdown().await;
}
