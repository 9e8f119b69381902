//! One step of a rolling (ECS-controller) service: the rollbacks StopServiceDeployment
//! asked for, the circuit breaker and its rollback, the scheduler's stops and launches
//! within minimumHealthyPercent/maximumPercent, and completion. Each step is a function
//! over the state and the service; [`reconcile`] runs them in ECS's order.

use super::tasks::{begin_stop, launch};
use super::{
    breaker_threshold, event, record_healthy_count, record_of, started_event, stopped_event,
};
use crate::sim::state::{
    Deployment, DeploymentStatus, Rollback, RolloutState, Service, ServiceRevision, State,
    TaskDefinition, TaskStatus,
};

/// One step of one rolling service that has at least one deployment.
pub(super) fn reconcile(st: &mut State, s: &mut Service, key: &(String, String), now: f64) {
    apply_requested_rollbacks(st, s, key, now);
    count_failed_starts(st, s, now);
    trip_breaker(st, s, now);

    let primary = s.deployments[0].clone();
    let snaps = snapshot(st, s, &primary.id);
    let stopped = stop_tasks(st, s, &primary, &snaps, now);
    start_tasks(st, s, &primary, &snaps, stopped.len(), now);
    complete_if_done(st, s, &primary, &snaps, &stopped, now);

    let healthy_now = snapshot(st, s, &primary.id)
        .iter()
        .filter(|t| t.healthy)
        .count();
    record_healthy_count(st, s, healthy_now, now);
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
        let back_id = make_primary_again(st, s, &revision, now);
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

/// Makes the deployment that runs `revision` PRIMARY again (a new one when none is
/// left), every other one scaled to 0; returns its id.
fn make_primary_again(
    st: &mut State,
    s: &mut Service,
    revision: &ServiceRevision,
    now: f64,
) -> String {
    match s
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
    }
}

/// Breaker bookkeeping: failures of tasks that stopped since the last tick count
/// against their deployment (while it is in progress) and its service deployment.
fn count_failed_starts(st: &mut State, s: &mut Service, now: f64) {
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
}

/// The circuit breaker: once the primary deployment's failed tasks reach the threshold
/// it fails, and rolls back to the last completed deployment if the service asks so.
fn trip_breaker(st: &mut State, s: &mut Service, now: f64) {
    let threshold = breaker_threshold(s.desired_count);
    let primary = s.deployments[0].clone();
    if !(s.settings.breaker_enable
        && primary.rollout_state == RolloutState::InProgress
        && primary.failed_tasks >= threshold)
    {
        return;
    }
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
    event(s, now, n, msg);
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
        Some(td) => breaker_rollback(st, s, &primary, td, now),
        None => {
            if let Some(rec) = record_of(st, &primary.id) {
                if rec.status == DeploymentStatus::RollbackInProgress {
                    rec.status = DeploymentStatus::RollbackFailed;
                    rec.status_reason = "ECS deployment circuit breaker: rollback failed.".into();
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

/// The breaker's rollback to task definition `td` (the last completed one): a new
/// PRIMARY deployment that takes over the tasks already running `td`.
fn breaker_rollback(st: &mut State, s: &mut Service, primary: &Deployment, td: String, now: f64) {
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
            "ECS deployment circuit breaker: rolling back to the last completed deployment.".into(),
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
    event(s, now, st.next_id, msg);
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
            rec.status_reason = "ECS deployment circuit breaker: rollback failed.".into();
            rec.finished_at = Some(now);
        }
        rec.updated_at = now;
    }
}

/// Stops old tasks (unhealthy ones at once, healthy ones while the minimum holds) and
/// surplus primary ones; returns the ids stopped.
fn stop_tasks(
    st: &mut State,
    s: &mut Service,
    primary: &Deployment,
    snaps: &[Snap],
    now: f64,
) -> Vec<String> {
    let primary_live = snaps.iter().filter(|t| t.primary).count();
    let mut healthy_total = snaps.iter().filter(|t| t.healthy).count();
    let desired = s.desired_count as usize;
    let min_healthy = (desired * s.settings.minimum_healthy_percent as usize).div_ceil(100);

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
    stopped_event(st, s, &stopped, now);
    stopped
}

/// Starts primary tasks up to the desired count, within maximumPercent (`stopped` of
/// the live tasks are on their way out).
fn start_tasks(
    st: &mut State,
    s: &mut Service,
    primary: &Deployment,
    snaps: &[Snap],
    stopped: usize,
    now: f64,
) {
    let primary_live = snaps.iter().filter(|t| t.primary).count();
    let desired = s.desired_count as usize;
    let max_total = (desired * s.settings.maximum_percent as usize) / 100;
    let total_live = snaps.len() - stopped;
    let room = max_total.saturating_sub(total_live);
    let missing = (primary.desired_count as usize).saturating_sub(primary_live);
    let mut started = Vec::new();
    if primary.rollout_state != RolloutState::Failed {
        for _ in 0..missing.min(room) {
            let network = s.extra.get("networkConfiguration").cloned();
            if let Some(id) = launch(
                st,
                s,
                &primary.id,
                &primary.task_definition,
                network.as_ref(),
                now,
            ) {
                started.push(id);
            }
        }
    }
    started_event(st, s, &started, now);
}

/// Completion: the primary runs its desired count, healthy, and nothing else is left.
fn complete_if_done(
    st: &mut State,
    s: &mut Service,
    primary: &Deployment,
    snaps: &[Snap],
    stopped: &[String],
    now: f64,
) {
    let primary_healthy = snaps.iter().filter(|t| t.primary && t.healthy).count();
    let others_live = snaps
        .iter()
        .filter(|t| !t.primary && !stopped.contains(&t.id))
        .count();
    if !(primary.rollout_state == RolloutState::InProgress
        && primary_healthy >= primary.desired_count as usize
        && others_live == 0)
    {
        return;
    }
    let d0 = &mut s.deployments[0];
    d0.rollout_state = RolloutState::Completed;
    d0.rollout_state_reason = format!("ECS deployment {} completed.", primary.id);
    d0.updated_at = now;
    s.last_completed = Some(primary.task_definition.clone());
    s.deployments.truncate(1);
    let name = s.name.clone();
    st.next_id += 1;
    event(
        s,
        now,
        st.next_id,
        format!(
            "(service {name}) (deployment {}) deployment completed.",
            primary.id
        ),
    );
    st.next_id += 1;
    event(
        s,
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
