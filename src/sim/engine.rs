//! What makes the simulator behave like ECS over time: task lifecycles,
//! rolling deployments within minimumHealthyPercent/maximumPercent, container
//! health checks, the deployment circuit breaker and its rollback, service
//! deployments (and their rollback on request), and the task sets of EXTERNAL
//! services.
//!
//! `tick` is level-triggered: it looks at the whole state and moves every
//! object one step toward what its service asks for, so it can run at any rate.

use serde_json::Value;

use super::state::{
    Behaviour, Controller, Deployment, DeploymentStatus, Health, HealthStatus, Mode, Rollback,
    RolloutState, Service, ServiceDeployment, State, Task, TaskDefinition, TaskSetStatus,
    TaskStatus,
};

/// Simulated seconds each lifecycle step takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delays {
    /// PROVISIONING → PENDING (ENI attachment).
    pub provisioning: f64,
    /// PENDING → RUNNING (image pull, container start).
    pub pending: f64,
    /// DEACTIVATING → STOPPED.
    pub stopping: f64,
    /// A healthy ActiveGate's start time when its image sets none.
    pub activegate_start: f64,
}

impl Default for Delays {
    fn default() -> Self {
        Self {
            provisioning: 2.0,
            pending: 8.0,
            stopping: 2.0,
            activegate_start: 90.0,
        }
    }
}

