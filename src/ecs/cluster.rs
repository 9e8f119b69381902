//! The cluster-wide read of the per-cluster observer: every RUNNING-desired task of a cluster
//! with one paginated ListTasks (no service filter) and DescribeTasks in batches of 100, and
//! the services it watches with DescribeServices in batches of 10, so that the calls grow
//! with the clusters and their tasks (and a tenth of the services), not with the targets.

use std::collections::BTreeMap;

use aws_sdk_ecs::types as sdk;

use super::error::classify;
use super::services::service_state;
use super::tasks::{TaskState, task_state};
use super::{Aws, EcsError, ServiceState};

/// ECS's largest ListTasks page and DescribeTasks batch.
const PAGE: usize = 100;
/// ECS's largest DescribeServices batch: it refuses more with InvalidParameterException.
pub const SERVICES_PER_CALL: usize = 10;
/// A cluster holds at most 5,000 tasks per service, and a daemon watches a few services per
/// cluster; a read that has not ended after this many pages is not a cluster we can watch
/// this way (and a token that never ends must not keep the observer listing forever).
const MAX_PAGES: usize = 200;

/// The RUNNING-desired tasks of a cluster, by the service that started them.
pub type TasksByService = BTreeMap<String, Vec<TaskState>>;

/// What the observer keeps of a service it watches: what its targets' monitors need.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSummary {
    pub arn: String,
    /// ACTIVE or DRAINING (an INACTIVE service is read as no service).
    pub status: String,
    pub desired_count: u32,
    pub running_count: u32,
    pub tags: BTreeMap<String, String>,
}

impl From<ServiceState> for ServiceSummary {
    fn from(s: ServiceState) -> ServiceSummary {
        ServiceSummary {
            arn: s.arn,
            status: s.status,
            desired_count: s.desired_count,
            running_count: s.running_count,
            tags: s.tags,
        }
    }
}

/// A read of a cluster's services by name: `None` for one ECS does not have (it answered
/// MISSING, or the service is INACTIVE: deleted). A name ECS answered neither way about is
/// left out — the read says nothing of it.
pub type ServicesByName = BTreeMap<String, Option<ServiceSummary>>;

/// The service a failure names: its ARN's last part (`…:service/<cluster>/<name>`) or the
/// name itself, as it was asked for.
fn failed_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

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

    /// `services` of `cluster` with their tags, DescribeServices in batches of
    /// [`SERVICES_PER_CALL`] (each through the rate budget, as every call).
    pub async fn cluster_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<ServicesByName, EcsError> {
        let mut by_name = ServicesByName::new();
        for chunk in services.chunks(SERVICES_PER_CALL) {
            self.describe_service_batch(cluster, chunk, &mut by_name)
                .await?;
        }
        Ok(by_name)
    }

    /// DescribeServices of at most [`SERVICES_PER_CALL`] services, into `by_name`.
    async fn describe_service_batch(
        &self,
        cluster: &str,
        names: &[String],
        by_name: &mut ServicesByName,
    ) -> Result<(), EcsError> {
        const DESCRIBE: &str = "DescribeServices";
        let out = self
            .call(DESCRIBE, || async {
                self.ecs
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(names.to_vec()))
                    .include(sdk::ServiceField::Tags)
                    .send()
                    .await
                    .map_err(|e| classify(DESCRIBE, e))
            })
            .await?;
        for f in out.failures() {
            if f.reason() == Some("MISSING")
                && let Some(name) = f.arn().map(failed_name)
            {
                by_name.insert(name.to_owned(), None);
            }
        }
        for s in out.services() {
            let s = service_state(s);
            let name = s.name.clone();
            // A deleted service stays INACTIVE in ECS's answers for a while: no service.
            let summary = (s.status != "INACTIVE").then(|| ServiceSummary::from(s));
            by_name.insert(name, summary);
        }
        Ok(())
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
    use super::{failed_name, service_of};

    #[test]
    fn a_failure_names_its_service_by_arn_or_by_name() {
        assert_eq!(
            failed_name("arn:aws:ecs:us-east-1:123456789012:service/obs/ag-01"),
            "ag-01"
        );
        assert_eq!(failed_name("ag-01"), "ag-01");
    }

    #[test]
    fn a_task_belongs_to_the_service_its_group_names() {
        assert_eq!(service_of(Some("service:ag")), Some("ag"));
        assert_eq!(service_of(Some("family:ag")), None);
        assert_eq!(service_of(None), None);
    }
}
