//! One reconcile of one target: observe the service, decide what should run,
//! register it, roll the service, verify every new task over HTTPS, then keep
//! it as the last good revision or put the last good one back.
//!
//! Level-triggered: whatever started it (cron, SIGHUP, a restart), it reads
//! the state from ECS — including the tags a previous, interrupted run left —
//! and takes the service one step closer to a verified revision.
//!
//! In the order of a reconcile: `observe` (one read of ECS; the desired state rendered),
//! [`decide`](mod@decide) (pure: the one next step), `act` (one small function per step, the rolling
//! and blue/green ones in `act/`), `verify` (rounds of probes of new and baseline tasks),
//! `calls` (what the steps share). Beside the loop: `plan`, `rollback`, `migrate`;
//! what the engine is given in `spec`, what it answers in `outcome`.

mod act;
mod calls;
pub mod decide;
mod dynatrace;
mod migrate;
mod observe;
mod outcome;
mod plan;
mod rollback;
mod spec;
mod verify;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ecs::Aws;
use crate::health::Prober;
use crate::model::task_definition::TaskDefinition;

use decide::{Pass, Wanted, decide};
pub use decide::{Step, Strategy};
pub use dynatrace::{Connected, EnvironmentCheck, OnApiError};
pub use verify::{Progress, Verified, VerifyPolicy};

use observe::{Desired, Observed};
pub use outcome::{Outcome, RollbackVia, RolloutError};
pub use plan::Plan;
pub use spec::{Discovery, Spec, deployment};

/// Whether this process may still write the target's service (the daemon's lease on it).
pub type WriteGuard = Arc<dyn Fn() -> bool + Send + Sync>;

/// Steps one reconcile may take; a clean blue/green rollout takes seven.
const MAX_STEPS: u32 = 24;

/// Tag keys the product writes: the one schema, in `model::marks`.
pub use crate::model::marks as tags;

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

    /// One reconcile. `image` overrides the config's and the manifest's image.
    pub async fn reconcile(&self, image: Option<&str>) -> Result<Outcome, RolloutError> {
        self.reconcile_guarded(image, None).await
    }

    /// One reconcile that acts only while `guard` holds (the daemon's lease on the target):
    /// it is asked before every step, and when it fails the reconcile ends with the retriable
    /// [`RolloutError::LeaseLost`]. Without a guard, as [`Engine::reconcile`].
    pub async fn reconcile_guarded(
        &self,
        image: Option<&str>,
        guard: Option<WriteGuard>,
    ) -> Result<Outcome, RolloutError> {
        use tracing::Instrument;
        let _flight = self.claim()?;
        let span = tracing::info_span!("reconcile", target = %self.spec.target);
        self.reconcile_inner(image, guard).instrument(span).await
    }

    async fn reconcile_inner(
        &self,
        image: Option<&str>,
        guard: Option<WriteGuard>,
    ) -> Result<Outcome, RolloutError> {
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
            if guard.as_ref().is_some_and(|may_write| !may_write()) {
                tracing::warn!(step = %step, "lease lost: the step is left to the lease's next holder");
                return Err(RolloutError::LeaseLost(self.spec.target.clone()));
            }
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

    /// The service for one reconcile, roll-back or migration: never two at once among the
    /// engines of one `ecs::Clients` (the daemon's run, a command).
    fn claim(&self) -> Result<crate::ecs::Claim, RolloutError> {
        self.aws
            .claim_service(&self.spec.cluster, &self.spec.service)
            .ok_or_else(|| {
                RolloutError::Busy(self.aws.service_key(&self.spec.cluster, &self.spec.service))
            })
    }
}
