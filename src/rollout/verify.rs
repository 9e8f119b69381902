//! Proving a revision healthy from the outside: every RUNNING task of it
//! answers its HTTPS probe `healthy_after` times in a row, ECS calls the
//! deployment COMPLETED, and then nothing fails for the bake time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::ecs::{Aws, EcsError, TaskState};
use crate::health::Prober;

/// How a revision is verified.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    pub interval: Duration,
    pub grace: Duration,
    pub healthy_after: u32,
    pub unhealthy_after: u32,
    pub bake: Duration,
    pub deadline: Duration,
}

/// Where verification stands, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub revision: String,
    pub elapsed: Duration,
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
    pub baking: bool,
    pub probes_ok: u64,
    pub probes_failed: u64,
}

/// Why a revision was not verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reasons: Vec<String>,
    /// Tasks whose logs tell more.
    pub tasks: Vec<String>,
}

#[derive(Debug)]
pub enum VerifyError {
    Failed(Failure),
    Aws(EcsError),
}

impl From<EcsError> for VerifyError {
    fn from(e: EcsError) -> Self {
        Self::Aws(e)
    }
}

#[derive(Debug)]
struct Seen {
    first: Instant,
    ok: u32,
    failed: u32,
    last_error: Option<String>,
}

fn fail(reasons: Vec<String>, tasks: Vec<String>) -> VerifyError {
    VerifyError::Failed(Failure { reasons, tasks })
}

fn describe_stop(t: &TaskState) -> String {
    let codes: Vec<String> = t
        .exit_codes
        .iter()
        .map(|(c, code)| format!("{c} exited {code}"))
        .collect();
    format!(
        "task {} stopped ({}): {}{}",
        t.id(),
        if t.started_at.is_some() {
            "after RUNNING"
        } else {
            "before RUNNING"
        },
        t.stopped_reason.as_deref().unwrap_or("no reason given"),
        if codes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", codes.join(", "))
        }
    )
}

/// ECS replacing a task for a newer deployment or a scale-in is no failure of
/// the task (it happens to older tasks of the same revision during a roll-back).
fn replaced_by_ecs(t: &TaskState) -> bool {
    t.stopped_reason
        .as_deref()
        .is_some_and(|r| r.starts_with("Scaling activity initiated by"))
}

/// What is being verified: the service's current ECS deployment of a revision (rolling), or
/// one task set of an EXTERNAL service (blue/green), which may serve beside another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Deployment,
    TaskSet(&'a str),
}

/// The revision of a service being verified, and in which scope.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub revision: &'a str,
    pub scope: Scope<'a>,
}

