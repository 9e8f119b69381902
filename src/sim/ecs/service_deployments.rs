//! Service deployments and service revisions of rolling (ECS-controller)
//! services: ListServiceDeployments, DescribeServiceDeployments,
//! StopServiceDeployment, DescribeServiceRevisions.
//!
//! One service deployment per CreateService or UpdateService that started a
//! deployment. Its status follows the deployment it runs (the engine moves it):
//! IN_PROGRESS → SUCCESSFUL when the deployment completes; STOPPED when a newer
//! service deployment supersedes it, or when the circuit breaker fails it
//! without rollback; ROLLBACK_IN_PROGRESS → ROLLBACK_SUCCESSFUL when the breaker
//! rolls it back. StopServiceDeployment (stopType ROLLBACK, the only one ECS
//! documents as valid, and the default) moves an IN_PROGRESS or PENDING one to
//! ROLLBACK_REQUESTED; at its next step the engine makes the source revision's
//! deployment PRIMARY again (keeping its tasks) and the status goes on to
//! ROLLBACK_IN_PROGRESS and ROLLBACK_SUCCESSFUL. ECS creates no service
//! revision for a rollback: it uses the source revision.

use serde_json::{Value, json};

use super::page_sized;
use super::services::{find_service, running_pending};
use crate::sim::api::{ApiError, ApiResult, Request};
use crate::sim::engine::breaker_threshold;
use crate::sim::state::{
    Controller, Deployment, DeploymentStatus, Rollback, Service, ServiceDeployment,
    ServiceRevision, State,
};

/// A new service revision of `service` running `td`; returns its ARN
/// (`arn:aws:ecs:<region>:<account>:service-revision/<cluster>/<service>/<19 digits>`).
pub fn new_revision(
    st: &mut State,
    service: &Service,
    td: &str,
    network: Option<&Value>,
    now: f64,
) -> String {
    let number = st.new_ecs_svc_id();
    let number = number.trim_start_matches("ecs-svc/");
    let cluster = service.cluster_arn.rsplit('/').next().unwrap_or("default");
    let arn = st.arn(&format!(
        "service-revision/{cluster}/{}/{number}",
        service.name
    ));
    st.service_revisions.insert(
        arn.clone(),
        ServiceRevision {
            arn: arn.clone(),
            service_arn: service.arn.clone(),
            cluster_arn: service.cluster_arn.clone(),
            task_definition: td.to_owned(),
            network: network.cloned(),
            launch_type: service
                .extra
                .get("launchType")
                .and_then(Value::as_str)
                .unwrap_or("FARGATE")
                .to_owned(),
            created_at: now,
        },
    );
    arn
}

/// Records the service deployment that `deployment` starts; the unfinished
/// ones of the same service are STOPPED (superseded).
pub fn begin(
    st: &mut State,
    service: &Service,
    deployment: &Deployment,
    mut sources: Vec<String>,
    now: f64,
) {
    sources.dedup();
    sources.retain(|r| *r != deployment.revision);
    for d in st
        .service_deployments
        .iter_mut()
        .filter(|d| d.service_arn == service.arn && !d.status.finished())
    {
        d.status = DeploymentStatus::Stopped;
        d.status_reason = "Service deployment stopped: a newer service deployment started.".into();
        d.stopped_at = Some(now);
        d.finished_at = Some(now);
        d.updated_at = now;
    }
    let token = st.new_deployment_token();
    let cluster = service
        .cluster_arn
        .rsplit('/')
        .next()
        .unwrap_or("default")
        .to_owned();
    let arn = st.arn(&format!(
        "service-deployment/{cluster}/{}/{token}",
        service.name
    ));
    st.service_deployments.push(ServiceDeployment {
        arn: arn.clone(),
        service_arn: service.arn.clone(),
        cluster_arn: service.cluster_arn.clone(),
        service: (cluster, service.name.clone()),
        created_at: now,
        started_at: now,
        updated_at: now,
        finished_at: None,
        stopped_at: None,
        source: sources,
        target: deployment.revision.clone(),
        deployment_id: deployment.id.clone(),
        rollback_deployment: None,
        status: DeploymentStatus::InProgress,
        status_reason: "Service deployment in progress.".into(),
        rollback: None,
        settings: service.settings,
        failed_tasks: 0,
    });
    st.record(
        now,
        "service-deployment-started",
        &arn,
        deployment.id.clone(),
    );
}

/// `{arn, requestedTaskCount, runningTaskCount, pendingTaskCount}` of a revision,
/// counted over the service's deployments that run it.
pub fn revision_summary(st: &State, s: &Service, revision: &str) -> Value {
    let ids: Vec<&str> = s
        .deployments
        .iter()
        .filter(|d| d.revision == revision)
        .map(|d| d.id.as_str())
        .collect();
    let requested: u32 = s
        .deployments
        .iter()
        .filter(|d| d.revision == revision)
        .map(|d| d.desired_count)
        .sum();
    let (running, pending) = running_pending(st, |t| {
        t.cluster_arn == s.cluster_arn
            && t.service
                .as_ref()
                .is_some_and(|(n, d)| *n == s.name && ids.contains(&d.as_str()))
    });
    json!({
        "arn": revision,
        "requestedTaskCount": requested,
        "runningTaskCount": running,
        "pendingTaskCount": pending,
    })
}

