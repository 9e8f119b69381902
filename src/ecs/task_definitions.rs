//! Task definitions: describe, register, list a family's revisions, deregister.

use std::collections::BTreeMap;

use aws_sdk_ecs::types as sdk;

use super::error::classify;
use super::tags::tags_map;
use super::{Aws, EcsError, convert, n};
use crate::model::ids::TaskDefinitionArn;
use crate::model::task_definition::TaskDefinition;

/// A registered task definition: what the rollout needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDefinitionState {
    pub arn: String,
    pub family: String,
    pub revision: u32,
    pub active: bool,
    pub image: String,
    /// Container name → image, environment, for `plan`.
    pub containers: Vec<(String, String, BTreeMap<String, String>)>,
    pub cpu: String,
    pub memory: String,
    pub tags: BTreeMap<String, String>,
}

impl Aws {
    pub async fn describe_task_definition(
        &self,
        reference: &str,
    ) -> Result<TaskDefinitionState, EcsError> {
        const OP: &str = "DescribeTaskDefinition";
        let out = self
            .call(OP, || async {
                self.ecs
                    .describe_task_definition()
                    .task_definition(reference)
                    .include(sdk::TaskDefinitionField::Tags)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        let td = out.task_definition().ok_or(EcsError::Incomplete {
            op: OP,
            what: "taskDefinition",
        })?;
        let containers: Vec<(String, String, BTreeMap<String, String>)> = td
            .container_definitions()
            .iter()
            .map(|c| {
                let env = c
                    .environment()
                    .iter()
                    .filter_map(|kv| {
                        Some((kv.name()?.to_owned(), kv.value().unwrap_or("").to_owned()))
                    })
                    .collect();
                (
                    c.name().unwrap_or_default().to_owned(),
                    c.image().unwrap_or_default().to_owned(),
                    env,
                )
            })
            .collect();
        let image = td
            .container_definitions()
            .iter()
            .find(|c| c.essential().unwrap_or(true))
            .and_then(|c| c.image())
            .unwrap_or_default()
            .to_owned();
        Ok(TaskDefinitionState {
            arn: td.task_definition_arn().unwrap_or_default().to_owned(),
            family: td.family().unwrap_or_default().to_owned(),
            revision: n(td.revision()),
            active: td.status().is_none_or(|s| s.as_str() == "ACTIVE"),
            image,
            containers,
            cpu: td.cpu().unwrap_or_default().to_owned(),
            memory: td.memory().unwrap_or_default().to_owned(),
            tags: tags_map(out.tags()),
        })
    }

    /// Registers a task definition with extra tags; returns its ARN.
    pub async fn register_task_definition(
        &self,
        td: &TaskDefinition,
        tags: &[(String, String)],
    ) -> Result<String, EcsError> {
        const OP: &str = "RegisterTaskDefinition";
        let out = self
            .call(OP, || async {
                convert::register(self.ecs.register_task_definition(), td, tags)?
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_owned)
            .ok_or(EcsError::Incomplete {
                op: OP,
                what: "taskDefinitionArn",
            })
    }

    /// ACTIVE revisions of a family, oldest first.
    pub async fn task_definitions(&self, family: &str) -> Result<Vec<String>, EcsError> {
        const OP: &str = "ListTaskDefinitions";
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .call(OP, || async {
                    self.ecs
                        .list_task_definitions()
                        .family_prefix(family)
                        .status(sdk::TaskDefinitionStatus::Active)
                        .sort(sdk::SortOrder::Asc)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify(OP, e))
                })
                .await?;
            // A prefix also matches longer families: keep this family only.
            arns.extend(
                out.task_definition_arns()
                    .iter()
                    .filter(|a| TaskDefinitionArn::parse(a).is_ok_and(|t| t.family() == family))
                    .cloned(),
            );
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(arns);
            }
        }
    }

    pub async fn deregister(&self, arn: &str) -> Result<(), EcsError> {
        const OP: &str = "DeregisterTaskDefinition";
        self.call(OP, || async {
            self.ecs
                .deregister_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }
}
