//! The ECS API (JSON 1.1, `AmazonEC2ContainerServiceV20141113.<Operation>`):
//! the operations the daemon, the AWS CLI and the tests call, with AWS's
//! member names, ARNs, timestamps (epoch seconds) and errors. One file per resource; this
//! one dispatches and holds what they share (the not-found errors, names, paging).

mod clusters;
mod service_deployments;
mod services;
mod tags;
mod task_definitions;
mod task_sets;
mod tasks;

use serde_json::json;

use super::api::{ApiError, ApiResult, Request};
use super::state::{Cluster, State};
use clusters::{create_cluster, describe_clusters};
use services::{create_service, describe_services, update_service};
use tags::{list_tags, tag_resource, untag_resource};
use task_definitions::{
    deregister_task_definition, describe_task_definition, list_task_definitions,
    register_task_definition,
};
use tasks::{describe_tasks, list_tasks, stop_task};

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
