//! The ECS API (JSON 1.1, `AmazonEC2ContainerServiceV20141113.<Operation>`):
//! the operations the daemon, the AWS CLI and the tests call, with AWS's
//! member names, ARNs, timestamps (epoch seconds) and errors.

use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResult, Request, merge_tags, tags_json};
use super::state::{
    Cluster, Controller, Deployment, DeploymentSettings, RolloutState, Service, State, Task,
    TaskDefinition, TaskSetStatus, TaskStatus,
};
use super::{service_deployments, task_sets};
use crate::model::fargate;

/// Runs one ECS operation against the state.
pub fn handle(op: &str, req: Request, st: &mut State, now: f64) -> ApiResult {
    match op {
        "CreateCluster" => create_cluster(req, st),
        "DescribeClusters" => describe_clusters(req, st),
        "RegisterTaskDefinition" => register_task_definition(req, st, now),
        "DescribeTaskDefinition" => describe_task_definition(req, st),
        "DeregisterTaskDefinition" => deregister_task_definition(req, st, now),
        "ListTaskDefinitions" => list_task_definitions(req, st),
        "CreateService" => create_service(req, st, now),
        "UpdateService" => update_service(req, st, now),
        "DescribeServices" => describe_services(req, st),
        "ListTasks" => list_tasks(req, st),
        "DescribeTasks" => describe_tasks(req, st),
        "StopTask" => stop_task(req, st, now),
        "TagResource" => tag_resource(req, st, now),
        "UntagResource" => untag_resource(req, st),
        "ListTagsForResource" => list_tags(req, st),
        "CreateTaskSet" => task_sets::create(req, st, now),
        "DescribeTaskSets" => task_sets::describe(req, st),
        "UpdateTaskSet" => task_sets::update(req, st, now),
        "UpdateServicePrimaryTaskSet" => task_sets::update_primary(req, st, now),
        "DeleteTaskSet" => task_sets::delete(req, st, now),
        "ListServiceDeployments" => service_deployments::list(req, st),
        "DescribeServiceDeployments" => service_deployments::describe(req, st),
        "StopServiceDeployment" => service_deployments::stop(req, st, now),
        "DescribeServiceRevisions" => service_deployments::describe_revisions(req, st),
        other => Err(ApiError::unknown_operation(other)),
    }
}

pub(super) fn cluster_not_found() -> ApiError {
    ApiError::new(400, "ClusterNotFoundException", "Cluster not found.")
}

pub(super) fn service_not_found() -> ApiError {
    ApiError::new(400, "ServiceNotFoundException", "Service not found.")
}

fn cluster<'a>(st: &'a State, reference: Option<&str>) -> Result<&'a Cluster, ApiError> {
    st.clusters
        .get(&State::cluster_name(reference))
        .ok_or_else(cluster_not_found)
}

fn cluster_json(st: &State, c: &Cluster, with_tags: bool) -> Value {
    let services = st
        .services
        .values()
        .filter(|s| s.cluster_arn == c.arn && s.active)
        .count();
    let running = st
        .tasks
        .values()
        .filter(|t| t.cluster_arn == c.arn && t.status == TaskStatus::Running)
        .count();
    let pending = st
        .tasks
        .values()
        .filter(|t| t.cluster_arn == c.arn && t.status < TaskStatus::Running)
        .count();
    let mut v = json!({
        "clusterArn": c.arn,
        "clusterName": c.name,
        "status": "ACTIVE",
        "registeredContainerInstancesCount": 0,
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "activeServicesCount": services,
        "statistics": [],
        "settings": [{"name": "containerInsights", "value": "disabled"}],
        "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
        "defaultCapacityProviderStrategy": [],
    });
    if with_tags {
        v["tags"] = tags_json(&c.tags);
    }
    v
}

fn create_cluster(req: Request, st: &mut State) -> ApiResult {
    let name = req.opt_str("clusterName")?.unwrap_or("default").to_owned();
    check_name(&name, "clusterName")?;
    let tags = req.tags("tags")?;
    let arn = st.arn(&format!("cluster/{name}"));
    let c = st.clusters.entry(name.clone()).or_insert_with(|| Cluster {
        arn,
        name,
        tags: Vec::new(),
    });
    merge_tags(&mut c.tags, tags);
    let c = c.clone();
    Ok(json!({ "cluster": cluster_json(st, &c, true) }))
}

