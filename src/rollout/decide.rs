//! The decision of a reconcile, as a pure function: from what ECS shows (the service, its
//! task sets or deployments, our tags) and what should run, the one next step. No I/O.
//!
//! `reconcile` loops observe → [`decide`] → act until the step ends the pass, and `plan`
//! prints the same step, so a plan can never disagree with a rollout. Every half-finished
//! state an interrupted run can leave is a state like any other here: the tags written
//! before and after each write say where the run was.

use std::fmt;

use super::tags;
use crate::ecs::{ServiceState, TaskSetState};

/// How new revisions reach the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// EXTERNAL deployment controller: a green task set beside the blue one until it baked.
    BlueGreen,
    /// ECS's rolling update, with ECS's circuit breaker.
    Rolling,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlueGreen => "blue-green",
            Self::Rolling => "rolling",
        }
    }
}

pub use crate::model::marks::{Marks, Verdict};

/// What should run, rendered from the manifest and config.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub hash: &'a str,
    pub image: &'a str,
    /// For a service that does not exist yet; an existing one keeps its controller.
    pub strategy: Strategy,
}

/// What this reconcile learned so far; forgotten when it ends (what must survive is a tag).
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// The serving revision was probed and is not healthy: roll out without adopting it.
    pub adopt_failed: bool,
}

/// Which task set a verification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The first task set of a service: there is nothing to return to.
    First,
    /// A new revision beside the last good one.
    Green,
}

/// The one next step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The service runs the desired revision, verified. Ends the pass.
    Nothing { revision: String },
    /// The desired image failed before and is quarantined. Ends the pass.
    Quarantined { image: String },
    /// Create the service (and for blue/green nothing else yet: its first task set follows).
    CreateService { strategy: Strategy },
    /// Verify the serving revision and keep it as last good (`task_set` for blue/green).
    Adopt {
        revision: String,
        task_set: Option<String>,
        /// The revision is also the desired one: adopting it ends the pass.
        then_done: bool,
    },

    // Rolling (ECS controller).
    /// Register the desired revision, tag the rollout, UpdateService.
    StartRolling,
    /// The service runs the revision in flight: verify it, keep it or roll back.
    VerifyRolling { to: String, from: Option<String> },
    /// Put the last good revision back (onto the old tasks while ECS still has them).
    RollBack {
        failed: String,
        good: String,
        reason: Option<String>,
    },
    /// A stale rollout mark with nothing to return to: drop it and decide again.
    ClearMark,
    /// The serving revision is unhealthy and there is no other to return to.
    GiveUp { failed: String },

    // Blue/green (EXTERNAL controller, task sets).
    /// Create a task set at 100 %: of `revision` when a rollout is already tagged, else of
    /// the desired revision (registered first); `primary` for a service without one.
    CreateTaskSet {
        revision: Option<String>,
        primary: bool,
    },
    /// A service whose task sets have no PRIMARY: make this one primary.
    MakePrimary { task_set: String },
    /// Probe every task of the set, then bake; tag the verdict.
    VerifyTaskSet {
        task_set: String,
        revision: String,
        role: Role,
        /// The serving (blue) revision, probed alongside as the baseline.
        baseline: Option<String>,
    },
    /// The green set passed: make it PRIMARY (blue still serves at 100 %).
    Promote { task_set: String },
    /// The primary set is the verified new revision: tag it last good, scale the others to
    /// 0, wait for their tasks to stop, delete them, clear the rollout. Ends the pass.
    FinishPromotion {
        revision: String,
        others: Vec<String>,
    },
    /// The green set failed: delete it (blue never stopped) and clear the rollout. Ends the pass.
    RemoveGreen {
        task_set: Option<String>,
        failed: String,
        restored: String,
        /// The verdict was inconclusive: the outcome says so and nothing was quarantined.
        inconclusive: bool,
    },
    /// Task sets no rollout accounts for (left by an interrupted clean-up): remove them.
    RemoveTaskSets { task_sets: Vec<String> },
    /// The primary set was scaled below 100 % outside a rollout: scale it back.
    ScalePrimary { task_set: String },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nothing { revision } => write!(f, "nothing to do: {revision} runs, verified"),
            Self::Quarantined { image } => {
                write!(
                    f,
                    "nothing: {image} is quarantined after an earlier failure"
                )
            }
            Self::CreateService { strategy } => write!(
                f,
                "create the service ({} deployments{})",
                strategy.as_str(),
                match strategy {
                    Strategy::BlueGreen => ", EXTERNAL controller and task sets",
                    Strategy::Rolling => ", ECS controller",
                }
            ),
            Self::Adopt { revision, .. } => {
                write!(f, "verify the running {revision} and keep it as last good")
            }
            Self::StartRolling => write!(
                f,
                "register the desired revision and roll the service to it (rolling update)"
            ),
            Self::VerifyRolling { to, .. } => write!(f, "verify {to}, the rollout in flight"),
            Self::RollBack {
                failed,
                good,
                reason,
            } => write!(
                f,
                "roll back from {failed} to the last good {good}{}",
                reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            Self::ClearMark => write!(
                f,
                "clear a stale rollout mark (no last good revision to return to)"
            ),
            Self::GiveUp { failed } => write!(
                f,
                "report {failed} unhealthy: there is no last good revision to return to"
            ),
            Self::CreateTaskSet { revision, primary } => write!(
                f,
                "create a task set at 100 %{} (blue/green{})",
                revision
                    .as_ref()
                    .map(|r| format!(" of {r}"))
                    .unwrap_or_else(|| " of a new revision of the desired image".into()),
                if *primary {
                    ", as the service's first and primary set"
                } else {
                    ": green beside the serving blue set"
                }
            ),
            Self::MakePrimary { task_set } => write!(f, "make task set {task_set} primary"),
            Self::VerifyTaskSet {
                task_set,
                revision,
                role,
                ..
            } => write!(
                f,
                "verify task set {task_set} ({revision}){}",
                match role {
                    Role::Green => ", the blue set serving beside it",
                    Role::First => "",
                }
            ),
            Self::Promote { task_set } => write!(f, "promote the verified task set {task_set}"),
            Self::FinishPromotion { revision, others } => write!(
                f,
                "keep {revision} as last good; scale {} old task set(s) to 0 and delete them",
                others.len()
            ),
            Self::RemoveGreen {
                task_set, failed, ..
            } => write!(
                f,
                "delete the failed green task set{} of {failed}; blue keeps serving",
                task_set
                    .as_ref()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default()
            ),
            Self::RemoveTaskSets { task_sets } => write!(
                f,
                "remove {} task set(s) no rollout accounts for: {}",
                task_sets.len(),
                task_sets.join(", ")
            ),
            Self::ScalePrimary { task_set } => {
                write!(f, "scale the primary task set {task_set} back to 100 %")
            }
        }
    }
}

