//! How a reconcile ended, and why it could not.

use crate::ecs::EcsError;
use crate::translate::TranslateError;

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
    /// The write guard (the daemon's lease on the target) failed before a step: this process
    /// may no longer write the service; the lease's next holder resumes from the ECS tags.
    #[error(
        "lease lost on target `{0}`: stopped before the next step; the lease's holder resumes from the ECS tags"
    )]
    LeaseLost(String),
}

impl RolloutError {
    /// A translation error, boxed: it is large and rare.
    pub(super) fn render(e: TranslateError) -> Self {
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
            Self::NoProgress(_) | Self::LeaseLost(_) => true,
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
            Self::LeaseLost(_) => "lease-lost",
        }
    }
}
