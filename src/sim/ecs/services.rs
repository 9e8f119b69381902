//! Services: CreateService, UpdateService, DescribeServices, with their
//! deployment settings and deployments (the task sets of EXTERNAL services live in
//! `task_sets`, service deployments in `service_deployments`).

use serde_json::{Map, Value, json};

use super::{
    check_name, cluster, cluster_not_found, service_deployments, service_not_found, task_sets,
};
use crate::sim::api::{ApiError, ApiResult, Request, tags_json};
use crate::sim::state::{
    Cluster, Controller, Deployment, DeploymentSettings, RolloutState, Service, State, Task,
    TaskSetStatus, TaskStatus,
};

fn deployment_settings(
    req: &Request,
    base: Option<DeploymentSettings>,
) -> Result<DeploymentSettings, ApiError> {
    let mut s = base.unwrap_or(DeploymentSettings {
        minimum_healthy_percent: 100,
        maximum_percent: 200,
        breaker_enable: false,
        breaker_rollback: false,
    });
    if let Some(dc) = req.opt_object("deploymentConfiguration")? {
        if let Some(v) = dc.get("minimumHealthyPercent") {
            s.minimum_healthy_percent =
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::invalid("minimumHealthyPercent must be a non-negative integer")
                    })?;
        }
        if let Some(v) = dc.get("maximumPercent") {
            s.maximum_percent =
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::invalid("maximumPercent must be a non-negative integer")
                    })?;
        }
        if let Some(cb) = dc.get("deploymentCircuitBreaker") {
            s.breaker_enable = cb.get("enable").and_then(Value::as_bool).unwrap_or(false);
            s.breaker_rollback = cb.get("rollback").and_then(Value::as_bool).unwrap_or(false);
        }
    }
    if s.maximum_percent < s.minimum_healthy_percent || s.maximum_percent == 0 {
        return Err(ApiError::invalid(
            "The maximumPercent must be greater than or equal to the minimumHealthyPercent",
        ));
    }
    if s.maximum_percent > 200 || s.minimum_healthy_percent > 100 {
        return Err(ApiError::invalid(
            "minimumHealthyPercent must be at most 100 and maximumPercent at most 200",
        ));
    }
    Ok(s)
}

pub(super) fn active_task_definition(st: &State, reference: &str) -> Result<String, ApiError> {
    let td = st
        .find_task_definition(reference)
        .ok_or_else(|| ApiError::client("TaskDefinition not found."))?;
    if !td.active {
        return Err(ApiError::invalid("TaskDefinition is inactive"));
    }
    Ok(td.arn.clone())
}

/// A new PRIMARY deployment of `td`, with the service revision it runs.
fn new_deployment(
    st: &mut State,
    service: &Service,
    td: &str,
    network: Option<&Value>,
    desired: u32,
    now: f64,
) -> Deployment {
    let id = st.new_ecs_svc_id();
    let revision = service_deployments::new_revision(st, service, td, network, now);
    Deployment {
        rollout_state_reason: format!("ECS deployment {id} in progress."),
        id,
        primary: true,
        task_definition: td.to_owned(),
        revision,
        desired_count: desired,
        failed_tasks: 0,
        rollout_state: RolloutState::InProgress,
        created_at: now,
        updated_at: now,
    }
}

/// `deploymentController.type` of a CreateService request.
fn controller(req: &Request) -> Result<Controller, ApiError> {
    let Some(dc) = req.opt_object("deploymentController")? else {
        return Ok(Controller::Ecs);
    };
    match dc.get("type").and_then(Value::as_str) {
        Some("ECS") => Ok(Controller::Ecs),
        Some("EXTERNAL") => Ok(Controller::External),
        Some("CODE_DEPLOY") => Err(ApiError::new(
            400,
            "UnsupportedFeatureException",
            "The simulator does not run services with the CODE_DEPLOY deployment controller.",
        )),
        _ => Err(ApiError::invalid(
            "deploymentController.type must be one of ECS, CODE_DEPLOY, EXTERNAL",
        )),
    }
}

