//! Observe and render: one read of the service and the revision it serves, and the desired
//! state (the image given, discovered or configured, rendered into a task definition).

use super::{Engine, RolloutError, content_hash, tags};
use crate::ecs::{EcsError, ServiceState, TaskDefinitionState};
use crate::model::task_definition::TaskDefinition;
use crate::translate;

/// The desired state, rendered.
pub(super) struct Desired {
    pub(super) td: TaskDefinition,
    pub(super) hash: String,
    pub(super) image: String,
}

/// One observation: the service (if it exists) and the revision it serves.
#[derive(Debug, Default)]
pub(super) struct Observed {
    pub(super) service: Option<ServiceState>,
    pub(super) running: Option<TaskDefinitionState>,
}

impl Observed {
    pub(super) fn running_hash(&self) -> Option<&str> {
        self.running
            .as_ref()
            .and_then(|r| r.tags.get(tags::HASH))
            .map(String::as_str)
    }
}

/// The tag of an image reference of `repository` (`repo:tag@digest` → `tag`).
fn tag_of<'a>(image: &'a str, repository: &str) -> Option<&'a str> {
    let rest = image.strip_prefix(repository)?.strip_prefix(':')?;
    Some(rest.split('@').next().unwrap_or(rest))
}

impl Engine {
    /// The image version discovery picks, with notes on what it passed over.
    /// `Ok(None)` when discovery is not configured; on failure the running
    /// image is kept (a failed discovery never fails a running service).
    pub(super) async fn discover(
        &self,
        svc: Option<&ServiceState>,
        running: Option<&TaskDefinitionState>,
    ) -> Result<(Option<String>, Vec<String>), RolloutError> {
        let Some(d) = &self.spec.versions else {
            return Ok((None, Vec::new()));
        };
        let quarantined: Vec<String> = svc
            .map(|s| {
                s.marks()
                    .quarantined_images()
                    .filter_map(|v| tag_of(v, &d.repository).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let found = async {
            let all = match &d.metainfo {
                Some(m) => vec![m.latest().await?],
                None => d.registry.tags().await?,
            };
            let choice = d.policy.choose(
                all.iter().map(String::as_str),
                &quarantined,
                chrono::Utc::now(),
            );
            let mut notes: Vec<String> = choice
                .passed_over
                .iter()
                .map(|(t, r)| format!("{t}: {r}"))
                .collect();
            if choice.unparsed > 0 {
                notes.push(format!(
                    "{} tags are not ActiveGate versions",
                    choice.unparsed
                ));
            }
            match choice.chosen {
                None => Ok((None, notes)),
                Some(v) => {
                    let digest = d.registry.digest(&v.tag).await?;
                    notes.insert(0, format!("chose {} ({digest})", v.tag));
                    Ok((Some(format!("{}:{}@{digest}", d.repository, v.tag)), notes))
                }
            }
        }
        .await;
        let (notes, error) = match found {
            Ok((Some(image), notes)) => return Ok((Some(image), notes)),
            Ok((None, notes)) => (notes, None),
            Err(e) => (vec![format!("discovery failed: {e}")], Some(e)),
        };
        self.discovery_failures.fetch_add(
            u64::from(error.is_some()),
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::warn!(notes = ?notes, "no version chosen; keeping the running version");
        match running {
            Some(td) => Ok((Some(td.image.clone()), notes)),
            None => match error {
                Some(e) => Err(RolloutError::Discovery(e)),
                None => Ok((None, notes)),
            },
        }
    }

    pub(super) fn render(&self, image: Option<&str>) -> Result<Desired, RolloutError> {
        let mut settings = self.spec.settings.clone();
        if let Some(i) = image {
            settings.image = Some(i.to_owned());
        }
        let t =
            translate::translate(&self.spec.manifest, &settings).map_err(RolloutError::render)?;
        let td = t.task_definition;
        let image = td
            .container_definitions
            .first()
            .map(|c| c.image.clone())
            .unwrap_or_default();
        Ok(Desired {
            hash: content_hash(&td),
            td,
            image,
        })
    }

    pub(super) async fn service(&self) -> Result<Option<ServiceState>, EcsError> {
        self.aws
            .describe_service(&self.spec.cluster, &self.spec.service)
            .await
    }

    /// One read of the service and of the revision it serves (a rolling service's task
    /// definition, an EXTERNAL service's primary task set's).
    pub(super) async fn observe(&self) -> Result<Observed, RolloutError> {
        self.observe_again(None).await
    }

    /// `observe`, reusing the serving revision read by the previous pass when it is still the
    /// one served: a registered revision's content (and so its content hash) never changes, so
    /// the reconcile loop reads each revision once rather than once per step.
    pub(super) async fn observe_again(
        &self,
        previous: Option<TaskDefinitionState>,
    ) -> Result<Observed, RolloutError> {
        let Some(svc) = self.service().await? else {
            return Ok(Observed::default());
        };
        if let Some(to) = svc.tags.get(tags::MIGRATED_TO) {
            return Err(RolloutError::Migrated {
                target: self.spec.target.clone(),
                from: svc.name.clone(),
                to: to.clone(),
            });
        }
        let serving = if svc.external {
            svc.primary_task_set().map(|t| t.task_definition.clone())
        } else {
            Some(svc.task_definition.clone())
        };
        let running = match serving.filter(|s| !s.is_empty()) {
            Some(td) => match previous.filter(|p| p.arn == td) {
                Some(known) => Some(known),
                None => Some(self.aws.describe_task_definition(&td).await?),
            },
            None => None,
        };
        Ok(Observed {
            service: Some(svc),
            running,
        })
    }

    /// The desired state: the image (given, discovered or configured), rendered.
    pub(super) async fn desired(
        &self,
        image: Option<&str>,
        observed: &Observed,
    ) -> Result<(Desired, Vec<String>), RolloutError> {
        let (image, notes) = match image {
            Some(i) => (Some(i.to_owned()), Vec::new()),
            None => {
                self.discover(observed.service.as_ref(), observed.running.as_ref())
                    .await?
            }
        };
        Ok((self.render(image.as_deref())?, notes))
    }
}