fn describe_clusters(req: Request, st: &mut State) -> ApiResult {
    let names = req
        .opt_strings("clusters")?
        .unwrap_or_else(|| vec!["default".into()]);
    let with_tags = req
        .opt_strings("include")?
        .unwrap_or_default()
        .iter()
        .any(|i| i == "TAGS");
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for n in names {
        match st.clusters.get(&State::cluster_name(Some(&n))) {
            Some(c) => clusters.push(cluster_json(st, c, with_tags)),
            None => failures.push(json!({"arn": n, "reason": "MISSING"})),
        }
    }
    Ok(json!({ "clusters": clusters, "failures": failures }))
}

fn check_name(name: &str, member: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{member} can have up to 255 characters: letters (upper and lower case), numbers, underscores and hyphens"
        )))
    }
}

fn register_task_definition(req: Request, st: &mut State, now: f64) -> ApiResult {
    let family = req.str("family")?.to_owned();
    check_name(&family, "family")?;
    let tags = req.tags("tags")?;
    let containers = req
        .opt_array("containerDefinitions")?
        .ok_or_else(|| Request::missing("containerDefinitions"))?;
    if containers.is_empty() {
        return Err(ApiError::client("Container list cannot be empty."));
    }
    let mut names = Vec::new();
    for c in containers {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(ApiError::client("Container name must be specified."));
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::client(format!(
                "Container.image should not be null or empty. (container {name})"
            )));
        }
        if names.contains(&name) {
            return Err(ApiError::client(format!(
                "Duplicate container name: {name}"
            )));
        }
        names.push(name);
    }
    let fargate_only = req
        .opt_strings("requiresCompatibilities")?
        .unwrap_or_default()
        .iter()
        .any(|c| c == "FARGATE");
    if fargate_only {
        if req.opt_str("networkMode")? != Some("awsvpc") {
            return Err(ApiError::client(
                "Fargate only supports network mode 'awsvpc'.",
            ));
        }
        let cpu = req.opt_str("cpu")?;
        let memory = req.opt_str("memory")?;
        let (Some(cpu), Some(memory)) = (cpu, memory) else {
            return Err(ApiError::client(
                "Fargate requires that 'cpu' and 'memory' be defined at the task level.",
            ));
        };
        let parsed = cpu.parse::<u32>().ok().zip(memory.parse::<u32>().ok());
        if !parsed.is_some_and(|(c, m)| fargate::is_valid(c, m)) {
            return Err(ApiError::client(format!(
                "No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS documentation for the valid values."
            )));
        }
    }
    let mut body = req.into_members();
    body.remove("tags");
    let revisions = st.task_definitions.entry(family.clone()).or_default();
    let revision = revisions.last().map_or(1, |t| t.revision + 1);
    let arn = format!(
        "arn:aws:ecs:{}:{}:task-definition/{family}:{revision}",
        st.region, st.account
    );
    let td = TaskDefinition {
        arn: arn.clone(),
        family: family.clone(),
        revision,
        active: true,
        registered_at: now,
        deregistered_at: None,
        body,
        tags,
    };
    let out = json!({ "taskDefinition": td_json(&td), "tags": tags_json(&td.tags) });
    st.task_definitions.entry(family).or_default().push(td);
    st.record(now, "task-definition-registered", &arn, "");
    Ok(out)
}

pub fn td_json(td: &TaskDefinition) -> Value {
    let mut v = Value::Object(td.body.clone());
    v["taskDefinitionArn"] = json!(td.arn);
    v["revision"] = json!(td.revision);
    v["status"] = json!(if td.active { "ACTIVE" } else { "INACTIVE" });
    v["registeredAt"] = json!(td.registered_at);
    v["registeredBy"] = json!(format!(
        "arn:aws:iam::{}:root",
        td.arn.split(':').nth(4).unwrap_or("")
    ));
    v["compatibilities"] = json!(["EC2", "FARGATE"]);
    v["requiresAttributes"] = json!([]);
    if let Some(at) = td.deregistered_at {
        v["deregisteredAt"] = json!(at);
    }
    if v.get("volumes").is_none() {
        v["volumes"] = json!([]);
    }
    if v.get("placementConstraints").is_none() {
        v["placementConstraints"] = json!([]);
    }
    v
}

fn unable_to_describe() -> ApiError {
    ApiError::client("Unable to describe task definition.")
}

fn describe_task_definition(req: Request, st: &mut State) -> ApiResult {
    let reference = req.str("taskDefinition")?;
    let with_tags = req
        .opt_strings("include")?
        .unwrap_or_default()
        .iter()
        .any(|i| i == "TAGS");
    let td = st
        .find_task_definition(reference)
        .ok_or_else(unable_to_describe)?;
    let mut out = json!({ "taskDefinition": td_json(td) });
    if with_tags {
        out["tags"] = tags_json(&td.tags);
    }
    Ok(out)
}