/// The circuit breaker belongs to ECS's rolling update: refused for EXTERNAL services.
fn refuse_breaker(req: &Request) -> Result<(), ApiError> {
    let enabled = req
        .opt_object("deploymentConfiguration")?
        .and_then(|dc| dc.get("deploymentCircuitBreaker"))
        .and_then(|cb| cb.get("enable"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if enabled {
        return Err(ApiError::invalid(
            "Deployment circuit breaker feature is only supported for services using the rolling update (ECS) deployment controller.",
        ));
    }
    Ok(())
}

/// CreateService for the EXTERNAL controller: what task sets control must not be given.
/// ECS answers "TaskDefinition must be blank." and "NetworkConfiguration must be null.".
fn create_external_service(
    req: Request,
    st: &mut State,
    cluster: Cluster,
    name: String,
    now: f64,
) -> ApiResult {
    if req.member("taskDefinition").is_some() {
        return Err(ApiError::invalid("TaskDefinition must be blank."));
    }
    for (member, shown) in [
        ("networkConfiguration", "NetworkConfiguration"),
        ("launchType", "LaunchType"),
        ("platformVersion", "PlatformVersion"),
        ("loadBalancers", "LoadBalancers"),
        ("serviceRegistries", "ServiceRegistries"),
        ("capacityProviderStrategy", "CapacityProviderStrategy"),
    ] {
        let given = req
            .member(member)
            .is_some_and(|v| !v.as_array().is_some_and(Vec::is_empty));
        if given {
            return Err(ApiError::invalid(format!("{shown} must be null.")));
        }
    }
    refuse_breaker(&req)?;
    let desired = match req.opt_i64("desiredCount")? {
        Some(n) if (0..=5000).contains(&n) => n as u32,
        Some(_) => return Err(ApiError::invalid("desiredCount must be between 0 and 5000")),
        None => 0,
    };
    let settings = deployment_settings(&req, None)?;
    let key = (cluster.name.clone(), name.clone());
    if st.services.get(&key).is_some_and(|s| s.active) {
        return Err(ApiError::invalid("Creation of service was not idempotent."));
    }
    let tags = req.tags("tags")?;
    let mut extra = Map::new();
    for member in [
        "enableECSManagedTags",
        "propagateTags",
        "enableExecuteCommand",
        "healthCheckGracePeriodSeconds",
    ] {
        if let Some(v) = req.member(member) {
            extra.insert(member.to_owned(), v);
        }
    }
    let arn = st.arn(&format!("service/{}/{name}", cluster.name));
    let service = Service {
        arn: arn.clone(),
        name,
        cluster_arn: cluster.arn.clone(),
        active: true,
        controller: Controller::External,
        task_sets: Vec::new(),
        desired_count: desired,
        task_definition: String::new(),
        settings,
        extra,
        deployments: Vec::new(),
        events: Vec::new(),
        tags,
        created_at: now,
        last_completed: None,
        healthy_count: 0,
    };
    let out = json!({ "service": service_json(st, &service, false) });
    st.services.insert(key, service);
    st.record(
        now,
        "service-created",
        &arn,
        format!("desired {desired}, EXTERNAL"),
    );
    Ok(out)
}

pub(super) fn create_service(req: Request, st: &mut State, now: f64) -> ApiResult {
    let cluster = cluster(st, req.opt_str("cluster")?)?.clone();
    let name = req.str("serviceName")?.to_owned();
    check_name(&name, "serviceName")?;
    if controller(&req)? == Controller::External {
        return create_external_service(req, st, cluster, name, now);
    }
    let td_ref = req.str("taskDefinition")?;
    let td_arn = active_task_definition(st, td_ref)?;
    let desired = match req.opt_i64("desiredCount")? {
        Some(n) if (0..=5000).contains(&n) => n as u32,
        Some(_) => return Err(ApiError::invalid("desiredCount must be between 0 and 5000")),
        None => 0,
    };
    let settings = deployment_settings(&req, None)?;
    let td = st.find_task_definition(&td_arn).expect("resolved above");
    let awsvpc = td.body.get("networkMode").and_then(Value::as_str) == Some("awsvpc");
    let network = req.opt_object("networkConfiguration")?.cloned();
    if awsvpc {
        let subnets = network
            .as_ref()
            .and_then(|n| n.get("awsvpcConfiguration"))
            .and_then(|a| a.get("subnets"))
            .and_then(Value::as_array);
        if subnets.is_none_or(Vec::is_empty) {
            return Err(ApiError::invalid(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            ));
        }
    }
    let key = (cluster.name.clone(), name.clone());
    if st.services.get(&key).is_some_and(|s| s.active) {
        return Err(ApiError::invalid("Creation of service was not idempotent."));
    }
    let tags = req.tags("tags")?;
    let mut extra = Map::new();
    for member in [
        "networkConfiguration",
        "loadBalancers",
        "serviceRegistries",
        "launchType",
        "platformVersion",
        "enableECSManagedTags",
        "propagateTags",
        "enableExecuteCommand",
        "healthCheckGracePeriodSeconds",
    ] {
        if let Some(v) = req.member(member) {
            extra.insert(member.to_owned(), v);
        }
    }
    let arn = st.arn(&format!("service/{}/{name}", cluster.name));
    let mut service = Service {
        arn: arn.clone(),
        name: name.clone(),
        cluster_arn: cluster.arn.clone(),
        active: true,
        controller: Controller::Ecs,
        task_sets: Vec::new(),
        desired_count: desired,
        task_definition: td_arn.clone(),
        settings,
        extra,
        deployments: Vec::new(),
        events: Vec::new(),
        tags,
        created_at: now,
        last_completed: None,
        healthy_count: 0,
    };
    let network_value = network.clone().map(Value::Object);
    let deployment = new_deployment(st, &service, &td_arn, network_value.as_ref(), desired, now);
    service_deployments::begin(st, &service, &deployment, Vec::new(), now);
    service.deployments.push(deployment);
    let out = json!({ "service": service_json(st, &service, false) });
    service.events.clear();
    st.services.insert(key, service);
    st.record(now, "service-created", &arn, format!("desired {desired}"));
    Ok(out)
}

pub(super) fn find_service<'a>(
    st: &'a mut State,
    cluster: Option<&str>,
    service: &str,
) -> Result<&'a mut Service, ApiError> {
    let cname = State::cluster_name(cluster);
    if !st.clusters.contains_key(&cname) {
        return Err(cluster_not_found());
    }
    let sname = service.rsplit('/').next().unwrap_or(service).to_owned();
    st.services
        .get_mut(&(cname, sname))
        .ok_or_else(service_not_found)
}

