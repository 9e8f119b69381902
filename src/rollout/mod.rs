//! One reconcile of one target: observe the service, decide what should run,
//! register it, roll the service, verify every new task over HTTPS, then keep
//! it as the last good revision or put the last good one back.
//!
//! Level-triggered: whatever started it (cron, SIGHUP, a restart), it reads
//! the state from ECS — including the tags a previous, interrupted run left —
//! and takes the service one step closer to a verified revision.

mod act;
pub mod decide;
mod dynatrace;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ecs::{Aws, EcsError, ServiceState, TaskDefinitionState};
use crate::health::Prober;
use crate::model::ids::TaskDefinitionArn;
use crate::model::service::{CreateService, DeploymentCircuitBreaker, DeploymentConfiguration};
use crate::model::task_definition::TaskDefinition;
use crate::translate::{self, Manifest, Settings, TranslateError};

use decide::{Pass, Wanted, decide};
pub use decide::{Step, Strategy};
pub use dynatrace::{Connected, EnvironmentCheck, OnApiError};
use verify::Scope;
pub use verify::{Progress, Verified, VerifyPolicy};

/// Steps one reconcile may take; a clean blue/green rollout takes seven.
const MAX_STEPS: u32 = 24;

/// Tag keys the product writes: the one schema, in `model::marks`.
pub use crate::model::marks as tags;

/// Where new versions come from: a repository in a registry, and the policy that picks.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub registry: Arc<crate::versions::registry::Registry>,
    /// `public.ecr.aws/dynatrace/dynatrace-activegate`
    pub repository: String,
    pub policy: crate::versions::Policy,
    /// When set, the version the Dynatrace environment names is the only candidate.
    pub metainfo: Option<Arc<crate::versions::dynatrace::Metainfo>>,
}

/// Everything the engine needs to know about one target.
#[derive(Debug, Clone)]
pub struct Spec {
    pub target: String,
    pub cluster: String,
    pub service: String,
    pub manifest: Arc<Manifest>,
    pub settings: Settings,
    pub deployment: DeploymentConfiguration,
    pub keep_revisions: u32,
    pub log_retention_days: u32,
    pub verify: VerifyPolicy,
    /// How a service this engine creates rolls; an existing service keeps its controller.
    pub strategy: Strategy,
    /// The blue/green service `migrate` creates beside a rolling one.
    pub migrate_to: String,
    /// Version discovery; without it the configured image is rolled out as is.
    pub versions: Option<Discovery>,
    /// Verified from Dynatrace's side too (`[target.verify.dynatrace]`).
    pub environment: Option<EnvironmentCheck>,
}

/// How a reconcile ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The service already runs the desired, verified revision. No writes.
    Unchanged { revision: String },
    /// A service seen for the first time: its running revision verified and kept as last good.
    Adopted { revision: String },
    /// The desired revision runs and is verified; `warnings` name what could not be checked.
    Verified {
        from: Option<String>,
        to: String,
        warnings: Vec<String>,
    },
    /// The desired revision failed; the last good one runs again, verified.
    RolledBack {
        failed: String,
        restored: String,
        reasons: Vec<String>,
        logs: Vec<String>,
        via: RollbackVia,
    },
    /// The desired image was quarantined by an earlier failure; nothing was done.
    Quarantined { image: String },
    /// The new revision could not be judged (its probes failed only when the old tasks' did
    /// too, or while the daemon was overloaded or cut off): it was removed (blue/green) or
    /// rolled back (rolling) without quarantine, so the next run tries it again.
    Inconclusive {
        revision: String,
        serving: String,
        reasons: Vec<String>,
    },
    /// A rolling service was moved to blue/green: a new EXTERNAL service beside it runs the
    /// same image, verified, and the old one is scaled to 0 (left for a person to delete).
    Migrated {
        from_service: String,
        to_service: String,
        revision: String,
    },
}

/// How a roll-back put the last good revision back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackVia {
    /// Blue/green: the green task set was deleted; blue never stopped serving.
    GreenDeleted,
    /// Rolling: ECS's StopServiceDeployment (ROLLBACK) returned the service onto the
    /// previous deployment's tasks, which were still running.
    StopServiceDeployment,
    /// Rolling: a new deployment of the last good revision (the old tasks were gone).
    UpdateService,
    /// ECS (its circuit breaker) had already returned the service to the last good revision.
    AlreadyRestored,
}