fn service_of<'a>(st: &'a State, d: &ServiceDeployment) -> Option<&'a Service> {
    st.services
        .get(&d.service)
        .filter(|s| s.arn == d.service_arn && s.created_at <= d.created_at)
}

fn summary(st: &State, d: &ServiceDeployment, revision: &str) -> Value {
    match service_of(st, d) {
        Some(s) => revision_summary(st, s, revision),
        None => {
            json!({"arn": revision, "requestedTaskCount": 0, "runningTaskCount": 0, "pendingTaskCount": 0})
        }
    }
}

fn brief_json(d: &ServiceDeployment) -> Value {
    let mut v = json!({
        "serviceDeploymentArn": d.arn,
        "serviceArn": d.service_arn,
        "clusterArn": d.cluster_arn,
        "createdAt": d.created_at,
        "startedAt": d.started_at,
        "targetServiceRevisionArn": d.target,
        "status": d.status.as_str(),
        "statusReason": d.status_reason,
    });
    if let Some(at) = d.finished_at {
        v["finishedAt"] = json!(at);
    }
    v
}

fn full_json(st: &State, d: &ServiceDeployment) -> Value {
    let failed = d.failed_tasks;
    let desired = service_of(st, d).map_or(0, |s| s.desired_count);
    let breaker_status = if !d.settings.breaker_enable {
        "DISABLED"
    } else if d.rollback.is_some()
        || (d.status == DeploymentStatus::Stopped && d.stopped_at.is_some() && failed > 0)
    {
        "TRIGGERED"
    } else if d.status.finished() {
        "MONITORING_COMPLETE"
    } else {
        "MONITORING"
    };
    let mut v = json!({
        "serviceDeploymentArn": d.arn,
        "serviceArn": d.service_arn,
        "clusterArn": d.cluster_arn,
        "createdAt": d.created_at,
        "startedAt": d.started_at,
        "updatedAt": d.updated_at,
        "sourceServiceRevisions": d.source.iter().map(|r| summary(st, d, r)).collect::<Vec<_>>(),
        "targetServiceRevision": summary(st, d, &d.target),
        "status": d.status.as_str(),
        "statusReason": d.status_reason,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": d.settings.breaker_enable, "rollback": d.settings.breaker_rollback},
            "maximumPercent": d.settings.maximum_percent,
            "minimumHealthyPercent": d.settings.minimum_healthy_percent,
        },
        "deploymentCircuitBreaker": {
            "status": breaker_status,
            "failureCount": failed,
            "threshold": breaker_threshold(desired),
        },
        "alarms": {"status": "DISABLED", "alarmNames": [], "triggeredAlarmNames": []},
    });
    if let Some(at) = d.finished_at {
        v["finishedAt"] = json!(at);
    }
    if let Some(at) = d.stopped_at {
        v["stoppedAt"] = json!(at);
    }
    if let Some(r) = &d.rollback {
        v["rollback"] = json!({
            "reason": r.reason,
            "startedAt": r.started_at,
            "serviceRevisionArn": r.revision,
        });
    }
    v
}

/// `createdAt: {before, after}` (epoch seconds) of a request.
fn created_between(req: &Request) -> Result<(f64, f64), ApiError> {
    let Some(c) = req.opt_object("createdAt")? else {
        return Ok((f64::NEG_INFINITY, f64::INFINITY));
    };
    let get = |k: &str| c.get(k).and_then(Value::as_f64);
    Ok((
        get("after").unwrap_or(f64::NEG_INFINITY),
        get("before").unwrap_or(f64::INFINITY),
    ))
}

