//! What makes the simulator behave like ECS over time: task lifecycles,
//! rolling deployments within minimumHealthyPercent/maximumPercent, container
//! health checks, the deployment circuit breaker and its rollback, service
//! deployments (and their rollback on request), and the task sets of EXTERNAL
//! services.
//!
//! `tick` is level-triggered: it looks at the whole state and moves every
//! object one step toward what its service asks for, so it can run at any rate.
//! Task lifecycles are in `tasks`, rolling services in `rolling`, EXTERNAL ones in
//! `task_sets`; what they share is here.

mod rolling;
mod task_sets;
mod tasks;

use super::state::{Behaviour, Controller, Service, ServiceDeployment, State};

pub use tasks::begin_stop;

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

/// One step of one service's deployments or task sets.
fn reconcile_service(st: &mut State, key: &(String, String), now: f64) {
    let Some(mut s) = st.services.get(key).cloned() else {
        return;
    };
    if !s.active {
        return;
    }
    if s.controller == Controller::External {
        task_sets::reconcile(st, &mut s, now);
        st.services.insert(key.clone(), s);
        return;
    }
    if s.deployments.is_empty() {
        return;
    }
    rolling::reconcile(st, &mut s, key, now);
    st.services.insert(key.clone(), s);
}

/// The circuit breaker's failure threshold: half the desired count, at least 3, at most 200.
pub fn breaker_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(3, 200)
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

/// The service event for the tasks the scheduler stopped in this step, if any.
fn stopped_event(st: &mut State, s: &mut Service, stopped: &[String], now: f64) {
    if !stopped.is_empty() {
        st.next_id += 1;
        let msg = format!(
            "(service {}) has stopped {} running tasks: {}.",
            s.name,
            stopped.len(),
            task_list(stopped)
        );
        event(s, now, st.next_id, msg);
    }
}

/// The service event for the tasks the scheduler started in this step, if any.
fn started_event(st: &mut State, s: &mut Service, started: &[String], now: f64) {
    if !started.is_empty() {
        st.next_id += 1;
        let msg = format!(
            "(service {}) has started {} tasks: {}.",
            s.name,
            started.len(),
            task_list(started)
        );
        event(s, now, st.next_id, msg);
    }
}

/// Records a change of the service's healthy task count (the timeline charts it).
fn record_healthy_count(st: &mut State, s: &mut Service, healthy_now: usize, now: f64) {
    if healthy_now != s.healthy_count {
        st.record(now, "healthy-count", &s.arn, healthy_now.to_string());
        s.healthy_count = healthy_now;
    }
}

fn task_list(ids: &[String]) -> String {
    ids.iter()
        .map(|i| format!("(task {i})"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Moves the whole world one step.
pub fn tick(st: &mut State, now: f64, delays: &Delays) {
    tasks::advance_tasks(st, now, delays);
    let keys: Vec<(String, String)> = st.services.keys().cloned().collect();
    for key in &keys {
        reconcile_service(st, key, now);
    }
    // Forget stopped tasks after a simulated hour, as ECS does.
    st.tasks
        .retain(|_, t| t.stopped_at.is_none_or(|at| now - at < 3600.0));
}