/// The behaviour configured for an image: by exact reference, then by digest,
/// then by the reference without its digest; unknown images are healthy.
pub fn behaviour_for(st: &State, image: &str) -> Behaviour {
    let by_digest = image.split_once('@').map(|(_, d)| d);
    let without_digest = image.split_once('@').map(|(r, _)| r);
    st.images
        .get(image)
        .or_else(|| by_digest.and_then(|d| st.images.get(d)))
        .or_else(|| without_digest.and_then(|r| st.images.get(r)))
        .copied()
        .unwrap_or_else(Behaviour::healthy)
}

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
fn launch(
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
                super::state::LogGroup {
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
fn advance_tasks(st: &mut State, now: f64, d: &Delays) {
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

fn event(service: &mut Service, now: f64, id: u64, message: String) {
    service
        .events
        .insert(0, (format!("{id:08x}-sim-event"), now, message));
    service.events.truncate(100);
}

/// The service deployment whose target (or rollback) runs as deployment `id`.
fn record_of<'a>(st: &'a mut State, id: &str) -> Option<&'a mut ServiceDeployment> {
    st.service_deployments
        .iter_mut()
        .rev()
        .find(|d| d.deployment_id == id || d.rollback_deployment.as_deref() == Some(id))
}

/// Performs the rollbacks StopServiceDeployment requested for this service: the
/// source revision's deployment becomes PRIMARY again (keeping its tasks), the
/// stopped deployment is drained by the scheduler.
fn apply_requested_rollbacks(st: &mut State, s: &mut Service, key: &(String, String), now: f64) {
    let requested: Vec<usize> = st
        .service_deployments
        .iter()
        .enumerate()
        .filter(|(_, d)| d.service == *key && d.status == DeploymentStatus::RollbackRequested)
        .map(|(i, _)| i)
        .collect();
    for i in requested {
        let record = st.service_deployments[i].clone();
        let Some(rollback) = record.rollback.clone() else {
            continue;
        };
        let Some(revision) = st.service_revisions.get(&rollback.revision).cloned() else {
            continue;
        };
        let back_id = match s
            .deployments
            .iter()
            .position(|d| d.revision == revision.arn)
        {
            Some(at) => {
                let mut d = s.deployments.remove(at);
                d.primary = true;
                d.desired_count = s.desired_count;
                d.rollout_state = RolloutState::InProgress;
                d.rollout_state_reason = format!("ECS deployment {} in progress.", d.id);
                d.updated_at = now;
                for other in &mut s.deployments {
                    other.primary = false;
                    other.desired_count = 0;
                }
                let id = d.id.clone();
                s.deployments.insert(0, d);
                id
            }
            None => {
                let id = st.new_ecs_svc_id();
                for other in &mut s.deployments {
                    other.primary = false;
                    other.desired_count = 0;
                }
                s.deployments.insert(
                    0,
                    Deployment {
                        id: id.clone(),
                        primary: true,
                        task_definition: revision.task_definition.clone(),
                        revision: revision.arn.clone(),
                        desired_count: s.desired_count,
                        failed_tasks: 0,
                        rollout_state: RolloutState::InProgress,
                        rollout_state_reason: format!("ECS deployment {id} in progress."),
                        created_at: now,
                        updated_at: now,
                    },
                );
                id
            }
        };
        if let Some(stopped) = s
            .deployments
            .iter_mut()
            .find(|d| d.id == record.deployment_id)
        {
            stopped.rollout_state = RolloutState::Failed;
            stopped.rollout_state_reason = format!(
                "ECS deployment {} stopped: rolling back to deployment {back_id}.",
                stopped.id
            );
            stopped.updated_at = now;
        }
        s.task_definition.clone_from(&revision.task_definition);
        let rec = &mut st.service_deployments[i];
        rec.status = DeploymentStatus::RollbackInProgress;
        rec.status_reason = "Service deployment rollback in progress.".into();
        rec.rollback_deployment = Some(back_id.clone());
        rec.updated_at = now;
        st.next_id += 1;
        let msg = format!(
            "(service {}) (deployment {}) deployment stopped by request; rolling back.",
            s.name, record.deployment_id
        );
        event(s, now, st.next_id, msg);
        st.next_id += 1;
        let msg = format!("(service {}) rolling back to deployment {back_id}.", s.name);
        event(s, now, st.next_id, msg);
        st.record(
            now,
            "deployment-rollback",
            &s.arn,
            revision.task_definition.clone(),
        );
        // The service's task definition changed back, as an UpdateService would record it.
        st.record(
            now,
            "service-updated",
            &s.arn,
            format!(
                "task definition {}, desired {}",
                revision.task_definition, s.desired_count
            ),
        );
    }
}

/// One step of one service's deployments.
fn reconcile_service(st: &mut State, key: &(String, String), now: f64) {
    let Some(mut s) = st.services.get(key).cloned() else {
        return;
    };
    if !s.active {
        return;
    }
    if s.controller == Controller::External {
        reconcile_task_sets(st, &mut s, now);
        st.services.insert(key.clone(), s);
        return;
    }
    if s.deployments.is_empty() {
        return;
    }
    apply_requested_rollbacks(st, &mut s, key, now);

    // Breaker bookkeeping: failures of tasks that stopped since the last tick.
    for t in st
        .tasks
        .values_mut()
        .filter(|t| t.failed_to_start && t.status == TaskStatus::Stopped)
    {
        if let Some((svc, dep)) = &t.service
            && *svc == s.name
            && t.cluster_arn == s.cluster_arn
        {
            if let Some(d) = s.deployments.iter_mut().find(|d| d.id == *dep)
                && d.rollout_state == RolloutState::InProgress
            {
                d.failed_tasks += 1;
                d.updated_at = now;
            }
            t.failed_to_start = false;
        }
    }

    for d in &s.deployments {
        if let Some(rec) = st
            .service_deployments
            .iter_mut()
            .rev()
            .find(|r| r.deployment_id == d.id)
        {
            rec.failed_tasks = d.failed_tasks;
        }
    }

    let threshold = breaker_threshold(s.desired_count);
    let primary = s.deployments[0].clone();
    if s.settings.breaker_enable
        && primary.rollout_state == RolloutState::InProgress
        && primary.failed_tasks >= threshold
    {
        st.next_id += 1;
        let n = st.next_id;
        let d0 = &mut s.deployments[0];
        d0.rollout_state = RolloutState::Failed;
        d0.rollout_state_reason = "ECS deployment circuit breaker: tasks failed to start.".into();
        d0.updated_at = now;
        let msg = format!(
            "(service {}) (deployment {}) deployment failed: tasks failed to start.",
            s.name, primary.id
        );
        event(&mut s, now, n, msg);
        st.record(
            now,
            "deployment-failed",
            &s.arn,
            format!("{} after {} failed tasks", primary.id, primary.failed_tasks),
        );
        let rollback_to = s
            .last_completed
            .clone()
            .filter(|_| s.settings.breaker_rollback);
        match rollback_to {
            Some(td) => {
                let rollback_id = st.new_ecs_svc_id();
                // The revision rolled back to: the one the last completed deployment ran.
                let revision = s
                    .deployments
                    .iter()
                    .find(|d| d.task_definition == td)
                    .map(|d| d.revision.clone())
                    .or_else(|| {
                        st.service_revisions
                            .values()
                            .filter(|r| r.service_arn == s.arn && r.task_definition == td)
                            .max_by(|a, b| a.created_at.total_cmp(&b.created_at))
                            .map(|r| r.arn.clone())
                    })
                    .unwrap_or_default();
                let rollback = Deployment {
                    id: rollback_id.clone(),
                    primary: true,
                    task_definition: td.clone(),
                    revision: revision.clone(),
                    desired_count: s.desired_count,
                    failed_tasks: 0,
                    rollout_state: RolloutState::InProgress,
                    rollout_state_reason:
                        "ECS deployment circuit breaker: rolling back to the last completed deployment."
                            .into(),
                    created_at: now,
                    updated_at: now,
                };
                for d in &mut s.deployments {
                    d.primary = false;
                    d.desired_count = 0;
                }
                // Tasks already running the rollback revision belong to it.
                let old_ids: Vec<String> = s
                    .deployments
                    .iter()
                    .filter(|d| d.task_definition == td)
                    .map(|d| d.id.clone())
                    .collect();
                for t in st.tasks.values_mut() {
                    if let Some((svc, dep)) = &mut t.service
                        && *svc == s.name
                        && old_ids.contains(dep)
                    {
                        dep.clone_from(&rollback.id);
                    }
                }
                s.deployments.retain(|d| d.task_definition != td);
                let msg = format!(
                    "(service {}) rolling back to deployment {}.",
                    s.name, rollback.id
                );
                s.task_definition = td;
                s.deployments.insert(0, rollback);
                st.next_id += 1;
                event(&mut s, now, st.next_id, msg);
                st.record(
                    now,
                    "deployment-rollback",
                    &s.arn,
                    s.task_definition.clone(),
                );
                if let Some(rec) = record_of(st, &primary.id) {
                    if rec.status == DeploymentStatus::InProgress {
                        rec.status = DeploymentStatus::RollbackInProgress;
                        rec.status_reason =
                            "ECS deployment circuit breaker: rolling back to the last completed service revision."
                                .into();
                        rec.rollback = Some(Rollback {
                            reason: "Circuit breaker triggered rollback.".into(),
                            started_at: now,
                            revision,
                        });
                        rec.rollback_deployment = Some(rollback_id);
                    } else if rec.status == DeploymentStatus::RollbackInProgress {
                        // The rollback itself failed.
                        rec.status = DeploymentStatus::RollbackFailed;
                        rec.status_reason =
                            "ECS deployment circuit breaker: rollback failed.".into();
                        rec.finished_at = Some(now);
                    }
                    rec.updated_at = now;
                }
            }
            None => {
                if let Some(rec) = record_of(st, &primary.id) {
                    if rec.status == DeploymentStatus::RollbackInProgress {
                        rec.status = DeploymentStatus::RollbackFailed;
                        rec.status_reason =
                            "ECS deployment circuit breaker: rollback failed.".into();
                    } else {
                        rec.status = DeploymentStatus::Stopped;
                        rec.status_reason =
                            "ECS deployment circuit breaker: tasks failed to start.".into();
                        rec.stopped_at = Some(now);
                    }
                    rec.finished_at = Some(now);
                    rec.updated_at = now;
                }
            }
        }
    }

    let primary = s.deployments[0].clone();
    let snaps = snapshot(st, &s, &primary.id);
    let primary_live = snaps.iter().filter(|t| t.primary).count();
    let primary_healthy = snaps.iter().filter(|t| t.primary && t.healthy).count();
    let mut healthy_total = snaps.iter().filter(|t| t.healthy).count();
    let desired = s.desired_count as usize;
    let max_total = (desired * s.settings.maximum_percent as usize) / 100;
    let min_healthy = (desired * s.settings.minimum_healthy_percent as usize).div_ceil(100);

    // Stop old tasks: unhealthy ones at once, healthy ones while the minimum holds.
    let mut stopped = Vec::new();
    let mut old: Vec<&Snap> = snaps.iter().filter(|t| !t.primary).collect();
    old.sort_by_key(|t| t.healthy);
    for t in old {
        if !t.healthy || healthy_total > min_healthy {
            if t.healthy {
                healthy_total -= 1;
            }
            stopped.push(t.id.clone());
        }
    }
    // Surplus primary tasks when the desired count went down.
    let mut surplus = primary_live.saturating_sub(primary.desired_count as usize);
    for t in snaps.iter().filter(|t| t.primary) {
        if surplus == 0 {
            break;
        }
        if !t.healthy || healthy_total > min_healthy {
            if t.healthy {
                healthy_total -= 1;
            }
            stopped.push(t.id.clone());
            surplus -= 1;
        }
    }
    let reason = format!("Scaling activity initiated by (deployment {})", primary.id);
    for id in &stopped {
        begin_stop(st, id, now, &reason, "ServiceSchedulerInitiated", None);
    }
    if !stopped.is_empty() {
        st.next_id += 1;
        let msg = format!(
            "(service {}) has stopped {} running tasks: {}.",
            s.name,
            stopped.len(),
            task_list(&stopped)
        );
        event(&mut s, now, st.next_id, msg);
    }

    // Start primary tasks up to the desired count, within maximumPercent.
    let total_live = snaps.len() - stopped.len();
    let room = max_total.saturating_sub(total_live);
    let missing = (primary.desired_count as usize).saturating_sub(primary_live);
    let mut started = Vec::new();
    if primary.rollout_state != RolloutState::Failed {
        for _ in 0..missing.min(room) {
            let network = s.extra.get("networkConfiguration").cloned();
            if let Some(id) = launch(
                st,
                &s,
                &primary.id,
                &primary.task_definition,
                network.as_ref(),
                now,
            ) {
                started.push(id);
            }
        }
    }
    if !started.is_empty() {
        st.next_id += 1;
        let msg = format!(
            "(service {}) has started {} tasks: {}.",
            s.name,
            started.len(),
            task_list(&started)
        );
        event(&mut s, now, st.next_id, msg);
    }

    // Completion: the primary runs its desired count, healthy, and nothing else is left.
    let others_live = snaps
        .iter()
        .filter(|t| !t.primary && !stopped.contains(&t.id))
        .count();
    if primary.rollout_state == RolloutState::InProgress
        && primary_healthy >= primary.desired_count as usize
        && others_live == 0
    {
        let d0 = &mut s.deployments[0];
        d0.rollout_state = RolloutState::Completed;
        d0.rollout_state_reason = format!("ECS deployment {} completed.", primary.id);
        d0.updated_at = now;
        s.last_completed = Some(primary.task_definition.clone());
        s.deployments.truncate(1);
        let name = s.name.clone();
        st.next_id += 1;
        event(
            &mut s,
            now,
            st.next_id,
            format!(
                "(service {name}) (deployment {}) deployment completed.",
                primary.id
            ),
        );
        st.next_id += 1;
        event(
            &mut s,
            now,
            st.next_id,
            format!("(service {name}) has reached a steady state."),
        );
        st.record(
            now,
            "deployment-completed",
            &s.arn,
            primary.task_definition.clone(),
        );
        if let Some(rec) = record_of(st, &primary.id)
            && !rec.status.finished()
        {
            if rec.rollback_deployment.as_deref() == Some(primary.id.as_str()) {
                rec.status = DeploymentStatus::RollbackSuccessful;
                rec.status_reason = "Service deployment rolled back successfully.".into();
            } else {
                rec.status = DeploymentStatus::Successful;
                rec.status_reason = "Service deployment completed successfully.".into();
            }
            rec.finished_at = Some(now);
            rec.updated_at = now;
        }
    }

    let healthy_now = snapshot(st, &s, &primary.id)
        .iter()
        .filter(|t| t.healthy)
        .count();
    if healthy_now != s.healthy_count {
        st.record(now, "healthy-count", &s.arn, healthy_now.to_string());
        s.healthy_count = healthy_now;
    }
    st.services.insert(key.clone(), s);
}

/// The circuit breaker's failure threshold: half the desired count, at least 3, at most 200.
pub fn breaker_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(3, 200)
}

