//! Task sets of services with the EXTERNAL deployment controller (CreateTaskSet,
//! DescribeTaskSets, UpdateTaskSet, UpdateServicePrimaryTaskSet, DeleteTaskSet),
//! with ECS's member names and errors. The engine (`engine::tick`) keeps each
//! task set's tasks running; this module only changes what it asks for.
//!
//! What ECS does that the simulator mirrors, and where it was read:
//! - A new task set is ACTIVE, never PRIMARY by itself, the first one included:
//!   the AWS CLI's create-task-set example answers `"status": "ACTIVE"` and moto
//!   does the same; UpdateServicePrimaryTaskSet makes one PRIMARY.
//! - Without `scale`, a task set is created at 0 % (the CLI example answers
//!   `"scale": {"value": 0.0, "unit": "PERCENT"}` and `computedDesiredCount` 0).
//! - On a service of another controller ECS answers InvalidParameterException
//!   "Amazon ECS only supports task set management on services configured to use
//!   external deployment controllers." (quoted in terraform-provider-aws#30347).
//! - Five task sets at most: "5 deployments exist on the service. Unable to
//!   create new TaskSet since this exceeds the maximum limit."
//!   (aws-samples/ecs-bg-external-controller#6).
//! - DeleteTaskSet's `force`: "If true, you can delete a task set even if it
//!   hasn't been scaled down to zero" (API reference). The simulator also keeps
//!   the PRIMARY task set unless `force` is set. Both messages are the
//!   simulator's own wording.

use serde_json::{Value, json};

use super::services::{active_task_definition, find_service, running_pending};
use crate::sim::api::{ApiError, ApiResult, Request, tags_json};
use crate::sim::state::{Controller, Service, State, TaskSet, TaskSetStatus};

/// At most this many task sets (DRAINING ones included) per service, as ECS.
const MAX_TASK_SETS: usize = 5;

fn not_external() -> ApiError {
    ApiError::invalid(
        "Amazon ECS only supports task set management on services configured to use external deployment controllers.",
    )
}

fn task_set_not_found() -> ApiError {
    ApiError::new(
        400,
        "TaskSetNotFoundException",
        "The specified task set does not exist.",
    )
}

/// The EXTERNAL, ACTIVE service a task-set request names.
fn external_service<'a>(st: &'a mut State, req: &Request) -> Result<&'a mut Service, ApiError> {
    let cluster = req.opt_str("cluster")?.map(str::to_owned);
    let service = req.str("service")?.to_owned();
    let s = find_service(st, cluster.as_deref(), &service)?;
    if !s.active {
        return Err(ApiError::new(
            400,
            "ServiceNotActiveException",
            "Service was not ACTIVE.",
        ));
    }
    if s.controller != Controller::External {
        return Err(not_external());
    }
    Ok(s)
}

/// Whether `reference` (an ID `ecs-svc/...` or an ARN) names this task set.
fn names(t: &TaskSet, reference: &str) -> bool {
    t.arn == reference || t.id == reference
}

/// `scale` of a request: `{unit: PERCENT, value: 0..100}`.
fn scale(req: &Request) -> Result<Option<f64>, ApiError> {
    let Some(scale) = req.opt_object("scale")? else {
        return Ok(None);
    };
    match scale.get("unit").and_then(Value::as_str) {
        None | Some("PERCENT") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Invalid scale unit: {other}. The only valid unit is PERCENT."
            )));
        }
    }
    match scale.get("value").and_then(Value::as_f64) {
        Some(v) if (0.0..=100.0).contains(&v) => Ok(Some(v)),
        Some(v) => Err(ApiError::invalid(format!(
            "Invalid scale value: {v}. The value must be between 0 and 100."
        ))),
        None => Ok(Some(0.0)),
    }
}

pub fn task_set_json(st: &State, s: &Service, t: &TaskSet, with_tags: bool) -> Value {
    let (running, pending) = running_pending(st, |task| {
        task.cluster_arn == s.cluster_arn
            && task
                .service
                .as_ref()
                .is_some_and(|(n, o)| *n == s.name && *o == t.id)
    });
    let steady = t.steady && t.status != TaskSetStatus::Draining;
    let mut v = json!({
        "id": t.id,
        "taskSetArn": t.arn,
        "serviceArn": s.arn,
        "clusterArn": s.cluster_arn,
        "status": t.status.as_str(),
        "taskDefinition": t.task_definition,
        "computedDesiredCount": if t.status == TaskSetStatus::Draining { 0 } else { t.computed_desired(s.desired_count) },
        "pendingCount": pending,
        "runningCount": running,
        "createdAt": t.created_at,
        "updatedAt": t.updated_at,
        "launchType": t.launch_type,
        "platformVersion": t.platform_version,
        "platformFamily": "Linux",
        "loadBalancers": t.load_balancers,
        "serviceRegistries": t.service_registries,
        "scale": {"value": t.scale, "unit": "PERCENT"},
        "stabilityStatus": if steady { "STEADY_STATE" } else { "STABILIZING" },
        "stabilityStatusAt": t.stability_at,
    });
    if let Some(n) = &t.network {
        v["networkConfiguration"] = n.clone();
    }
    if let Some(e) = &t.external_id {
        v["externalId"] = json!(e);
    }
    if with_tags {
        v["tags"] = tags_json(&t.tags);
    }
    v
}