fn deregister_task_definition(req: Request, st: &mut State, now: f64) -> ApiResult {
    let reference = req.str("taskDefinition")?;
    if !reference.contains(':') {
        return Err(ApiError::client(
            "Invalid revision number. Number: ".to_owned() + reference,
        ));
    }
    let arn = st
        .find_task_definition(reference)
        .map(|t| t.arn.clone())
        .ok_or_else(|| ApiError::client("The specified task definition does not exist."))?;
    let td = st
        .task_definitions
        .values_mut()
        .flat_map(|v| v.iter_mut())
        .find(|t| t.arn == arn)
        .expect("found above");
    if td.active {
        td.active = false;
        td.deregistered_at = Some(now);
    }
    let out = json!({ "taskDefinition": td_json(td) });
    st.record(now, "task-definition-deregistered", &arn, "");
    Ok(out)
}

/// Pages `items` by `maxResults` (1 to `max`, `max` when absent) and an opaque
/// `nextToken` (the start index).
pub(super) fn page<T: serde::Serialize>(
    req: &Request,
    items: Vec<T>,
    member: &str,
    max: usize,
) -> ApiResult {
    page_sized(req, items, member, max, max)
}

/// [`page`] with `default` items per page when `maxResults` is absent.
pub(super) fn page_sized<T: serde::Serialize>(
    req: &Request,
    items: Vec<T>,
    member: &str,
    max: usize,
    default: usize,
) -> ApiResult {
    let start = match req.opt_str("nextToken")? {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("Invalid token"))?,
        None => 0,
    };
    let limit = match req.opt_i64("maxResults")? {
        Some(n) if (1..=max as i64).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "maxResults must be between 1 and {max}"
            )));
        }
        None => default,
    };
    let end = (start + limit).min(items.len());
    let mut out = json!({ member: items.get(start.min(items.len())..end).unwrap_or_default() });
    if end < items.len() {
        out["nextToken"] = json!(end.to_string());
    }
    Ok(out)
}

fn list_task_definitions(req: Request, st: &mut State) -> ApiResult {
    let prefix = req.opt_str("familyPrefix")?.unwrap_or("");
    let want_active = match req.opt_str("status")?.unwrap_or("ACTIVE") {
        "ACTIVE" => true,
        "INACTIVE" => false,
        other => return Err(ApiError::invalid(format!("Invalid status: {other}"))),
    };
    let mut arns: Vec<(String, u32, String)> = st
        .task_definitions
        .values()
        .flatten()
        .filter(|t| t.family.starts_with(prefix) && t.active == want_active)
        .map(|t| (t.family.clone(), t.revision, t.arn.clone()))
        .collect();
    arns.sort();
    if req.opt_str("sort")? == Some("DESC") {
        arns.reverse();
    }
    page(
        &req,
        arns.into_iter().map(|a| a.2).collect(),
        "taskDefinitionArns",
        100,
    )
}

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