/// Verifies that `revision` runs healthy on the service.
pub async fn verify(
    aws: &Aws,
    prober: &Prober,
    subject: Subject<'_>,
    policy: &VerifyPolicy,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<(), VerifyError> {
    let Subject {
        cluster,
        service,
        revision,
        scope,
    } = subject;
    let started = Instant::now();
    let stopped_before: BTreeSet<String> = aws
        .tasks(cluster, service, true)
        .await?
        .into_iter()
        .filter(|t| t.task_definition == revision)
        .map(|t| t.arn)
        .collect();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut bake_until: Option<Instant> = None;
    let (mut probes_ok, mut probes_failed) = (0u64, 0u64);
    loop {
        let Some(svc) = aws.describe_service(cluster, service).await? else {
            return Err(fail(
                vec![format!("service {service} no longer exists")],
                vec![],
            ));
        };
        let deployment = svc
            .deployments
            .iter()
            .find(|d| d.task_definition == revision);
        let task_set = match scope {
            Scope::Deployment => None,
            Scope::TaskSet(id) => match svc.task_sets.iter().find(|t| t.id == id) {
                Some(t) if t.status != "DRAINING" => Some(t),
                _ => {
                    return Err(fail(
                        vec![format!(
                            "task set {id} of {revision} was deleted while it was verified"
                        )],
                        vec![],
                    ));
                }
            },
        };
        if let Some(d) = deployment.filter(|d| d.rollout_state == "FAILED") {
            return Err(fail(
                vec![format!(
                    "ECS marked deployment {} FAILED: {}",
                    d.id, d.rollout_state_reason
                )],
                vec![],
            ));
        }
        if task_set.is_none() && svc.task_definition != revision {
            return Err(fail(
                vec![format!(
                    "the service now runs {} instead (ECS's circuit breaker rolled it back, or someone changed it)",
                    svc.task_definition
                )],
                vec![],
            ));
        }
        let stopped: Vec<TaskState> = aws
            .tasks(cluster, service, true)
            .await?
            .into_iter()
            .filter(|t| {
                t.task_definition == revision
                    && !stopped_before.contains(&t.arn)
                    && !replaced_by_ecs(t)
            })
            .collect();
        if !stopped.is_empty() {
            return Err(fail(
                stopped.iter().map(describe_stop).collect(),
                stopped.iter().map(|t| t.id().to_owned()).collect(),
            ));
        }
        let running: Vec<TaskState> = aws
            .tasks(cluster, service, false)
            .await?
            .into_iter()
            .filter(|t| t.task_definition == revision)
            .collect();
        let now = Instant::now();
        let mut probes = JoinSet::new();
        for t in running.iter().filter(|t| t.last_status == "RUNNING") {
            let Some(ip) = t.ip.clone() else { continue };
            seen.entry(t.arn.clone()).or_insert(Seen {
                first: now,
                ok: 0,
                failed: 0,
                last_error: None,
            });
            let prober = prober.clone();
            let arn = t.arn.clone();
            probes.spawn(async move { (arn, prober.probe(&ip).await) });
        }
        while let Some(joined) = probes.join_next().await {
            let Ok((arn, probe)) = joined else { continue };
            let Some(s) = seen.get_mut(&arn) else {
                continue;
            };
            match probe.result {
                Ok(()) => {
                    probes_ok += 1;
                    s.ok += 1;
                    s.failed = 0;
                }
                Err(e) => {
                    probes_failed += 1;
                    s.failed += 1;
                    s.ok = 0;
                    s.last_error = Some(e.to_string());
                }
            }
        }
        let running_now: Vec<&TaskState> = running
            .iter()
            .filter(|t| t.last_status == "RUNNING")
            .collect();
        let unhealthy: Vec<String> = running_now
            .iter()
            .filter_map(|t| {
                let s = seen.get(&t.arn)?;
                (s.failed >= policy.unhealthy_after && now.duration_since(s.first) >= policy.grace)
                    .then(|| {
                        format!(
                            "task {} failed {} probes in a row: {}",
                            t.id(),
                            s.failed,
                            s.last_error.as_deref().unwrap_or("?")
                        )
                    })
            })
            .collect();
        if !unhealthy.is_empty() {
            let ids = running_now
                .iter()
                .filter(|t| {
                    seen.get(&t.arn)
                        .is_some_and(|s| s.failed >= policy.unhealthy_after)
                })
                .map(|t| t.id().to_owned())
                .collect();
            return Err(fail(unhealthy, ids));
        }
        let healthy = running_now
            .iter()
            .filter(|t| {
                seen.get(&t.arn)
                    .is_some_and(|s| s.ok >= policy.healthy_after)
            })
            .count() as u32;
        let (ready, desired) = match task_set {
            // A task set is ready when it runs its share of the service, all of it healthy;
            // other task sets (blue) may serve beside it.
            Some(t) => (
                t.running_count >= t.computed_desired_count
                    && healthy >= t.computed_desired_count
                    && healthy as usize == running_now.len(),
                t.computed_desired_count,
            ),
            None => (
                deployment.is_some_and(|d| d.rollout_state == "COMPLETED")
                    && svc.deployments.len() == 1
                    && healthy >= svc.desired_count
                    && healthy as usize == running_now.len(),
                svc.desired_count,
            ),
        };
        if ready && bake_until.is_none() {
            bake_until = Some(now + policy.bake);
        }
        progress(&Progress {
            revision: revision.to_owned(),
            elapsed: now.duration_since(started),
            desired,
            running: running_now.len() as u32,
            healthy,
            baking: bake_until.is_some(),
            probes_ok,
            probes_failed,
        });
        if let Some(until) = bake_until
            && now >= until
            && ready
        {
            return Ok(());
        }
        if now.duration_since(started) >= policy.deadline {
            let mut reasons = vec![format!(
                "not verified within {} s: {healthy} of {desired} tasks healthy, {}",
                policy.deadline.as_secs(),
                match task_set {
                    Some(t) => format!("task set {} {}", t.id, t.stability_status),
                    None => format!(
                        "deployment {}",
                        deployment.map_or("missing", |d| d.rollout_state.as_str())
                    ),
                }
            )];
            reasons.extend(running_now.iter().filter_map(|t| {
                Some(format!(
                    "task {}: {}",
                    t.id(),
                    seen.get(&t.arn)?.last_error.as_deref()?
                ))
            }));
            return Err(fail(
                reasons,
                running_now.iter().map(|t| t.id().to_owned()).collect(),
            ));
        }
        tokio::time::sleep(policy.interval).await;
    }
}