fn answer(st: &State, cluster: &str, service: &str, id: &str) -> ApiResult {
    let s = st
        .services
        .get(&(cluster.to_owned(), service.to_owned()))
        .ok_or_else(super::service_not_found)?;
    let t = s
        .task_sets
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(task_set_not_found)?;
    Ok(json!({ "taskSet": task_set_json(st, s, t, false) }))
}

/// (cluster name, service name) of a service, from its ARN.
fn key_of(s: &Service) -> (String, String) {
    let cluster = s.cluster_arn.rsplit('/').next().unwrap_or("default");
    (cluster.to_owned(), s.name.clone())
}

pub fn create(req: Request, st: &mut State, now: f64) -> ApiResult {
    let key = key_of(external_service(st, &req)?);
    let td_ref = req.str("taskDefinition")?.to_owned();
    let token = req.opt_str("clientToken")?.map(str::to_owned);
    // The same client token answers the task set it created, and creates nothing.
    if let Some(tok) = &token {
        let s = &st.services[&key];
        if let Some(t) = s
            .task_sets
            .iter()
            .find(|t| t.client_token.as_deref() == Some(tok))
        {
            let id = t.id.clone();
            return answer(st, &key.0, &key.1, &id);
        }
    }
    let td_arn = active_task_definition(st, &td_ref)?;
    let scale = scale(&req)?.unwrap_or(0.0);
    let launch_type = req.opt_str("launchType")?.unwrap_or("FARGATE").to_owned();
    if launch_type != "FARGATE" {
        return Err(ApiError::invalid(format!(
            "The simulator runs task sets on FARGATE only, not {launch_type}."
        )));
    }
    let td = st.find_task_definition(&td_arn).expect("resolved above");
    let awsvpc = td.body.get("networkMode").and_then(Value::as_str) == Some("awsvpc");
    let network = req.member("networkConfiguration");
    let subnets = network
        .as_ref()
        .and_then(|n| n.pointer("/awsvpcConfiguration/subnets"))
        .and_then(Value::as_array);
    if awsvpc && subnets.is_none_or(Vec::is_empty) {
        return Err(ApiError::invalid(
            "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
        ));
    }
    let tags = req.tags("tags")?;
    if st.services[&key].task_sets.len() >= MAX_TASK_SETS {
        return Err(ApiError::invalid(format!(
            "{} deployments exist on the service. Unable to create new TaskSet since this exceeds the maximum limit.",
            st.services[&key].task_sets.len()
        )));
    }
    let id = st.new_ecs_svc_id();
    let arn = st.arn(&format!("task-set/{}/{}/{id}", key.0, key.1));
    let network = network.map(|mut n| {
        if let Some(a) = n
            .get_mut("awsvpcConfiguration")
            .and_then(Value::as_object_mut)
        {
            a.entry("assignPublicIp").or_insert(json!("DISABLED"));
            a.entry("securityGroups").or_insert(json!([]));
        }
        n
    });
    let task_set = TaskSet {
        id: id.clone(),
        arn: arn.clone(),
        status: TaskSetStatus::Active,
        task_definition: td_arn.clone(),
        network,
        launch_type,
        platform_version: req
            .opt_str("platformVersion")?
            .unwrap_or("LATEST")
            .to_owned(),
        load_balancers: req.member("loadBalancers").unwrap_or(json!([])),
        service_registries: req.member("serviceRegistries").unwrap_or(json!([])),
        scale,
        external_id: req.opt_str("externalId")?.map(str::to_owned),
        client_token: token,
        tags,
        created_at: now,
        updated_at: now,
        steady: false,
        stability_at: now,
    };
    st.services
        .get_mut(&key)
        .expect("found above")
        .task_sets
        .push(task_set);
    st.record(
        now,
        "task-set-created",
        &arn,
        format!("{td_arn} at {scale} %"),
    );
    answer(st, &key.0, &key.1, &id)
}