impl RollbackVia {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GreenDeleted => "green task set deleted, blue kept serving",
            Self::StopServiceDeployment => {
                "StopServiceDeployment (ROLLBACK) onto the previous deployment's tasks"
            }
            Self::UpdateService => "a new deployment of the last good revision",
            Self::AlreadyRestored => "ECS had already rolled the service back",
        }
    }
}

impl Outcome {
    /// 0 when the service runs what it should, 3 when it was rolled back.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::RolledBack { .. } => 3,
            Self::Inconclusive { .. } => 1,
            _ => 0,
        }
    }

    /// The revision the service runs after this outcome; `None` after a quarantine, which
    /// changed nothing and names no revision.
    pub fn serving(&self) -> Option<&str> {
        match self {
            Self::Unchanged { revision } | Self::Adopted { revision } => Some(revision),
            Self::Verified { to, .. } => Some(to),
            Self::RolledBack { restored, .. } => Some(restored),
            Self::Migrated { revision, .. } => Some(revision),
            Self::Inconclusive { serving, .. } => Some(serving),
            Self::Quarantined { .. } => None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Unchanged { .. } => "unchanged",
            Self::Adopted { .. } => "adopted",
            Self::Verified { .. } => "verified",
            Self::RolledBack { .. } => "rolled-back",
            Self::Quarantined { .. } => "quarantined",
            Self::Migrated { .. } => "migrated",
            Self::Inconclusive { .. } => "inconclusive",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    Aws(#[from] EcsError),
    #[error("cannot render the task definition")]
    Render(#[source] Box<TranslateError>),
    #[error("revision {failed} failed and there is no last good revision to return to; the service runs it unverified: {}", reasons.join("; "))]
    NoLastGood {
        failed: String,
        reasons: Vec<String>,
    },
    #[error("rolling back to {restored} did not verify either: {}; the service needs a person", reasons.join("; "))]
    RollbackFailed {
        restored: String,
        reasons: Vec<String>,
    },
    #[error("target `{0}` has no last good revision to roll back to")]
    NothingToRollBackTo(String),
    #[error("a rollout of service {0} is already running in this process")]
    Busy(String),
    #[error("version discovery failed and the service does not exist yet to keep its version")]
    Discovery(#[source] crate::versions::registry::RegistryError),
    #[error(
        "the reconcile took {0} steps without settling: ECS does not show what the steps wrote"
    )]
    NoProgress(u32),
    #[error(
        "service {from} was moved to blue/green as service {to}: set `service = \"{to}\"` for target `{target}` (the old service is scaled to 0; delete it when you no longer need it)"
    )]
    Migrated {
        target: String,
        from: String,
        to: String,
    },
    #[error("cannot migrate target `{target}`: {why}")]
    Migration { target: String, why: String },
}

impl RolloutError {
    /// A translation error, boxed: it is large and rare.
    fn render(e: TranslateError) -> Self {
        Self::Render(Box::new(e))
    }

    /// Whether the same reconcile is worth running again soon (the daemon retries it with
    /// backoff): AWS throttling, 5xx and transport errors, a busy service, a registry that
    /// did not answer. Failures that need a person or a new config are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Aws(e) => e.is_retriable(),
            Self::Busy(_) | Self::Discovery(_) => true,
            Self::Render(_)
            | Self::NoLastGood { .. }
            | Self::RollbackFailed { .. }
            | Self::NothingToRollBackTo(_) => false,
            Self::NoProgress(_) => true,
            Self::Migrated { .. } | Self::Migration { .. } => false,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Aws(e) => e.metric_label(),
            Self::Render(_) => "render",
            Self::NoLastGood { .. } => "no-last-good",
            Self::RollbackFailed { .. } => "rollback-failed",
            Self::NothingToRollBackTo(_) => "nothing-to-roll-back-to",
            Self::Busy(_) => "busy",
            Self::Discovery(_) => "discovery",
            Self::NoProgress(_) => "no-progress",
            Self::Migrated { .. } => "migrated",
            Self::Migration { .. } => "migration",
        }
    }
}

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

