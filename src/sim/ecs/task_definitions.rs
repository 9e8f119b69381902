//! Task definitions: RegisterTaskDefinition, DescribeTaskDefinition,
//! DeregisterTaskDefinition, ListTaskDefinitions.

use serde_json::{Value, json};

use super::{check_name, page};
use crate::model::fargate;
use crate::sim::api::{ApiError, ApiResult, Request, tags_json};
use crate::sim::state::{State, TaskDefinition};

pub(super) fn register_task_definition(req: Request, st: &mut State, now: f64) -> ApiResult {
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

pub(super) fn describe_task_definition(req: Request, st: &mut State) -> ApiResult {
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

pub(super) fn deregister_task_definition(req: Request, st: &mut State, now: f64) -> ApiResult {
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

pub(super) fn list_task_definitions(req: Request, st: &mut State) -> ApiResult {
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
