//! Task lifecycles: launching a task of a service, PROVISIONING → PENDING → RUNNING →
//! (DEACTIVATING →) STOPPED, container health checks, and what each image's behaviour
//! does to a running task.

use serde_json::Value;

use super::{Delays, behaviour_for};
use crate::sim::state::{
    Health, HealthStatus, Mode, Service, State, Task, TaskDefinition, TaskStatus,
};

/// Starts stopping a task: DEACTIVATING if it ran, STOPPED at once otherwise.
/// The task writes why into its log before it stops.
pub fn begin_stop(
    st: &mut State,
    id: &str,
    now: f64,
    reason: &str,
    code: &'static str,
    exit_code: Option<i32>,
) {
    let Some(t) = st.tasks.get_mut(id) else {
        return;
    };
    if !t.desired_running {
        return;
    }
    t.desired_running = false;
    t.stopping_at = Some(now);
    t.stopped_reason = Some(reason.to_owned());
    t.stop_code = Some(code);
    t.exit_code = exit_code;
    let arn = t.arn.clone();
    if t.status == TaskStatus::Running {
        t.status = TaskStatus::Deactivating;
    } else {
        t.status = TaskStatus::Stopped;
        t.stopped_at = Some(now);
    }
    t.since = now;
    let message = match exit_code {
        Some(c) => format!("activegate: stopping: {reason} (exit code {c})"),
        None => format!("activegate: stopping: {reason}"),
    };
    st.write_log(id, None, (now * 1000.0) as i64, &message);
    st.record(now, "task-stopping", &arn, reason);
}

/// The first subnet of an awsvpc network configuration.
fn subnet_of(network: Option<&Value>) -> String {
    network
        .and_then(|n| n.pointer("/awsvpcConfiguration/subnets/0"))
        .and_then(Value::as_str)
        .unwrap_or("subnet-0123456789abcdef0")
        .to_owned()
}

/// Launches one task of `service` for its deployment or task set `owner`
/// (which becomes the task's `startedBy`).
pub(super) fn launch(
    st: &mut State,
    service: &Service,
    owner: &str,
    task_definition: &str,
    network: Option<&Value>,
    now: f64,
) -> Option<String> {
    let td = st.find_task_definition(task_definition)?.clone();
    let id = st.new_id();
    let ip = st.new_ip();
    let cluster = service
        .cluster_arn
        .rsplit('/')
        .next()
        .unwrap_or("default")
        .to_owned();
    let image = td.image();
    let task = Task {
        arn: st.arn(&format!("task/{cluster}/{id}")),
        id: id.clone(),
        cluster_arn: service.cluster_arn.clone(),
        service: Some((service.name.clone(), owner.to_owned())),
        task_definition: td.arn.clone(),
        behaviour: behaviour_for(st, &image),
        image,
        ip,
        port: td.port(),
        status: TaskStatus::Provisioning,
        desired_running: true,
        health: HealthStatus::Unknown,
        failing_since: None,
        created_at: now,
        pull_started_at: None,
        pull_stopped_at: None,
        started_at: None,
        stopping_at: None,
        stopped_at: None,
        since: now,
        stopped_reason: None,
        stop_code: None,
        exit_code: None,
        failed_to_start: false,
        reported_up: false,
        tags: Vec::new(),
        cpu: td
            .body
            .get("cpu")
            .and_then(Value::as_str)
            .unwrap_or("256")
            .to_owned(),
        memory: td
            .body
            .get("memory")
            .and_then(Value::as_str)
            .unwrap_or("512")
            .to_owned(),
        subnet: subnet_of(network),
    };
    st.record(
        now,
        "task-launched",
        &task.arn,
        format!("{} at {ip}", task.image),
    );
    st.tasks.insert(id.clone(), task);
    Some(id)
}

/// Why a task cannot start, checked when it leaves PENDING.
fn start_failure(st: &mut State, task: &Task, td: &TaskDefinition, now_ms: i64) -> Option<String> {
    if task.behaviour.mode == Mode::PullFails {
        return Some(format!(
            "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref {}: not found",
            task.image
        ));
    }
    for c in td.containers() {
        let Some((group, _, create)) = TaskDefinition::awslogs(c) else {
            continue;
        };
        if st.log_groups.contains_key(&group) {
            continue;
        }
        if create {
            st.log_groups.insert(
                group,
                crate::sim::state::LogGroup {
                    created: now_ms,
                    ..Default::default()
                },
            );
        } else {
            return Some(format!(
                "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist. : exit status 1 (group {group})"
            ));
        }
    }
    None
}

