//! Tasks: listed by service and desired status, then described.

use aws_sdk_ecs::types as sdk;

use super::error::classify;
use super::{Aws, EcsError};
use crate::model::ids::TaskArn;

/// The addresses of the RUNNING tasks among `tasks`, of `revision` only when given.
pub fn running_ips(tasks: Vec<TaskState>, revision: Option<&str>) -> Vec<String> {
    tasks
        .into_iter()
        .filter(|t| t.last_status == "RUNNING")
        .filter(|t| revision.is_none_or(|r| t.task_definition == r))
        .filter_map(|t| t.ip)
        .collect()
}

/// A task as the rollout engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub arn: String,
    /// The last part of the ARN, parsed once where the task is described.
    id: String,
    pub task_definition: String,
    pub last_status: String,
    pub desired_status: String,
    pub health: String,
    pub ip: Option<String>,
    /// Seconds since the epoch.
    pub created_at: Option<f64>,
    pub started_at: Option<f64>,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<String>,
    /// Who started the task: a task set's id for the tasks of an EXTERNAL service.
    pub started_by: Option<String>,
    /// Container name → exit code.
    pub exit_codes: Vec<(String, i32)>,
}

impl TaskState {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A RUNNING task at `ip`, for tests of what reads tasks.
    #[cfg(test)]
    pub fn running_at(id: &str, ip: &str) -> TaskState {
        TaskState {
            arn: format!("arn:aws:ecs:us-east-1:123456789012:task/c/{id}"),
            id: id.to_owned(),
            task_definition: String::new(),
            last_status: "RUNNING".into(),
            desired_status: "RUNNING".into(),
            health: String::new(),
            ip: Some(ip.to_owned()),
            created_at: None,
            started_at: None,
            stopped_reason: None,
            stop_code: None,
            started_by: None,
            exit_codes: Vec::new(),
        }
    }
}

impl Aws {
    /// The service's tasks, RUNNING-desired or STOPPED-desired, described.
    pub async fn tasks(
        &self,
        cluster: &str,
        service: &str,
        stopped: bool,
    ) -> Result<Vec<TaskState>, EcsError> {
        const LIST: &str = "ListTasks";
        const DESCRIBE: &str = "DescribeTasks";
        let status = if stopped {
            sdk::DesiredStatus::Stopped
        } else {
            sdk::DesiredStatus::Running
        };
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .call(LIST, || async {
                    self.ecs
                        .list_tasks()
                        .cluster(cluster)
                        .service_name(service)
                        .desired_status(status.clone())
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify(LIST, e))
                })
                .await?;
            arns.extend(out.task_arns().iter().cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut tasks = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .call(DESCRIBE, || async {
                    self.ecs
                        .describe_tasks()
                        .cluster(cluster)
                        .set_tasks(Some(chunk.to_vec()))
                        .send()
                        .await
                        .map_err(|e| classify(DESCRIBE, e))
                })
                .await?;
            tasks.extend(out.tasks().iter().map(task_state));
        }
        Ok(tasks)
    }
}

/// A described task as the engine sees it (also the cluster-wide read's, `cluster`).
pub(super) fn task_state(t: &sdk::Task) -> TaskState {
    let arn = t.task_arn().unwrap_or_default();
    TaskState {
        arn: arn.to_owned(),
        // An ARN ECS never sends (unparsable) names the task by the whole ARN.
        id: TaskArn::parse(arn).map_or_else(|_| arn.to_owned(), |a| a.id().to_owned()),
        task_definition: t.task_definition_arn().unwrap_or_default().to_owned(),
        last_status: t.last_status().unwrap_or_default().to_owned(),
        desired_status: t.desired_status().unwrap_or_default().to_owned(),
        health: t
            .health_status()
            .map(|h| h.as_str().to_owned())
            .unwrap_or_default(),
        ip: t
            .attachments()
            .iter()
            .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
            .flat_map(|a| a.details())
            .find(|d| d.name() == Some("privateIPv4Address"))
            .and_then(|d| d.value())
            .map(str::to_owned),
        created_at: t.created_at().map(|d| d.as_secs_f64()),
        started_at: t.started_at().map(|d| d.as_secs_f64()),
        stopped_reason: t.stopped_reason().map(str::to_owned),
        stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
        started_by: t.started_by().map(str::to_owned),
        exit_codes: t
            .containers()
            .iter()
            .filter_map(|c| Some((c.name()?.to_owned(), c.exit_code()?)))
            .collect(),
    }
}
