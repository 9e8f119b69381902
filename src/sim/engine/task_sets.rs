//! One step of an EXTERNAL service: each task set keeps its computed desired count of
//! tasks running (crashed ones are replaced), DRAINING ones stop theirs and disappear
//! once they are all STOPPED.

use super::tasks::{begin_stop, launch};
use super::{record_healthy_count, started_event, stopped_event};
use crate::sim::state::{Service, State, Task, TaskDefinition, TaskSetStatus, TaskStatus};

pub(super) fn reconcile(st: &mut State, s: &mut Service, now: f64) {
    let mut started = Vec::new();
    let mut stopped = Vec::new();
    let mut gone = Vec::new();
    for i in 0..s.task_sets.len() {
        if scale_task_set(st, s, i, now, &mut started, &mut stopped) {
            gone.push(s.task_sets[i].id.clone());
        }
    }
    s.task_sets.retain(|ts| !gone.contains(&ts.id));
    stopped_event(st, s, &stopped, now);
    started_event(st, s, &started, now);
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
    record_healthy_count(st, s, healthy_now, now);
}

/// Stops and launches tasks of task set `i` (adding their ids to `stopped` and
/// `started`) and records its stability; true when it was DRAINING and nothing of it
/// runs any more, so it is gone.
fn scale_task_set(
    st: &mut State,
    s: &mut Service,
    i: usize,
    now: f64,
    started: &mut Vec<String>,
    stopped: &mut Vec<String>,
) -> bool {
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
        let gone = st
            .tasks
            .values()
            .all(|t| !ours(t) || t.status == TaskStatus::Stopped);
        if gone {
            st.record(now, "task-set-deleted", &ts.arn, "");
        }
        return gone;
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
    false
}
