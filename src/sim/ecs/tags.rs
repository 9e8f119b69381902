//! Tags of any resource by ARN: TagResource, UntagResource, ListTagsForResource.

use serde_json::json;

use super::{cluster_not_found, service_not_found};
use crate::sim::api::{ApiError, ApiResult, Request, merge_tags, tags_json};
use crate::sim::state::State;

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

pub(super) fn tag_resource(req: Request, st: &mut State, now: f64) -> ApiResult {
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

pub(super) fn untag_resource(req: Request, st: &mut State) -> ApiResult {
    let arn = req.str("resourceArn")?.to_owned();
    let keys = req
        .opt_strings("tagKeys")?
        .ok_or_else(|| Request::missing("tagKeys"))?;
    tags_of(st, &arn)?.retain(|(k, _)| !keys.contains(k));
    Ok(json!({}))
}

pub(super) fn list_tags(req: Request, st: &mut State) -> ApiResult {
    let arn = req.str("resourceArn")?.to_owned();
    let tags = tags_of(st, &arn)?.clone();
    Ok(json!({ "tags": tags_json(&tags) }))
}