/// The next step for a service (`None`: it does not exist) whose serving revision carries
/// `running_hash`, given what should run.
pub fn decide(
    service: Option<&ServiceState>,
    running_hash: Option<&str>,
    wanted: Wanted<'_>,
    pass: &Pass,
) -> Step {
    let Some(svc) = service else {
        return Step::CreateService {
            strategy: wanted.strategy,
        };
    };
    let marks = svc.marks();
    if svc.external {
        blue_green(svc, &marks, running_hash, wanted, pass)
    } else {
        rolling(svc, &marks, running_hash, wanted, pass)
    }
}

fn quarantined(svc: &ServiceState, image: &str) -> bool {
    svc.tags
        .get(&tags::quarantine_key(image))
        .map(String::as_str)
        == Some(image)
}

fn rolling(
    svc: &ServiceState,
    marks: &Marks,
    running_hash: Option<&str>,
    wanted: Wanted<'_>,
    pass: &Pass,
) -> Step {
    let running = &svc.task_definition;
    // An interrupted rollout: finish it first.
    if let Some(to) = &marks.to {
        if running == to {
            return Step::VerifyRolling {
                to: to.clone(),
                from: marks.from.clone(),
            };
        }
        // The update never happened, or the roll-back already did: make sure the last good
        // runs, verified.
        return match &marks.last_good {
            Some(good) => Step::RollBack {
                failed: to.clone(),
                good: good.clone(),
                reason: Some("an interrupted rollout was not verified".into()),
            },
            None => Step::ClearMark,
        };
    }
    if running_hash == Some(wanted.hash) {
        if marks.last_good.as_ref() == Some(running) {
            return Step::Nothing {
                revision: running.clone(),
            };
        }
        // Runs what it should but was never verified by us: verify and keep it.
        return Step::Adopt {
            revision: running.clone(),
            task_set: None,
            then_done: true,
        };
    }
    if quarantined(svc, wanted.image) {
        return Step::Quarantined {
            image: wanted.image.to_owned(),
        };
    }
    if marks.last_good.is_none() && !pass.adopt_failed {
        return Step::Adopt {
            revision: running.clone(),
            task_set: None,
            then_done: false,
        };
    }
    Step::StartRolling
}

/// Task sets that count: DRAINING ones are on their way out.
fn live(svc: &ServiceState) -> impl Iterator<Item = &TaskSetState> {
    svc.task_sets.iter().filter(|t| t.status != "DRAINING")
}

/// Blue/green (EXTERNAL controller): a service without a primary set gets one; a rollout in
/// flight is carried on; outside one, leftovers are cleaned before the service is compared
/// with what should run.
fn blue_green(
    svc: &ServiceState,
    marks: &Marks,
    running_hash: Option<&str>,
    wanted: Wanted<'_>,
    pass: &Pass,
) -> Step {
    let Some(primary) = svc.primary_task_set() else {
        return headless(svc, marks);
    };
    let others: Vec<&TaskSetState> = live(svc).filter(|t| t.id != primary.id).collect();
    if let Some(to) = &marks.to {
        return in_flight(svc, marks, primary, &others, to);
    }
    if !others.is_empty() {
        return Step::RemoveTaskSets {
            task_sets: ids(&others),
        };
    }
    if primary.scale < 100.0 {
        return Step::ScalePrimary {
            task_set: primary.id.clone(),
        };
    }
    steady(svc, marks, primary, running_hash, wanted, pass)
}