fn create_service(req: Request, st: &mut State, now: f64) -> ApiResult {
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

fn update_service(req: Request, st: &mut State, now: f64) -> ApiResult {
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

fn describe_services(req: Request, st: &mut State) -> ApiResult {
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

fn list_tasks(req: Request, st: &mut State) -> ApiResult {
    let c = cluster(st, req.opt_str("cluster")?)?.arn.clone();
    let service = req
        .opt_str("serviceName")?
        .map(|s| s.rsplit('/').next().unwrap_or(s).to_owned());
    if let Some(s) = &service {
        let cname = State::cluster_name(req.opt_str("cluster")?);
        if !st.services.contains_key(&(cname, s.clone())) {
            return Err(service_not_found());
        }
    }
    let want_stopped = match req.opt_str("desiredStatus")?.unwrap_or("RUNNING") {
        "RUNNING" | "PENDING" => false,
        "STOPPED" => true,
        other => return Err(ApiError::invalid(format!("Invalid desiredStatus: {other}"))),
    };
    let family = req.opt_str("family")?;
    let started_by = req.opt_str("startedBy")?;
    let mut tasks: Vec<&Task> = st
        .tasks
        .values()
        .filter(|t| t.cluster_arn == c)
        .filter(|t| t.desired_running != want_stopped)
        .filter(|t| {
            service
                .as_ref()
                .is_none_or(|s| t.service.as_ref().is_some_and(|(n, _)| n == s))
        })
        .filter(|t| {
            family.is_none_or(|f| t.task_definition.contains(&format!("task-definition/{f}:")))
        })
        .filter(|t| started_by.is_none_or(|b| t.service.as_ref().is_some_and(|(_, d)| d == b)))
        .collect();
    tasks.sort_by(|a, b| a.created_at.total_cmp(&b.created_at).then(a.id.cmp(&b.id)));
    page(
        &req,
        tasks.into_iter().map(|t| t.arn.clone()).collect(),
        "taskArns",
        100,
    )
}

pub fn task_json(st: &State, t: &Task, with_tags: bool) -> Value {
    let td = st.find_task_definition(&t.task_definition);
    let attachment_id = format!("{}-eni", &t.id[..8]);
    let running = t.status == TaskStatus::Running;
    let containers: Vec<Value> = td
        .map(|td| td.containers())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let essential = c.get("essential").and_then(Value::as_bool).unwrap_or(true);
            let last = if !essential && t.status >= TaskStatus::Running {
                "STOPPED"
            } else {
                t.status.as_str()
            };
            let mut v = json!({
                "containerArn": st.arn(&format!("container/{}/{}/{}", t.cluster_arn.rsplit('/').next().unwrap_or(""), t.id, name)),
                "taskArn": t.arn,
                "name": name,
                "image": c.get("image").cloned().unwrap_or(json!("")),
                "lastStatus": last,
                "networkInterfaces": [{"attachmentId": attachment_id, "privateIpv4Address": t.ip.to_string()}],
                "healthStatus": if essential { t.health.as_str() } else { "UNKNOWN" },
                "cpu": "0",
            });
            if !essential && t.status >= TaskStatus::Running {
                v["exitCode"] = json!(0);
            } else if let Some(code) = t.exit_code.filter(|_| t.status == TaskStatus::Stopped) {
                v["exitCode"] = json!(code);
                if let Some(r) = &t.stopped_reason {
                    v["reason"] = json!(r);
                }
            }
            v
        })
        .collect();
    let mut v = json!({
        "attachments": [{
            "id": attachment_id,
            "type": "ElasticNetworkInterface",
            "status": if t.status == TaskStatus::Stopped { "DELETED" } else if running { "ATTACHED" } else { "PRECREATED" },
            "details": [
                {"name": "subnetId", "value": t.subnet},
                {"name": "networkInterfaceId", "value": format!("eni-{}", &t.id[..17])},
                {"name": "macAddress", "value": "02:00:00:00:00:01"},
                {"name": "privateDnsName", "value": format!("ip-{}.ec2.internal", t.ip.to_string().replace('.', "-"))},
                {"name": "privateIPv4Address", "value": t.ip.to_string()},
            ],
        }],
        "availabilityZone": format!("{}a", st.region),
        "clusterArn": t.cluster_arn,
        "connectivity": "CONNECTED",
        "containers": containers,
        "cpu": t.cpu,
        "memory": t.memory,
        "createdAt": t.created_at,
        "desiredStatus": if t.desired_running { "RUNNING" } else { "STOPPED" },
        "healthStatus": t.health.as_str(),
        "lastStatus": t.status.as_str(),
        "launchType": "FARGATE",
        "platformVersion": "1.4.0",
        "platformFamily": "Linux",
        "taskArn": t.arn,
        "taskDefinitionArn": t.task_definition,
        "version": 1,
        "overrides": {"containerOverrides": [], "inferenceAcceleratorOverrides": []},
        "ephemeralStorage": {"sizeInGiB": 20},
    });
    if let Some((service, deployment)) = &t.service {
        v["group"] = json!(format!("service:{service}"));
        v["startedBy"] = json!(deployment);
    }
    for (member, at) in [
        ("pullStartedAt", t.pull_started_at),
        ("pullStoppedAt", t.pull_stopped_at),
        ("startedAt", t.started_at),
        ("stoppingAt", t.stopping_at),
        ("stoppedAt", t.stopped_at),
    ] {
        if let Some(at) = at {
            v[member] = json!(at);
        }
    }
    if let Some(r) = &t.stopped_reason {
        v["stoppedReason"] = json!(r);
    }
    if let Some(c) = t.stop_code {
        v["stopCode"] = json!(c);
    }
    if with_tags {
        v["tags"] = tags_json(&t.tags);
    }
    v
}

fn find_task<'a>(st: &'a State, cluster_arn: &str, reference: &str) -> Option<&'a Task> {
    let id = reference.rsplit('/').next().unwrap_or(reference);
    st.tasks.get(id).filter(|t| t.cluster_arn == cluster_arn)
}