/// The content hash of a task definition: SHA-256 of its canonical JSON, 16 hex digits.
pub fn content_hash(td: &TaskDefinition) -> String {
    let json = serde_json::to_string(td).expect("a task definition serialises");
    let d = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
    d.as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) use crate::model::marks::quarantine_key;

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Services with a reconcile or roll-back running in this process.
static IN_FLIGHT: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Holds a service's place in `IN_FLIGHT`; released when dropped.
struct SingleFlight(String);

impl SingleFlight {
    fn take(key: String) -> Result<SingleFlight, RolloutError> {
        let mut set = IN_FLIGHT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if set.insert(key.clone()) {
            Ok(SingleFlight(key))
        } else {
            Err(RolloutError::Busy(key))
        }
    }
}

impl Drop for SingleFlight {
    fn drop(&mut self) {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// The engine for one target.
pub struct Engine {
    aws: Aws,
    prober: Prober,
    spec: Spec,
    progress: Arc<dyn Fn(&Progress) + Send + Sync>,
    /// Told what the new ActiveGates report before the old ones are removed.
    connected: Arc<dyn Fn(&Connected) + Send + Sync>,
    discovery_failures: std::sync::atomic::AtomicU64,
}

/// The tag of an image reference of `repository` (`repo:tag@digest` → `tag`).
fn tag_of<'a>(image: &'a str, repository: &str) -> Option<&'a str> {
    let rest = image.strip_prefix(repository)?.strip_prefix(':')?;
    Some(rest.split('@').next().unwrap_or(rest))
}

/// The desired state, rendered.
struct Desired {
    td: TaskDefinition,
    hash: String,
    image: String,
}

/// One observation: the service (if it exists) and the revision it serves.
#[derive(Debug, Default)]
struct Observed {
    service: Option<ServiceState>,
    running: Option<TaskDefinitionState>,
}

impl Observed {
    fn running_hash(&self) -> Option<&str> {
        self.running
            .as_ref()
            .and_then(|r| r.tags.get(tags::HASH))
            .map(String::as_str)
    }
}

/// What a step tells the loop.
enum Flow {
    /// The pass ends with this outcome.
    Done(Outcome),
    /// ECS changed: observe again and decide the next step.
    Again,
}

/// What the steps of one pass found out, for the outcome (reasons, log lines, warnings).
#[derive(Debug, Default)]
struct Learned {
    reasons: Vec<String>,
    logs: Vec<String>,
    /// What a passed verification could not check, for the promotion's outcome.
    warnings: Vec<String>,
    /// What the verified ActiveGates reported, for the promotion.
    connected: Option<Connected>,
}

impl Engine {
    pub fn new(aws: Aws, prober: Prober, spec: Spec) -> Self {
        Self {
            aws,
            prober,
            spec,
            discovery_failures: std::sync::atomic::AtomicU64::new(0),
            progress: Arc::new(|p: &Progress| {
                tracing::debug!(revision = %p.revision, running = p.running, healthy = p.healthy, desired = p.desired, baking = p.baking, "verifying");
            }),
            connected: Arc::new(|_: &Connected| {}),
        }
    }

    /// Tells `f` how many OneAgents the new ActiveGates report before the old ones are
    /// removed (with the Dynatrace-side check on), e.g. for `/status`.
    pub fn with_connected(mut self, f: Arc<dyn Fn(&Connected) + Send + Sync>) -> Self {
        self.connected = f;
        self
    }

    /// Reports verification progress to `f` instead of the debug log.
    pub fn with_progress(mut self, f: Arc<dyn Fn(&Progress) + Send + Sync>) -> Self {
        self.progress = f;
        self
    }

    pub fn aws(&self) -> &Aws {
        &self.aws
    }