/// One step of an EXTERNAL service: each task set keeps its computed desired
/// count of tasks running (crashed ones are replaced), DRAINING ones stop
/// theirs and disappear once they are all STOPPED.
fn reconcile_task_sets(st: &mut State, s: &mut Service, now: f64) {
    let mut started = Vec::new();
    let mut stopped = Vec::new();
    let mut gone = Vec::new();
    for i in 0..s.task_sets.len() {
        let ts = s.task_sets[i].clone();
        let (cluster_arn, name) = (s.cluster_arn.clone(), s.name.clone());
        let checked = st
            .find_task_definition(&ts.task_definition)
            .and_then(TaskDefinition::health_check)
            .is_some();
        let ours = |t: &Task| {
            t.cluster_arn == cluster_arn
                && t.service
                    .as_ref()
                    .is_some_and(|(n, o)| *n == name && *o == ts.id)
        };
        // Live tasks, the ones to stop first (not yet running, then unhealthy) at the front.
        let mut live: Vec<(String, bool, bool)> = st
            .tasks
            .values()
            .filter(|t| t.desired_running && ours(t))
            .map(|t| {
                (
                    t.id.clone(),
                    t.status == TaskStatus::Running,
                    t.is_healthy(checked),
                )
            })
            .collect();
        live.sort_by_key(|(_, running, healthy)| (*running, *healthy));
        let wanted = if ts.status == TaskSetStatus::Draining {
            0
        } else {
            ts.computed_desired(s.desired_count) as usize
        };
        let reason = format!("Scaling activity initiated by (deployment {})", ts.id);
        let surplus = live.len().saturating_sub(wanted);
        for (id, ..) in live.drain(..surplus) {
            begin_stop(st, &id, now, &reason, "ServiceSchedulerInitiated", None);
            stopped.push(id);
        }
        for _ in live.len()..wanted {
            if let Some(id) = launch(st, s, &ts.id, &ts.task_definition, ts.network.as_ref(), now) {
                started.push(id);
            }
        }
        if ts.status == TaskSetStatus::Draining {
            if st
                .tasks
                .values()
                .all(|t| !ours(t) || t.status == TaskStatus::Stopped)
            {
                gone.push(ts.id.clone());
                st.record(now, "task-set-deleted", &ts.arn, "");
            }
            continue;
        }
        let running = live.iter().filter(|(_, r, _)| *r).count();
        let healthy = live.iter().filter(|(_, _, h)| *h).count();
        let steady = live.len() == wanted && running == wanted && healthy == wanted;
        if steady != ts.steady {
            s.task_sets[i].steady = steady;
            s.task_sets[i].stability_at = now;
            st.record(
                now,
                "task-set-stability",
                &ts.arn,
                if steady {
                    "STEADY_STATE"
                } else {
                    "STABILIZING"
                },
            );
        }
    }
    s.task_sets.retain(|ts| !gone.contains(&ts.id));
    if !stopped.is_empty() {
        st.next_id += 1;
        let msg = format!(
            "(service {}) has stopped {} running tasks: {}.",
            s.name,
            stopped.len(),
            task_list(&stopped)
        );
        event(s, now, st.next_id, msg);
    }
    if !started.is_empty() {
        st.next_id += 1;
        let msg = format!(
            "(service {}) has started {} tasks: {}.",
            s.name,
            started.len(),
            task_list(&started)
        );
        event(s, now, st.next_id, msg);
    }
    // Healthy tasks over all task sets, as the demo charts them.
    let healthy_now = st
        .tasks
        .values()
        .filter(|t| t.cluster_arn == s.cluster_arn)
        .filter(|t| t.service.as_ref().is_some_and(|(n, _)| *n == s.name))
        .filter(|t| {
            t.is_healthy(
                st.find_task_definition(&t.task_definition)
                    .and_then(TaskDefinition::health_check)
                    .is_some(),
            )
        })
        .count();
    if healthy_now != s.healthy_count {
        st.record(now, "healthy-count", &s.arn, healthy_now.to_string());
        s.healthy_count = healthy_now;
    }
}