pub fn describe(req: Request, st: &mut State) -> ApiResult {
    let key = key_of(external_service(st, &req)?);
    let refs = req.opt_strings("taskSets")?;
    let with_tags = req
        .opt_strings("include")?
        .unwrap_or_default()
        .iter()
        .any(|i| i == "TAGS");
    let s = &st.services[&key];
    let mut sets = Vec::new();
    let mut failures = Vec::new();
    match refs {
        None => sets.extend(
            s.task_sets
                .iter()
                .map(|t| task_set_json(st, s, t, with_tags)),
        ),
        Some(refs) => {
            for r in refs {
                match s.task_sets.iter().find(|t| names(t, &r)) {
                    Some(t) => sets.push(task_set_json(st, s, t, with_tags)),
                    None => failures.push(json!({"arn": r, "reason": "MISSING"})),
                }
            }
        }
    }
    Ok(json!({ "taskSets": sets, "failures": failures }))
}

/// The task set a request names in `member`, and its service's key.
fn named(
    st: &mut State,
    req: &Request,
    member: &str,
) -> Result<((String, String), String), ApiError> {
    let key = key_of(external_service(st, req)?);
    let reference = req.str(member)?;
    let id = st.services[&key]
        .task_sets
        .iter()
        .find(|t| names(t, reference))
        .map(|t| t.id.clone())
        .ok_or_else(task_set_not_found)?;
    Ok((key, id))
}

fn task_set_mut<'a>(st: &'a mut State, key: &(String, String), id: &str) -> &'a mut TaskSet {
    st.services
        .get_mut(key)
        .and_then(|s| s.task_sets.iter_mut().find(|t| t.id == id))
        .expect("found by `named`")
}

pub fn update(req: Request, st: &mut State, now: f64) -> ApiResult {
    let (key, id) = named(st, &req, "taskSet")?;
    let scale = scale(&req)?.ok_or_else(|| Request::missing("scale"))?;
    let t = task_set_mut(st, &key, &id);
    if t.status == TaskSetStatus::Draining {
        return Err(ApiError::invalid(
            "The task set is DRAINING: it was deleted and cannot be updated.",
        ));
    }
    t.scale = scale;
    t.updated_at = now;
    let arn = t.arn.clone();
    st.record(now, "task-set-scaled", &arn, format!("{scale} %"));
    answer(st, &key.0, &key.1, &id)
}

pub fn update_primary(req: Request, st: &mut State, now: f64) -> ApiResult {
    let (key, id) = named(st, &req, "primaryTaskSet")?;
    let s = st.services.get_mut(&key).expect("found by `named`");
    let t = s.task_sets.iter().find(|t| t.id == id).expect("found");
    if t.status == TaskSetStatus::Draining {
        return Err(ApiError::invalid(
            "The task set is DRAINING: it was deleted and cannot become the primary task set.",
        ));
    }
    if t.status != TaskSetStatus::Primary {
        for t in &mut s.task_sets {
            if t.id == id {
                t.status = TaskSetStatus::Primary;
                t.updated_at = now;
            } else if t.status == TaskSetStatus::Primary {
                t.status = TaskSetStatus::Active;
                t.updated_at = now;
            }
        }
        let arn = s
            .task_sets
            .iter()
            .find(|t| t.id == id)
            .expect("found")
            .arn
            .clone();
        let name = s.name.clone();
        st.next_id += 1;
        let n = st.next_id;
        let s = st.services.get_mut(&key).expect("found");
        s.events.insert(
            0,
            (
                format!("{n:08x}-sim-event"),
                now,
                format!("(service {name}) updated the primary task set to (taskSet {id})."),
            ),
        );
        s.events.truncate(100);
        st.record(now, "task-set-primary", &arn, "");
    }
    answer(st, &key.0, &key.1, &id)
}

pub fn delete(req: Request, st: &mut State, now: f64) -> ApiResult {
    let (key, id) = named(st, &req, "taskSet")?;
    let force = req.opt_bool("force")?.unwrap_or(false);
    let desired = st.services[&key].desired_count;
    let t = task_set_mut(st, &key, &id);
    if t.status != TaskSetStatus::Draining && !force {
        if t.status == TaskSetStatus::Primary {
            return Err(ApiError::invalid(
                "The task set is the PRIMARY task set of the service. Make another task set primary first, or set force to delete it.",
            ));
        }
        if t.computed_desired(desired) > 0 {
            return Err(ApiError::invalid(
                "The task set has not been scaled down to zero. Scale it to 0 with UpdateTaskSet first, or set force to delete it.",
            ));
        }
    }
    if t.status != TaskSetStatus::Draining {
        t.status = TaskSetStatus::Draining;
        t.updated_at = now;
        t.steady = false;
        t.stability_at = now;
        let arn = t.arn.clone();
        st.record(now, "task-set-draining", &arn, "");
    }
    answer(st, &key.0, &key.1, &id)
}
