//! The cluster-wide read of the per-cluster observer: every RUNNING-desired task of a cluster
//! with one paginated ListTasks (no service filter) and DescribeTasks in batches of 100, so
//! that the calls grow with the clusters and their tasks, not with the targets.

use std::collections::BTreeMap;

use aws_sdk_ecs::types as sdk;

use super::error::classify;
use super::tasks::{TaskState, task_state};
use super::{Aws, EcsError};

/// ECS's largest ListTasks page and DescribeTasks batch.
const PAGE: usize = 100;
/// A cluster holds at most 5,000 tasks per service, and a daemon watches a few services per
/// cluster; a read that has not ended after this many pages is not a cluster we can watch
/// this way (and a token that never ends must not keep the observer listing forever).
const MAX_PAGES: usize = 200;

/// The RUNNING-desired tasks of a cluster, by the service that started them.
pub type TasksByService = BTreeMap<String, Vec<TaskState>>;

/// The service a task belongs to, from its `group`: ECS sets `service:<name>` on the tasks a
/// service starts, those of its task sets included; standalone tasks have another group.
fn service_of(group: Option<&str>) -> Option<&str> {
    group?.strip_prefix("service:")
}

impl Aws {
    /// Every RUNNING-desired task of `cluster`, described, by service (tasks no service
    /// started are left out).
    pub async fn cluster_tasks(&self, cluster: &str) -> Result<TasksByService, EcsError> {
        let arns = self.cluster_task_arns(cluster).await?;
        let mut by_service = TasksByService::new();
        for chunk in arns.chunks(PAGE) {
            for t in self.describe_task_batch(cluster, chunk).await? {
                if let Some(service) = service_of(t.group()) {
                    by_service
                        .entry(service.to_owned())
                        .or_default()
                        .push(task_state(&t));
                }
            }
        }
        Ok(by_service)
    }

    /// ListTasks of the whole cluster (desired status RUNNING), page by page.
    async fn cluster_task_arns(&self, cluster: &str) -> Result<Vec<String>, EcsError> {
        const LIST: &str = "ListTasks";
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .call(LIST, || async {
                    self.ecs
                        .list_tasks()
                        .cluster(cluster)
                        .desired_status(sdk::DesiredStatus::Running)
                        .max_results(PAGE as i32)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify(LIST, e))
                })
                .await?;
            arns.extend(out.task_arns().iter().cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(arns);
            }
        }
        Err(EcsError::Incomplete {
            op: LIST,
            what: "last page within 200 pages",
        })
    }

    /// DescribeTasks of at most [`PAGE`] tasks.
    async fn describe_task_batch(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<sdk::Task>, EcsError> {
        const DESCRIBE: &str = "DescribeTasks";
        let out = self
            .call(DESCRIBE, || async {
                self.ecs
                    .describe_tasks()
                    .cluster(cluster)
                    .set_tasks(Some(arns.to_vec()))
                    .send()
                    .await
                    .map_err(|e| classify(DESCRIBE, e))
            })
            .await?;
        Ok(out.tasks().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::service_of;

    #[test]
    fn a_task_belongs_to_the_service_its_group_names() {
        assert_eq!(service_of(Some("service:ag")), Some("ag"));
        assert_eq!(service_of(Some("family:ag")), None);
        assert_eq!(service_of(None), None);
    }
}
