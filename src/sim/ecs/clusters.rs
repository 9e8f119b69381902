//! Clusters: CreateCluster, DescribeClusters.

use serde_json::{Value, json};

use super::check_name;
use crate::sim::api::{ApiResult, Request, merge_tags, tags_json};
use crate::sim::state::{Cluster, State, TaskStatus};

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

pub(super) fn create_cluster(req: Request, st: &mut State) -> ApiResult {
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

pub(super) fn describe_clusters(req: Request, st: &mut State) -> ApiResult {
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