/// No primary set: a new service, or one whose first set was never made primary.
fn headless(svc: &ServiceState, marks: &Marks) -> Step {
    let sets: Vec<&TaskSetState> = live(svc).collect();
    let pick = sets
        .iter()
        .find(|t| Some(&t.task_definition) == marks.to.as_ref())
        .or_else(|| {
            sets.iter()
                .find(|t| Some(&t.task_definition) == marks.last_good.as_ref())
        })
        .or(sets.last());
    match pick {
        Some(t) => Step::MakePrimary {
            task_set: t.id.clone(),
        },
        None => Step::CreateTaskSet {
            revision: marks.to.clone(),
            primary: true,
        },
    }
}

fn ids(sets: &[&TaskSetState]) -> Vec<String> {
    sets.iter().map(|t| t.id.clone()).collect()
}

/// Whether the tags hold verdict `v` (a verdict about another set is no verdict on this one).
fn holds(marks: &Marks, v: Verdict) -> bool {
    marks.verdict.as_ref() == Some(&v)
}

/// The rollout to `to` is in flight: promoted (or the service's first set), green beside
/// blue, or no live green at all.
fn in_flight(
    svc: &ServiceState,
    marks: &Marks,
    primary: &TaskSetState,
    others: &[&TaskSetState],
    to: &String,
) -> Step {
    let passed = |id: &str| holds(marks, Verdict::Passed(id.to_owned()));
    let failed = |id: &str| holds(marks, Verdict::Failed(id.to_owned()));
    let unsure = |id: &str| holds(marks, Verdict::Inconclusive(id.to_owned()));
    // The revision in flight is primary: promoted (or the service's first set).
    if *to == primary.task_definition {
        if passed(&primary.id) || marks.last_good.as_ref() == Some(to) {
            return Step::FinishPromotion {
                revision: to.clone(),
                others: ids(others),
            };
        }
        if failed(&primary.id) || unsure(&primary.id) {
            return Step::GiveUp { failed: to.clone() };
        }
        return Step::VerifyTaskSet {
            task_set: primary.id.clone(),
            revision: to.clone(),
            // Never promoted unverified, so nothing else is known good beside it.
            role: Role::First,
            baseline: None,
        };
    }
    // Blue is primary; green is the set of the revision in flight.
    if let Some(green) = others.iter().find(|t| t.task_definition == *to) {
        if passed(&green.id) {
            return Step::Promote {
                task_set: green.id.clone(),
            };
        }
        if failed(&green.id) || unsure(&green.id) {
            return Step::RemoveGreen {
                task_set: Some(green.id.clone()),
                failed: to.clone(),
                restored: primary.task_definition.clone(),
                inconclusive: unsure(&green.id),
            };
        }
        return Step::VerifyTaskSet {
            task_set: green.id.clone(),
            revision: to.clone(),
            role: Role::Green,
            baseline: Some(primary.task_definition.clone()),
        };
    }
    no_green(svc, marks, primary, to)
}

/// No live green: it was deleted (after its failure, or by someone else) or never created
/// (interrupted between tagging the rollout and CreateTaskSet).
fn no_green(svc: &ServiceState, marks: &Marks, primary: &TaskSetState, to: &String) -> Step {
    let deleted = svc
        .task_sets
        .iter()
        .any(|t| t.status == "DRAINING" && t.task_definition == *to);
    let unsure_verdict = matches!(marks.verdict, Some(Verdict::Inconclusive(_)));
    if deleted || unsure_verdict || matches!(marks.verdict, Some(Verdict::Failed(_))) {
        return Step::RemoveGreen {
            task_set: None,
            failed: to.clone(),
            restored: primary.task_definition.clone(),
            inconclusive: unsure_verdict,
        };
    }
    Step::CreateTaskSet {
        revision: Some(to.clone()),
        primary: false,
    }
}

/// Nothing in flight, one primary set at 100 %: compare it with what should run.
fn steady(
    svc: &ServiceState,
    marks: &Marks,
    primary: &TaskSetState,
    running_hash: Option<&str>,
    wanted: Wanted<'_>,
    pass: &Pass,
) -> Step {
    let running = &primary.task_definition;
    if running_hash == Some(wanted.hash) {
        if marks.last_good.as_ref() == Some(running) {
            return Step::Nothing {
                revision: running.clone(),
            };
        }
        return Step::Adopt {
            revision: running.clone(),
            task_set: Some(primary.id.clone()),
            then_done: true,
        };
    }
    if quarantined(svc, wanted.image) {
        return Step::Quarantined {
            image: wanted.image.to_owned(),
        };
    }
    if marks.last_good.is_none() && !pass.adopt_failed {
        return Step::Adopt {
            revision: running.clone(),
            task_set: Some(primary.id.clone()),
            then_done: false,
        };
    }
    Step::CreateTaskSet {
        revision: None,
        primary: false,
    }
}

#[cfg(test)]
mod tests;