/// UpdateService on an EXTERNAL service: only the desired count and the
/// health check grace period change; the rest belongs to task sets.
fn update_external_service(
    req: &Request,
    st: &mut State,
    cluster_ref: Option<&str>,
    service_ref: &str,
    desired: Option<u32>,
    now: f64,
) -> ApiResult {
    for (member, what) in [
        ("taskDefinition", "task definition"),
        ("networkConfiguration", "network parameters"),
        ("loadBalancers", "load balancers"),
        ("serviceRegistries", "service registries"),
        ("launchType", "launch type"),
        ("platformVersion", "platform version"),
        ("capacityProviderStrategy", "capacity provider strategy"),
    ] {
        if req.member(member).is_some() {
            return Err(ApiError::invalid(format!(
                "Unable to update {what} on services with a EXTERNAL deployment controller. Use a new task set (CreateTaskSet) instead."
            )));
        }
    }
    if req.opt_bool("forceNewDeployment")?.unwrap_or(false) {
        return Err(ApiError::invalid(
            "Unable to force a new deployment on services with a EXTERNAL deployment controller. Use a new task set (CreateTaskSet) instead.",
        ));
    }
    refuse_breaker(req)?;
    let grace = req.member("healthCheckGracePeriodSeconds");
    let service = find_service(st, cluster_ref, service_ref)?;
    let settings = deployment_settings(req, Some(service.settings))?;
    service.settings = settings;
    if let Some(n) = desired {
        service.desired_count = n;
    }
    if let Some(g) = grace {
        service
            .extra
            .insert("healthCheckGracePeriodSeconds".into(), g);
    }
    let service = service.clone();
    st.record(
        now,
        "service-scaled",
        &service.arn,
        format!("desired {}", service.desired_count),
    );
    Ok(json!({ "service": service_json(st, &service, false) }))
}