fn describe_tasks(req: Request, st: &mut State) -> ApiResult {
    let c = cluster(st, req.opt_str("cluster")?)?.arn.clone();
    let refs = req
        .opt_strings("tasks")?
        .ok_or_else(|| Request::missing("tasks"))?;
    if refs.len() > 100 {
        return Err(ApiError::invalid("tasks can have at most 100 items"));
    }
    let with_tags = req
        .opt_strings("include")?
        .unwrap_or_default()
        .iter()
        .any(|i| i == "TAGS");
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for r in refs {
        match find_task(st, &c, &r) {
            Some(t) => tasks.push(task_json(st, t, with_tags)),
            None => failures.push(json!({"arn": r, "reason": "MISSING"})),
        }
    }
    Ok(json!({ "tasks": tasks, "failures": failures }))
}

fn stop_task(req: Request, st: &mut State, now: f64) -> ApiResult {
    let c = cluster(st, req.opt_str("cluster")?)?.arn.clone();
    let reference = req.str("task")?.to_owned();
    let reason = req
        .opt_str("reason")?
        .unwrap_or("Task stopped by user")
        .to_owned();
    let id = find_task(st, &c, &reference)
        .map(|t| t.id.clone())
        .ok_or_else(|| ApiError::invalid("The referenced task was not found."))?;
    super::engine::begin_stop(st, &id, now, &reason, "UserInitiated", None);
    let t = st.tasks.get(&id).expect("exists");
    Ok(json!({ "task": task_json(st, t, false) }))
}

/// The tags of the resource named by an ARN.
fn tags_of<'a>(st: &'a mut State, arn: &str) -> Result<&'a mut Vec<(String, String)>, ApiError> {
    let not_found = || {
        ApiError::new(
            400,
            "ResourceNotFoundException",
            "The specified resource could not be found.",
        )
    };
    let resource = arn
        .splitn(6, ':')
        .nth(5)
        .filter(|_| arn.starts_with("arn:aws:ecs:"))
        .ok_or_else(|| ApiError::invalid("Invalid ARN."))?
        .to_owned();
    let (kind, rest) = resource
        .split_once('/')
        .ok_or_else(|| ApiError::invalid("Invalid ARN."))?;
    match kind {
        "cluster" => st
            .clusters
            .get_mut(rest)
            .map(|c| &mut c.tags)
            .ok_or_else(cluster_not_found),
        "service" => {
            let (cluster, name) = rest
                .split_once('/')
                .ok_or_else(|| ApiError::invalid("Invalid ARN."))?;
            st.services
                .get_mut(&(cluster.to_owned(), name.to_owned()))
                .map(|s| &mut s.tags)
                .ok_or_else(service_not_found)
        }
        "task-definition" => st
            .task_definitions
            .values_mut()
            .flatten()
            .find(|t| t.arn == arn)
            .map(|t| &mut t.tags)
            .ok_or_else(not_found),
        "task-set" => {
            let mut parts = rest.splitn(3, '/');
            let (Some(cluster), Some(service), Some(_)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(ApiError::invalid("Invalid ARN."));
            };
            st.services
                .get_mut(&(cluster.to_owned(), service.to_owned()))
                .and_then(|s| s.task_sets.iter_mut().find(|t| t.arn == arn))
                .map(|t| &mut t.tags)
                .ok_or_else(not_found)
        }
        "task" => {
            let id = rest.rsplit('/').next().unwrap_or(rest);
            st.tasks
                .get_mut(id)
                .map(|t| &mut t.tags)
                .ok_or_else(not_found)
        }
        _ => Err(ApiError::invalid("Invalid ARN.")),
    }
}

fn tag_resource(req: Request, st: &mut State, now: f64) -> ApiResult {
    let arn = req.str("resourceArn")?.to_owned();
    let tags = req.tags("tags")?;
    if tags.is_empty() {
        return Err(Request::missing("tags"));
    }
    let detail: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let existing = tags_of(st, &arn)?;
    // Checked before anything changes: a refused call leaves the tags as they were.
    let mut merged = existing.clone();
    merge_tags(&mut merged, tags);
    if merged.len() > 50 {
        return Err(ApiError::invalid("A resource can have at most 50 tags."));
    }
    *existing = merged;
    st.record(now, "tagged", &arn, detail.join(" "));
    Ok(json!({}))
}

fn untag_resource(req: Request, st: &mut State) -> ApiResult {
    let arn = req.str("resourceArn")?.to_owned();
    let keys = req
        .opt_strings("tagKeys")?
        .ok_or_else(|| Request::missing("tagKeys"))?;
    tags_of(st, &arn)?.retain(|(k, _)| !keys.contains(k));
    Ok(json!({}))
}

fn list_tags(req: Request, st: &mut State) -> ApiResult {
    let arn = req.str("resourceArn")?.to_owned();
    let tags = tags_of(st, &arn)?.clone();
    Ok(json!({ "tags": tags_json(&tags) }))
}