pub fn list(req: Request, st: &mut State) -> ApiResult {
    let cluster = req.opt_str("cluster")?.map(str::to_owned);
    let service = req.str("service")?.to_owned();
    let s = find_service(st, cluster.as_deref(), &service)?;
    let (arn, created) = (s.arn.clone(), s.created_at);
    let external = s.controller == Controller::External;
    let wanted = match req.opt_strings("status")? {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|x| {
                    DeploymentStatus::parse(x)
                        .ok_or_else(|| ApiError::invalid(format!("Invalid status: {x}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let (after, before) = created_between(&req)?;
    // Newest first.
    let items: Vec<Value> = st
        .service_deployments
        .iter()
        .rev()
        .filter(|d| !external && d.service_arn == arn && d.created_at >= created)
        .filter(|d| wanted.as_ref().is_none_or(|w| w.contains(&d.status)))
        .filter(|d| d.created_at >= after && d.created_at <= before)
        .map(brief_json)
        .collect();
    page_sized(&req, items, "serviceDeployments", 100, 20)
}

pub fn describe(req: Request, st: &mut State) -> ApiResult {
    let arns = req
        .opt_strings("serviceDeploymentArns")?
        .ok_or_else(|| Request::missing("serviceDeploymentArns"))?;
    if arns.is_empty() || arns.len() > 20 {
        return Err(ApiError::invalid(
            "serviceDeploymentArns can have between 1 and 20 items",
        ));
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for a in arns {
        match st.service_deployments.iter().find(|d| d.arn == a) {
            Some(d) => found.push(full_json(st, d)),
            None => failures.push(json!({"arn": a, "reason": "MISSING"})),
        }
    }
    Ok(json!({ "serviceDeployments": found, "failures": failures }))
}

pub fn stop(req: Request, st: &mut State, now: f64) -> ApiResult {
    let arn = req.str("serviceDeploymentArn")?.to_owned();
    match req.opt_str("stopType")?.unwrap_or("ROLLBACK") {
        "ROLLBACK" => {}
        "ABORT" => {
            return Err(ApiError::invalid(
                "The ABORT stopType is not supported. The valid value is ROLLBACK.",
            ));
        }
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid stopType: {other}. The valid value is ROLLBACK."
            )));
        }
    }
    let i = st
        .service_deployments
        .iter()
        .position(|d| d.arn == arn)
        .ok_or_else(|| {
            ApiError::new(
                400,
                "ServiceDeploymentNotFoundException",
                "The service deployment does not exist.",
            )
        })?;
    let d = st.service_deployments[i].clone();
    match d.status {
        // Already stopping or rolling back: it goes on.
        DeploymentStatus::StopRequested
        | DeploymentStatus::RollbackRequested
        | DeploymentStatus::RollbackInProgress => {
            return Ok(json!({ "serviceDeploymentArn": arn }));
        }
        DeploymentStatus::Pending | DeploymentStatus::InProgress => {}
        finished => {
            return Err(ApiError::new(
                400,
                "ConflictException",
                format!(
                    "The service deployment is {} and cannot be stopped. Only a service deployment in progress can be stopped.",
                    finished.as_str()
                ),
            ));
        }
    }
    let s = st
        .services
        .get(&d.service)
        .filter(|s| s.arn == d.service_arn)
        .ok_or_else(super::service_not_found)?;
    // Back to the revision of the last completed deployment among the sources, else the newest source.
    let back = s
        .last_completed
        .as_ref()
        .and_then(|td| {
            d.source.iter().rev().find(|r| {
                st.service_revisions
                    .get(*r)
                    .is_some_and(|rev| rev.task_definition == *td)
            })
        })
        .or(d.source.last())
        .cloned()
        .ok_or_else(|| {
            ApiError::invalid(
                "The service deployment has no source service revision to roll back to.",
            )
        })?;
    let rec = &mut st.service_deployments[i];
    rec.status = DeploymentStatus::RollbackRequested;
    rec.status_reason = "Service deployment rollback requested by StopServiceDeployment.".into();
    rec.rollback = Some(Rollback {
        reason: "Rollback requested by StopServiceDeployment.".into(),
        started_at: now,
        revision: back.clone(),
    });
    rec.updated_at = now;
    st.record(now, "service-deployment-stop-requested", &arn, back);
    Ok(json!({ "serviceDeploymentArn": arn }))
}

pub fn describe_revisions(req: Request, st: &mut State) -> ApiResult {
    let arns = req
        .opt_strings("serviceRevisionArns")?
        .ok_or_else(|| Request::missing("serviceRevisionArns"))?;
    if arns.is_empty() || arns.len() > 20 {
        return Err(ApiError::invalid(
            "serviceRevisionArns can have between 1 and 20 items",
        ));
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for a in arns {
        let Some(r) = st.service_revisions.get(&a) else {
            failures.push(json!({"arn": a, "reason": "MISSING"}));
            continue;
        };
        let images: Vec<Value> = st
            .find_task_definition(&r.task_definition)
            .map(|td| td.containers())
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                json!({
                    "containerName": c.get("name").cloned().unwrap_or(json!("")),
                    "image": c.get("image").cloned().unwrap_or(json!("")),
                })
            })
            .collect();
        let mut v = json!({
            "serviceRevisionArn": r.arn,
            "serviceArn": r.service_arn,
            "clusterArn": r.cluster_arn,
            "taskDefinition": r.task_definition,
            "launchType": r.launch_type,
            "platformVersion": "LATEST",
            "platformFamily": "Linux",
            "loadBalancers": [],
            "serviceRegistries": [],
            "containerImages": images,
            "guardDutyEnabled": false,
            "createdAt": r.created_at,
        });
        if let Some(n) = &r.network {
            v["networkConfiguration"] = n.clone();
        }
        found.push(v);
    }
    Ok(json!({ "serviceRevisions": found, "failures": failures }))
}