pub(super) fn update_service(req: Request, st: &mut State, now: f64) -> ApiResult {
    let cluster_ref = req.opt_str("cluster")?.map(str::to_owned);
    let service_ref = req.str("service")?.to_owned();
    let desired = match req.opt_i64("desiredCount")? {
        Some(n) if (0..=5000).contains(&n) => Some(n as u32),
        Some(_) => return Err(ApiError::invalid("desiredCount must be between 0 and 5000")),
        None => None,
    };
    let current = find_service(st, cluster_ref.as_deref(), &service_ref)?;
    if !current.active {
        return Err(ApiError::new(
            400,
            "ServiceNotActiveException",
            "Service was not ACTIVE.",
        ));
    }
    if current.controller == Controller::External {
        return update_external_service(
            &req,
            st,
            cluster_ref.as_deref(),
            &service_ref,
            desired,
            now,
        );
    }
    let td_arn = match req.opt_str("taskDefinition")? {
        Some(r) => Some(active_task_definition(st, r)?),
        None => None,
    };
    let force = req.opt_bool("forceNewDeployment")?.unwrap_or(false);
    let current = find_service(st, cluster_ref.as_deref(), &service_ref)?.clone();
    let settings = deployment_settings(&req, Some(current.settings))?;
    let needs_deployment = force
        || td_arn
            .as_ref()
            .is_some_and(|t| *t != current.task_definition);
    let new_td = td_arn.unwrap_or_else(|| current.task_definition.clone());
    let desired_now = desired.unwrap_or(current.desired_count);
    let deployment = if needs_deployment {
        let network = current.extra.get("networkConfiguration").cloned();
        let d = new_deployment(st, &current, &new_td, network.as_ref(), desired_now, now);
        let sources: Vec<String> = current
            .deployments
            .iter()
            .map(|d| d.revision.clone())
            .collect();
        service_deployments::begin(st, &current, &d, sources, now);
        Some(d)
    } else {
        None
    };
    let service = find_service(st, cluster_ref.as_deref(), &service_ref)?;
    service.settings = settings;
    service.desired_count = desired_now;
    service.task_definition = new_td.clone();
    if let Some(d) = deployment {
        for old in &mut service.deployments {
            old.primary = false;
            old.desired_count = 0;
        }
        service.deployments.insert(0, d);
    } else if let Some(primary) = service.deployments.first_mut() {
        primary.desired_count = desired_now;
        primary.updated_at = now;
        if desired.is_some() && primary.rollout_state == RolloutState::Completed {
            primary.rollout_state = RolloutState::InProgress;
        }
    }
    let service = service.clone();
    st.record(
        now,
        if needs_deployment {
            "service-updated"
        } else {
            "service-scaled"
        },
        &service.arn,
        format!("task definition {new_td}, desired {desired_now}"),
    );
    Ok(json!({ "service": service_json(st, &service, false) }))
}

/// (running, pending) among the live tasks that `belongs` picks.
pub(super) fn running_pending(st: &State, belongs: impl Fn(&Task) -> bool) -> (usize, usize) {
    st.tasks
        .values()
        .filter(|t| t.desired_running && belongs(t))
        .fold((0, 0), |(r, p), t| match t.status {
            TaskStatus::Running => (r + 1, p),
            x if x < TaskStatus::Running => (r, p + 1),
            _ => (r, p),
        })
}

fn deployment_json(st: &State, s: &Service, d: &Deployment) -> Value {
    let (running, pending) = running_pending(st, |t| {
        t.service.as_ref().is_some_and(|(_, dep)| *dep == d.id)
    });
    let mut v = json!({
        "id": d.id,
        "status": if d.primary { "PRIMARY" } else { "ACTIVE" },
        "taskDefinition": d.task_definition,
        "desiredCount": d.desired_count,
        "pendingCount": pending,
        "runningCount": running,
        "failedTasks": d.failed_tasks,
        "createdAt": d.created_at,
        "updatedAt": d.updated_at,
        "launchType": "FARGATE",
        "platformVersion": "1.4.0",
        "platformFamily": "Linux",
        "rolloutState": d.rollout_state.as_str(),
        "rolloutStateReason": d.rollout_state_reason,
    });
    if let Some(n) = s.extra.get("networkConfiguration") {
        v["networkConfiguration"] = n.clone();
    }
    v
}