/// A live task of a service, as the scheduler sees it.
struct Snap {
    id: String,
    primary: bool,
    healthy: bool,
}

fn snapshot(st: &State, s: &Service, primary: &str) -> Vec<Snap> {
    st.tasks
        .values()
        .filter(|t| t.desired_running && t.cluster_arn == s.cluster_arn)
        .filter_map(|t| {
            let (svc, dep) = t.service.as_ref()?;
            (*svc == s.name).then(|| Snap {
                id: t.id.clone(),
                primary: dep == primary,
                healthy: t.is_healthy(
                    st.find_task_definition(&t.task_definition)
                        .and_then(TaskDefinition::health_check)
                        .is_some(),
                ),
            })
        })
        .collect()
}

fn task_list(ids: &[String]) -> String {
    ids.iter()
        .map(|i| format!("(task {i})"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Moves the whole world one step.
pub fn tick(st: &mut State, now: f64, delays: &Delays) {
    advance_tasks(st, now, delays);
    let keys: Vec<(String, String)> = st.services.keys().cloned().collect();
    for key in &keys {
        reconcile_service(st, key, now);
    }
    // Forget stopped tasks after a simulated hour, as ECS does.
    st.tasks
        .retain(|_, t| t.stopped_at.is_none_or(|at| now - at < 3600.0));
}