/// Moves every task one step along its lifecycle.
pub(super) fn advance_tasks(st: &mut State, now: f64, d: &Delays) {
    let ids: Vec<String> = st
        .tasks
        .iter()
        .filter(|(_, t)| t.status != TaskStatus::Stopped)
        .map(|(id, _)| id.clone())
        .collect();
    let now_ms = (now * 1000.0) as i64;
    for id in ids {
        let Some(task) = st.tasks.get(&id).cloned() else {
            continue;
        };
        let elapsed = now - task.since;
        match task.status {
            TaskStatus::Provisioning if elapsed >= d.provisioning => {
                let t = st.tasks.get_mut(&id).expect("exists");
                t.status = TaskStatus::Pending;
                t.pull_started_at = Some(now);
                t.since = now;
            }
            TaskStatus::Pending if elapsed >= d.pending => {
                let Some(td) = st.find_task_definition(&task.task_definition).cloned() else {
                    continue;
                };
                if let Some(reason) = start_failure(st, &task, &td, now_ms) {
                    let t = st.tasks.get_mut(&id).expect("exists");
                    t.failed_to_start = true;
                    begin_stop(st, &id, now, &reason, "TaskFailedToStart", None);
                    continue;
                }
                let t = st.tasks.get_mut(&id).expect("exists");
                t.status = TaskStatus::Running;
                t.pull_stopped_at = Some(now);
                t.started_at = Some(now);
                t.since = now;
                let arn = t.arn.clone();
                for c in td.containers() {
                    let essential = c.get("essential").and_then(Value::as_bool).unwrap_or(true);
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    if !essential {
                        st.write_log(&id, Some(name), now_ms, "tokens written");
                    }
                }
                st.write_log(
                    &id,
                    None,
                    now_ms,
                    &format!("activegate: starting {} on port {}", task.image, task.port),
                );
                st.record(now, "task-running", &arn, task.ip.to_string());
            }
            TaskStatus::Running if task.desired_running => running_step(st, &task, now, d),
            TaskStatus::Deactivating if elapsed >= d.stopping => {
                let t = st.tasks.get_mut(&id).expect("exists");
                t.status = TaskStatus::Stopped;
                t.stopped_at = Some(now);
                t.since = now;
                let arn = t.arn.clone();
                st.record(
                    now,
                    "task-stopped",
                    &arn,
                    task.stopped_reason.clone().unwrap_or_default(),
                );
            }
            _ => {}
        }
    }
}

/// A RUNNING task: crashes, and the container health check.
fn running_step(st: &mut State, task: &Task, now: f64, d: &Delays) {
    let age = now - task.started_at.unwrap_or(now);
    let b = task.behaviour;
    if b.mode == Mode::CrashesAfter && age >= b.after_seconds.unwrap_or(0.0) {
        let code = b.exit_code.unwrap_or(1);
        st.write_log(
            &task.id,
            None,
            (now * 1000.0) as i64,
            &format!("activegate: fatal: simulated crash, exiting with code {code}"),
        );
        begin_stop(
            st,
            &task.id,
            now,
            "Essential container in task exited",
            "EssentialContainerExited",
            Some(code),
        );
        return;
    }
    let hc = st
        .find_task_definition(&task.task_definition)
        .and_then(TaskDefinition::health_check);
    let health = b.health(age, d.activegate_start);
    // ECS runs the check inside the container with curl -k: a foreign certificate does not matter.
    let up = health == Health::Up;
    let was = task.health;
    let (interval, retries, start_period) = hc.unwrap_or((30.0, 3.0, 0.0));
    let t = st.tasks.get_mut(&task.id).expect("exists");
    if up {
        t.failing_since = None;
        // Docker runs the first check one interval after the container starts.
        if hc.is_some() && age >= interval {
            t.health = HealthStatus::Healthy;
        }
        if !t.reported_up {
            t.reported_up = true;
            let id = task.id.clone();
            st.write_log(
                &id,
                None,
                (now * 1000.0) as i64,
                "activegate: state RUNNING",
            );
        }
        return;
    }
    let Some(_) = hc else { return };
    if age < start_period && was != HealthStatus::Healthy {
        return;
    }
    let since = *t.failing_since.get_or_insert(now);
    if now - since >= interval * retries {
        t.health = HealthStatus::Unhealthy;
        t.failed_to_start = true;
        let id = task.id.clone();
        begin_stop(
            st,
            &id,
            now,
            "Task failed container health checks",
            "ServiceSchedulerInitiated",
            None,
        );
    }
}