pub fn service_json(st: &State, s: &Service, with_tags: bool) -> Value {
    let (running, pending) = running_pending(st, |t| {
        t.service.as_ref().is_some_and(|(n, _)| *n == s.name) && t.cluster_arn == s.cluster_arn
    });
    let external = s.controller == Controller::External;
    // EXTERNAL: the task-set fields come from the PRIMARY task set (null without one).
    let primary = s
        .task_sets
        .iter()
        .find(|t| t.status == TaskSetStatus::Primary);
    let mut v = json!({
        "serviceArn": s.arn,
        "serviceName": s.name,
        "clusterArn": s.cluster_arn,
        "loadBalancers": s.extra.get("loadBalancers").cloned().unwrap_or(json!([])),
        "serviceRegistries": s.extra.get("serviceRegistries").cloned().unwrap_or(json!([])),
        "status": if s.active { "ACTIVE" } else { "INACTIVE" },
        "desiredCount": s.desired_count,
        "runningCount": running,
        "pendingCount": pending,
        "launchType": s.extra.get("launchType").cloned().unwrap_or(json!("FARGATE")),
        "platformVersion": "LATEST",
        "platformFamily": "Linux",
        "taskDefinition": s.task_definition,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": s.settings.breaker_enable, "rollback": s.settings.breaker_rollback},
            "maximumPercent": s.settings.maximum_percent,
            "minimumHealthyPercent": s.settings.minimum_healthy_percent,
        },
        "deployments": s.deployments.iter().map(|d| deployment_json(st, s, d)).collect::<Vec<_>>(),
        "events": s.events.iter().take(100).map(|(id, at, msg)| json!({"id": id, "createdAt": at, "message": msg})).collect::<Vec<_>>(),
        "createdAt": s.created_at,
        "placementConstraints": [],
        "placementStrategy": [],
        "schedulingStrategy": "REPLICA",
        "deploymentController": {"type": s.controller.as_str()},
        "enableECSManagedTags": s.extra.get("enableECSManagedTags").cloned().unwrap_or(json!(false)),
        "propagateTags": s.extra.get("propagateTags").cloned().unwrap_or(json!("NONE")),
        "enableExecuteCommand": s.extra.get("enableExecuteCommand").cloned().unwrap_or(json!(false)),
    });
    if let Some(n) = s.extra.get("networkConfiguration") {
        v["networkConfiguration"] = n.clone();
    }
    if let Some(g) = s.extra.get("healthCheckGracePeriodSeconds") {
        v["healthCheckGracePeriodSeconds"] = g.clone();
    }
    if external {
        let o = v.as_object_mut().expect("an object");
        for member in [
            "taskDefinition",
            "launchType",
            "platformVersion",
            "platformFamily",
        ] {
            o.remove(member);
        }
        if let Some(p) = primary {
            o.insert("taskDefinition".into(), json!(p.task_definition));
            o.insert("launchType".into(), json!(p.launch_type));
            o.insert("platformVersion".into(), json!(p.platform_version));
            o.insert("platformFamily".into(), json!("Linux"));
            o.insert("loadBalancers".into(), p.load_balancers.clone());
            o.insert("serviceRegistries".into(), p.service_registries.clone());
            if let Some(n) = &p.network {
                o.insert("networkConfiguration".into(), n.clone());
            }
        }
        let sets: Vec<Value> = s
            .task_sets
            .iter()
            .map(|t| task_sets::task_set_json(st, s, t, false))
            .collect();
        o.insert("taskSets".into(), json!(sets));
    } else {
        if let Some(d) = st
            .service_deployments
            .iter()
            .rev()
            .find(|d| d.service_arn == s.arn && d.created_at >= s.created_at)
        {
            v["currentServiceDeployment"] = json!(d.arn);
        }
        let mut revisions: Vec<&str> = Vec::new();
        for d in &s.deployments {
            if !revisions.contains(&d.revision.as_str()) {
                revisions.push(&d.revision);
            }
        }
        v["currentServiceRevisions"] = json!(
            revisions
                .iter()
                .map(|r| service_deployments::revision_summary(st, s, r))
                .collect::<Vec<_>>()
        );
    }
    if with_tags {
        v["tags"] = tags_json(&s.tags);
    }
    v
}

pub(super) fn describe_services(req: Request, st: &mut State) -> ApiResult {
    let cname = State::cluster_name(req.opt_str("cluster")?);
    if !st.clusters.contains_key(&cname) {
        return Err(cluster_not_found());
    }
    let names = req
        .opt_strings("services")?
        .ok_or_else(|| Request::missing("services"))?;
    if names.is_empty() || names.len() > 10 {
        return Err(ApiError::invalid(
            "services can have between 1 and 10 items",
        ));
    }
    let with_tags = req
        .opt_strings("include")?
        .unwrap_or_default()
        .iter()
        .any(|i| i == "TAGS");
    let mut services = Vec::new();
    let mut failures = Vec::new();
    for n in names {
        let short = n.rsplit('/').next().unwrap_or(&n).to_owned();
        match st.services.get(&(cname.clone(), short)) {
            Some(s) => services.push(service_json(st, s, with_tags)),
            None => failures.push(json!({"arn": n, "reason": "MISSING"})),
        }
    }
    Ok(json!({ "services": services, "failures": failures }))
}