    /// Version discoveries that failed (the current version was kept).
    pub fn discovery_failures(&self) -> u64 {
        self.discovery_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The image version discovery picks, with notes on what it passed over.
    /// `Ok(None)` when discovery is not configured; on failure the running
    /// image is kept (a failed discovery never fails a running service).
    async fn discover(
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

    fn render(&self, image: Option<&str>) -> Result<Desired, RolloutError> {
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

    /// Verifies `revision`. A new revision gets the Dynatrace-side check as configured; the
    /// serving or last good one (`new = false`: adopted, or restored by a roll-back) gets it
    /// too, but an environment that cannot be asked never blocks it (probe-only).
    async fn verify(
        &self,
        revision: &str,
        scope: Scope<'_>,
        baseline: Option<&str>,
        new: bool,
    ) -> Result<Verified, verify::VerifyError> {
        let environment = self.spec.environment.as_ref().map(|c| {
            (
                c,
                if new {
                    c.on_api_error
                } else {
                    OnApiError::ProbeOnly
                },
            )
        });
        verify::verify(
            &self.aws,
            &self.prober,
            verify::Subject {
                cluster: &self.spec.cluster,
                service: &self.spec.service,
                revision,
                scope,
                baseline,
                environment,
            },
            &self.spec.verify,
            self.progress.as_ref(),
        )
        .await
    }

    /// Last log lines of the failed tasks, from CloudWatch Logs: the ActiveGate container's
    /// stream, named as translate names that container.
    async fn failure_logs(&self, image: &str, task_ids: &[String]) -> Vec<String> {
        let Some(logs) = &self.spec.settings.logs else {
            return Vec::new();
        };
        let container = match translate::translate(&self.spec.manifest, &self.settings_for(image)) {
            Ok(t) => t.container,
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for id in task_ids.iter().take(3) {
            let stream = format!("{}/{container}/{id}", logs.stream_prefix);
            match self
                .aws
                .last_log_lines(logs.group.as_str(), &stream, 10)
                .await
            {
                Ok(lines) => out.extend(lines.into_iter().map(|l| format!("{id}: {l}"))),
                Err(e) => out.push(format!("{id}: cannot read {stream}: {e}")),
            }
        }
        out
    }

    /// Removes the tags of a rollout in flight (and its verdict).
    async fn clear_mark(&self, svc: &ServiceState) -> Result<(), EcsError> {
        let keys: Vec<String> = tags::ROLLOUT_KEYS
            .iter()
            .filter(|k| svc.tags.contains_key(**k))
            .map(|k| (*k).to_owned())
            .collect();
        self.aws.untag(&svc.arn, &keys).await
    }

    async fn service(&self) -> Result<Option<ServiceState>, EcsError> {
        self.aws
            .describe_service(&self.spec.cluster, &self.spec.service)
            .await
    }

    /// One read of the service and of the revision it serves (a rolling service's task
    /// definition, an EXTERNAL service's primary task set's).
    async fn observe(&self) -> Result<Observed, RolloutError> {
        self.observe_again(None).await
    }

    /// `observe`, reusing the serving revision read by the previous pass when it is still the
    /// one served: a registered revision's content (and so its content hash) never changes, so
    /// the reconcile loop reads each revision once rather than once per step.
    async fn observe_again(
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

    /// One reconcile. `image` overrides the config's and the manifest's image.
    pub async fn reconcile(&self, image: Option<&str>) -> Result<Outcome, RolloutError> {
        use tracing::Instrument;
        let _flight = SingleFlight::take(self.flight_key())?;
        let span = tracing::info_span!("reconcile", target = %self.spec.target);
        self.reconcile_inner(image).instrument(span).await
    }

    /// The desired state: the image (given, discovered or configured), rendered.
    async fn desired(
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

    async fn reconcile_inner(&self, image: Option<&str>) -> Result<Outcome, RolloutError> {
        let mut observed = self.observe().await?;
        let (desired, notes) = self.desired(image, &observed).await?;
        if !notes.is_empty() {
            tracing::info!(notes = ?notes, "version discovery");
        }
        let mut pass = Pass::default();
        let mut learned = Learned::default();
        // Each step either ends the pass or changes what ECS shows; a bound keeps a
        // disagreement with ECS from looping forever.
        for _ in 0..MAX_STEPS {
            let step = decide(
                observed.service.as_ref(),
                observed.running_hash(),
                self.wanted(&desired),
                &pass,
            );
            tracing::info!(step = %step, "next step");
            match self
                .act(step, &observed, &desired, &mut pass, &mut learned)
                .await?
            {
                Flow::Done(outcome) => return Ok(outcome),
                Flow::Again => observed = self.observe_again(observed.running.take()).await?,
            }
        }
        Err(RolloutError::NoProgress(MAX_STEPS))
    }

    fn wanted<'a>(&self, desired: &'a Desired) -> Wanted<'a> {
        Wanted {
            hash: &desired.hash,
            image: &desired.image,
            strategy: self.spec.strategy,
        }
    }

    /// Registers the desired revision, after making sure its log group exists
    /// (a task whose log group is missing fails to start on Fargate).
    async fn register(&self, desired: &Desired) -> Result<String, EcsError> {
        if let Some(logs) = &self.spec.settings.logs {
            self.aws
                .ensure_log_group(logs.group.as_str(), self.spec.log_retention_days)
                .await?;
        }
        self.aws
            .register_task_definition(&desired.td, &tags::revision(&desired.hash, &desired.image))
            .await
    }

    /// Marks a revision as failed: its task definition, and its image on the service, so
    /// that discovery passes over it and no later run rolls it out again.
    async fn quarantine(
        &self,
        svc: &ServiceState,
        failed: &str,
        image: &str,
    ) -> Result<(), EcsError> {
        let failed_image = self
            .aws
            .describe_task_definition(failed)
            .await
            .map(|t| t.image)
            .unwrap_or_else(|_| image.to_owned());
        self.aws.tag(failed, &tags::quarantined_revision()).await?;
        self.aws
            .tag(&svc.arn, &tags::quarantine(&failed_image))
            .await
    }

    /// The service document for this target with `image` (network, registries, tags).
    fn service_document(&self, image: &str) -> Result<CreateService, RolloutError> {
        let translation = translate::translate(&self.spec.manifest, &self.settings_for(image))
            .map_err(RolloutError::render)?;
        let mut doc = translate::service_document(&translation, &self.spec.settings)
            .map_err(RolloutError::render)?;
        doc.deployment_configuration = self.spec.deployment.clone();
        Ok(doc)
    }

    fn settings_for(&self, image: &str) -> Settings {
        let mut s = self.spec.settings.clone();
        s.image = Some(image.to_owned());
        s
    }

    /// Deregisters revisions of the family beyond `keep_revisions`, never the
    /// running one nor the last good one; `keep_revisions = 0` turns pruning off.
    async fn prune(&self, keep_also: &str) -> Result<(), EcsError> {
        if self.spec.keep_revisions == 0 {
            return Ok(());
        }
        let family = TaskDefinitionArn::parse(keep_also)
            .map(|a| a.family().to_owned())
            .unwrap_or_default();
        let arns = self.aws.task_definitions(&family).await?;
        let keep = self.spec.keep_revisions as usize;
        if arns.len() <= keep {
            return Ok(());
        }
        for arn in &arns[..arns.len() - keep] {
            if arn != keep_also {
                self.aws.deregister(arn).await?;
            }
        }
        Ok(())
    }

    /// One service: endpoint (the simulator's differ per test), region, cluster, name.
    fn flight_key(&self) -> String {
        let c = self.aws.settings();
        format!(
            "{} {} {}/{}",
            c.endpoint_url.as_deref().unwrap_or("aws"),
            c.region,
            self.spec.cluster,
            self.spec.service
        )
    }

    /// Puts the last good revision back and verifies it. With blue/green: removes a green
    /// task set in flight (blue still serves).
    pub async fn rollback(&self) -> Result<Outcome, RolloutError> {
        let _flight = SingleFlight::take(self.flight_key())?;
        let svc = self.service().await?.ok_or(EcsError::Incomplete {
            op: "DescribeServices",
            what: "service",
        })?;
        let good = svc
            .tags
            .get(tags::LAST_GOOD)
            .cloned()
            .ok_or_else(|| RolloutError::NothingToRollBackTo(self.spec.target.clone()))?;
        let marks = svc.marks();
        if svc.external {
            let Some(primary) = svc.primary_task_set() else {
                return Err(RolloutError::NothingToRollBackTo(self.spec.target.clone()));
            };
            let green = marks.to.as_ref().and_then(|to| {
                svc.task_sets
                    .iter()
                    .find(|t| t.task_definition == *to && t.id != primary.id)
            });
            return match green {
                Some(g) if primary.task_definition == good => {
                    let image = self
                        .aws
                        .describe_task_definition(&g.task_definition)
                        .await?
                        .image;
                    self.quarantine(&svc, &g.task_definition, &image).await?;
                    self.aws
                        .delete_task_set(&self.spec.cluster, &self.spec.service, &g.id)
                        .await?;
                    self.clear_mark(&svc).await?;
                    Ok(Outcome::RolledBack {
                        failed: g.task_definition.clone(),
                        restored: good,
                        reasons: vec!["rolled back on request".into()],
                        logs: vec![],
                        via: RollbackVia::GreenDeleted,
                    })
                }
                _ if primary.task_definition == good => Ok(Outcome::Unchanged { revision: good }),
                _ => Err(RolloutError::NothingToRollBackTo(format!(
                    "{} (the primary task set runs {}, the last good revision is {good}: run a rollout to the last good image instead)",
                    self.spec.target, primary.task_definition
                ))),
            };
        }
        if svc.task_definition == good && marks.to.is_none() {
            return Ok(Outcome::Unchanged { revision: good });
        }
        let failed = svc.task_definition.clone();
        let image = self.aws.describe_task_definition(&failed).await?.image;
        self.roll_back(
            &svc,
            &failed,
            &good,
            act::Evidence::failed(vec!["rolled back on request".into()], vec![]),
            &image,
        )
        .await
    }

    fn migration_text(&self, from: &str) -> String {
        format!(
            "`rollout --migrate` creates the blue/green service {to} beside {from} (EXTERNAL controller, the same network, registries and running image), verifies its tasks while {from} keeps serving, then scales {from} to 0 and tags it; point `service` at {to} afterwards and delete {from} when you no longer need it (the controller is not changed in place: ECS's UpdateService reference documents no rules for ECS → EXTERNAL)",
            to = self.spec.migrate_to
        )
    }

    /// Moves a rolling service to blue/green without a moment without a healthy ActiveGate:
    /// a new EXTERNAL service beside it (`migrate_to`) with the image the old one runs,
    /// created and verified by the same reconcile as any new service, then the old one
    /// tagged `migrated-to` and scaled to 0. Repeated after an interruption, it carries on.
    pub async fn migrate(&self) -> Result<Outcome, RolloutError> {
        let _flight = SingleFlight::take(self.flight_key())?;
        let migration = |why: String| RolloutError::Migration {
            target: self.spec.target.clone(),
            why,
        };
        let Some(old) = self.service().await? else {
            return Err(migration(format!(
                "service {} does not exist",
                self.spec.service
            )));
        };
        if old.external {
            return Err(migration(format!(
                "service {} already uses the EXTERNAL controller (blue/green)",
                old.name
            )));
        }
        if old.tags.contains_key(tags::ROLLOUT_TO) {
            return Err(migration(format!(
                "a rollout of {} is in flight; run `rollout` to finish it first",
                old.name
            )));
        }
        let running = self
            .aws
            .describe_task_definition(&old.task_definition)
            .await?;
        let mut spec = self.spec.clone();
        spec.service = self.spec.migrate_to.clone();
        spec.settings.service = Some(self.spec.migrate_to.parse().map_err(|e| {
            migration(format!(
                "`{}` is no ECS service name: {e}",
                self.spec.migrate_to
            ))
        })?);
        spec.strategy = Strategy::BlueGreen;
        spec.versions = None;
        let beside = Engine::new(self.aws.clone(), self.prober.clone(), spec)
            .with_progress(self.progress.clone());
        tracing::info!(from = %old.name, to = %self.spec.migrate_to, image = %running.image, "migrating to blue/green: a new service beside the old one");
        let revision = match beside.reconcile(Some(&running.image)).await? {
            Outcome::Verified { to, .. } => to,
            Outcome::Unchanged { revision } | Outcome::Adopted { revision } => revision,
            other => {
                return Err(migration(format!(
                    "the blue/green service {} did not verify ({}); {} is untouched",
                    self.spec.migrate_to,
                    other.label(),
                    old.name
                )));
            }
        };
        self.aws
            .tag(&old.arn, &tags::migrated_to(&self.spec.migrate_to))
            .await?;
        self.aws
            .set_desired_count(&self.spec.cluster, &old.name, 0)
            .await?;
        tracing::warn!(from = %old.name, to = %self.spec.migrate_to, "migrated: the old service is scaled to 0; point the target's `service` at the new one and delete the old one");
        Ok(Outcome::Migrated {
            from_service: old.name,
            to_service: self.spec.migrate_to.clone(),
            revision,
        })
    }

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

/// The deployment settings from the rollout policy.
pub fn deployment(min: u32, max: u32, breaker: bool) -> DeploymentConfiguration {
    DeploymentConfiguration {
        deployment_circuit_breaker: DeploymentCircuitBreaker {
            enable: breaker,
            rollback: breaker,
        },
        maximum_percent: max,
        minimum_healthy_percent: min,
    }
}
