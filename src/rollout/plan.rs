//! `plan`: the step a reconcile would take next (`decide`'s answer, in words), and how the
//! desired revision differs from the running one. Changes nothing.

use std::collections::BTreeMap;

use super::decide::{Pass, decide};
use super::{Engine, EnvironmentCheck, RolloutError, Strategy, quarantine_key, tags};
use crate::model::task_definition::TaskDefinition;

/// What `plan` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What version discovery found and passed over, when it is configured.
    pub versions: Vec<String>,
    pub running: Option<String>,
    pub last_good: Option<String>,
    pub in_flight: Option<String>,
    pub desired_image: String,
    pub desired_hash: String,
    /// Human-readable differences; empty when nothing would change.
    pub changes: Vec<String>,
    pub quarantined: bool,
    /// How the service rolls: its controller's, or the config's for a service to create.
    pub strategy: Strategy,
    /// The step a reconcile would take next (`decide`'s answer, in words).
    pub next_step: String,
    /// For a rolling service: what `rollout --migrate` would do.
    pub migration: Option<String>,
    /// The Dynatrace-side check, in words (`None`: off, the HTTPS probes alone judge).
    pub dynatrace: Option<String>,
}

impl Engine {
    /// What a reconcile would do next (the step `decide` returns, which a reconcile would
    /// take), and how the desired revision differs from the running one; changes nothing.
    pub async fn plan(&self, image: Option<&str>) -> Result<Plan, RolloutError> {
        let observed = self.observe().await?;
        let (desired, versions) = self.desired(image, &observed).await?;
        let step = decide(
            observed.service.as_ref(),
            observed.running_hash(),
            self.wanted(&desired),
            &Pass::default(),
        );
        let mut changes = Vec::new();
        let (running, last_good, in_flight, quarantined, strategy) = match (
            &observed.service,
            &observed.running,
        ) {
            (Some(s), Some(current)) => {
                if current.tags.get(tags::HASH) != Some(&desired.hash) {
                    changes.extend(diff(current, &desired.td));
                    if changes.is_empty() {
                        changes.push("the task definition differs in fields not shown (content hash changed)".into());
                    }
                }
                (
                    Some(current.arn.clone()),
                    s.tags.get(tags::LAST_GOOD).cloned(),
                    s.tags.get(tags::ROLLOUT_TO).cloned(),
                    s.tags.get(&quarantine_key(&desired.image)) == Some(&desired.image),
                    if s.external {
                        Strategy::BlueGreen
                    } else {
                        Strategy::Rolling
                    },
                )
            }
            (s, _) => {
                changes.push(format!(
                    "create {} with a new revision of {}",
                    if s.is_some() {
                        "the service's first task set"
                    } else {
                        "the service"
                    },
                    desired.td.family
                ));
                (
                    None,
                    s.as_ref()
                        .and_then(|s| s.tags.get(tags::LAST_GOOD).cloned()),
                    s.as_ref()
                        .and_then(|s| s.tags.get(tags::ROLLOUT_TO).cloned()),
                    false,
                    if s.as_ref().is_some_and(|s| !s.external) {
                        Strategy::Rolling
                    } else {
                        self.spec.strategy
                    },
                )
            }
        };
        Ok(Plan {
            versions,
            running,
            last_good,
            in_flight,
            desired_image: desired.image,
            desired_hash: desired.hash,
            changes,
            quarantined,
            strategy,
            next_step: step.to_string(),
            migration: observed
                .service
                .as_ref()
                .filter(|s| !s.external)
                .map(|s| self.migration_text(&s.name)),
            dynatrace: self
                .spec
                .environment
                .as_ref()
                .map(EnvironmentCheck::describe),
        })
    }
}

/// Field differences between a registered revision and the desired document.
fn diff(current: &crate::ecs::TaskDefinitionState, desired: &TaskDefinition) -> Vec<String> {
    let mut out = Vec::new();
    if current.cpu != desired.cpu || current.memory != desired.memory {
        out.push(format!(
            "task size: cpu {} / memory {} → cpu {} / memory {}",
            current.cpu, current.memory, desired.cpu, desired.memory
        ));
    }
    for c in &desired.container_definitions {
        let Some((_, image, env)) = current.containers.iter().find(|(n, ..)| *n == c.name) else {
            out.push(format!("container {}: added", c.name));
            continue;
        };
        if *image != c.image {
            out.push(format!("container {}: image {image} → {}", c.name, c.image));
        }
        let want: BTreeMap<&str, &str> = c
            .environment
            .iter()
            .map(|kv| (kv.name.as_str(), kv.value.as_str()))
            .collect();
        for (k, v) in &want {
            match env.get(*k) {
                None => out.push(format!("container {}: environment {k} added: {v}", c.name)),
                Some(old) if old != v => out.push(format!(
                    "container {}: environment {k}: {old} → {v}",
                    c.name
                )),
                _ => {}
            }
        }
        for k in env.keys().filter(|k| !want.contains_key(k.as_str())) {
            out.push(format!("container {}: environment {k} removed", c.name));
        }
    }
    for (name, ..) in &current.containers {
        if !desired
            .container_definitions
            .iter()
            .any(|c| c.name == *name)
        {
            out.push(format!("container {name}: removed"));
        }
    }
    out
}
