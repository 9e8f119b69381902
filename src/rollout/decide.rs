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
    svc.tags.get(&tags::quarantine_key(image)).map(String::as_str) == Some(image)
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

fn blue_green(
    svc: &ServiceState,
    marks: &Marks,
    running_hash: Option<&str>,
    wanted: Wanted<'_>,
    pass: &Pass,
) -> Step {
    let Some(primary) = svc.primary_task_set() else {
        // No primary set: a new service, or one whose first set was never made primary.
        let sets: Vec<&TaskSetState> = live(svc).collect();
        let pick = sets
            .iter()
            .find(|t| Some(&t.task_definition) == marks.to.as_ref())
            .or_else(|| {
                sets.iter()
                    .find(|t| Some(&t.task_definition) == marks.last_good.as_ref())
            })
            .or(sets.last());
        return match pick {
            Some(t) => Step::MakePrimary {
                task_set: t.id.clone(),
            },
            None => Step::CreateTaskSet {
                revision: marks.to.clone(),
                primary: true,
            },
        };
    };
    let others: Vec<&TaskSetState> = live(svc).filter(|t| t.id != primary.id).collect();
    let other_ids = || others.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    let passed = |id: &str| marks.verdict == Some(Verdict::Passed(id.to_owned()));
    let failed = |id: &str| marks.verdict == Some(Verdict::Failed(id.to_owned()));
    let unsure = |id: &str| marks.verdict == Some(Verdict::Inconclusive(id.to_owned()));

    if let Some(to) = &marks.to {
        // The revision in flight is primary: promoted (or the service's first set).
        if *to == primary.task_definition {
            if passed(&primary.id) || marks.last_good.as_ref() == Some(to) {
                return Step::FinishPromotion {
                    revision: to.clone(),
                    others: other_ids(),
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
        // No live green: it was deleted (after its failure, or by someone else) or never
        // created (interrupted between tagging the rollout and CreateTaskSet).
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
        return Step::CreateTaskSet {
            revision: Some(to.clone()),
            primary: false,
        };
    }

    if !others.is_empty() {
        return Step::RemoveTaskSets {
            task_sets: other_ids(),
        };
    }
    if primary.scale < 100.0 {
        return Step::ScalePrimary {
            task_set: primary.id.clone(),
        };
    }
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
mod tests {
    //! Every state a service can be in — including each one an interrupted run leaves —
    //! built from plain values, and the step `decide` takes from it.

    use std::collections::BTreeMap;

    use super::*;
    use crate::ecs::DeploymentState;

    const BLUE: &str = "arn:aws:ecs:us-east-1:1:task-definition/ag:1";
    const GREEN: &str = "arn:aws:ecs:us-east-1:1:task-definition/ag:2";
    const IMAGE: &str = "registry/ag:1.303";
    const WANT: &str = "hash-green";

    fn set(id: &str, td: &str, status: &str, scale: f64) -> TaskSetState {
        TaskSetState {
            id: id.into(),
            arn: format!("arn:aws:ecs:us-east-1:1:task-set/c/s/{id}"),
            status: status.into(),
            task_definition: td.into(),
            scale,
            computed_desired_count: 2,
            running_count: 2,
            pending_count: 0,
            stability_status: "STEADY_STATE".into(),
            external_id: String::new(),
        }
    }

    /// A service, fluently.
    struct Svc(ServiceState);

    impl Svc {
        fn rolling(td: &str) -> Svc {
            Svc(ServiceState {
                arn: "arn:aws:ecs:us-east-1:1:service/c/s".into(),
                name: "s".into(),
                status: "ACTIVE".into(),
                task_definition: td.into(),
                desired_count: 2,
                running_count: 2,
                deployments: vec![DeploymentState {
                    id: "ecs-svc/1".into(),
                    status: "PRIMARY".into(),
                    task_definition: td.into(),
                    rollout_state: "COMPLETED".into(),
                    rollout_state_reason: String::new(),
                    failed_tasks: 0,
                    desired_count: 2,
                    running_count: 2,
                }],
                external: false,
                task_sets: vec![],
                tags: BTreeMap::new(),
            })
        }
        fn external() -> Svc {
            let mut s = Self::rolling("");
            s.0.external = true;
            s.0.deployments.clear();
            s
        }
        fn with_set(mut self, id: &str, td: &str, status: &str) -> Svc {
            if status == "PRIMARY" {
                self.0.task_definition = td.into();
            }
            self.0.task_sets.push(set(id, td, status, 100.0));
            self
        }
        fn tag(mut self, k: &str, v: &str) -> Svc {
            self.0.tags.insert(k.into(), v.into());
            self
        }
        fn good(self, td: &str) -> Svc {
            self.tag(tags::LAST_GOOD, td)
        }
        fn rollout(self, from: &str, to: &str) -> Svc {
            self.tag(tags::ROLLOUT_FROM, from)
                .tag(tags::ROLLOUT_TO, to)
                .tag(tags::ROLLOUT_STARTED, "1700000000")
        }
        fn verdict(self, v: Verdict) -> Svc {
            self.tag(tags::VERDICT, &v.tag_value())
        }
        fn quarantine(self, image: &str) -> Svc {
            self.tag(&crate::rollout::quarantine_key(image), image)
        }
    }

    fn wanted(strategy: Strategy) -> Wanted<'static> {
        Wanted {
            hash: WANT,
            image: IMAGE,
            strategy,
        }
    }

    fn step(svc: &Svc, running_hash: &str) -> Step {
        decide(
            Some(&svc.0),
            Some(running_hash),
            wanted(Strategy::BlueGreen),
            &Pass::default(),
        )
    }

    #[test]
    fn a_missing_service_is_created_with_the_configured_strategy() {
        for s in [Strategy::BlueGreen, Strategy::Rolling] {
            assert_eq!(
                decide(None, None, wanted(s), &Pass::default()),
                Step::CreateService { strategy: s }
            );
        }
    }

    #[test]
    fn blue_green_steady_states() {
        let svc = Svc::external().with_set("b", BLUE, "PRIMARY").good(BLUE);
        assert_eq!(
            step(&svc, WANT),
            Step::Nothing {
                revision: BLUE.into()
            }
        );
        // Desired differs: a green set beside blue.
        assert_eq!(
            step(&svc, "old"),
            Step::CreateTaskSet {
                revision: None,
                primary: false
            }
        );
        // ... unless its image is quarantined.
        let q = Svc::external()
            .with_set("b", BLUE, "PRIMARY")
            .good(BLUE)
            .quarantine(IMAGE);
        assert_eq!(
            step(&q, "old"),
            Step::Quarantined {
                image: IMAGE.into()
            }
        );
        // Never verified by us: adopt first, then roll.
        let fresh = Svc::external().with_set("b", BLUE, "PRIMARY");
        assert_eq!(
            step(&fresh, "old"),
            Step::Adopt {
                revision: BLUE.into(),
                task_set: Some("b".into()),
                then_done: false
            }
        );
        assert_eq!(
            step(&fresh, WANT),
            Step::Adopt {
                revision: BLUE.into(),
                task_set: Some("b".into()),
                then_done: true
            }
        );
        // The serving set is unhealthy and nothing is known good: roll out anyway.
        let after_failed_adopt = decide(
            Some(&fresh.0),
            Some("old"),
            wanted(Strategy::BlueGreen),
            &Pass { adopt_failed: true },
        );
        assert_eq!(
            after_failed_adopt,
            Step::CreateTaskSet {
                revision: None,
                primary: false
            }
        );
    }

    #[test]
    fn a_new_external_service_gets_its_first_set_then_verifies_it() {
        let empty = Svc::external();
        assert_eq!(
            step(&empty, WANT),
            Step::CreateTaskSet {
                revision: None,
                primary: true
            }
        );
        // Interrupted after tagging the rollout, before CreateTaskSet: the same revision.
        let tagged = Svc::external().tag(tags::ROLLOUT_TO, GREEN);
        assert_eq!(
            step(&tagged, WANT),
            Step::CreateTaskSet {
                revision: Some(GREEN.into()),
                primary: true
            }
        );
        // Interrupted after CreateTaskSet, before UpdateServicePrimaryTaskSet.
        let unpromoted = Svc::external()
            .tag(tags::ROLLOUT_TO, GREEN)
            .with_set("g", GREEN, "ACTIVE");
        assert_eq!(
            step(&unpromoted, WANT),
            Step::MakePrimary {
                task_set: "g".into()
            }
        );
        let first = Svc::external()
            .tag(tags::ROLLOUT_TO, GREEN)
            .with_set("g", GREEN, "PRIMARY");
        assert_eq!(
            step(&first, WANT),
            Step::VerifyTaskSet {
                task_set: "g".into(),
                revision: GREEN.into(),
                role: Role::First,
                baseline: None
            }
        );
        assert_eq!(
            step(&first.verdict(Verdict::Failed("g".into())), WANT),
            Step::GiveUp {
                failed: GREEN.into()
            }
        );
    }

    #[test]
    fn a_blue_green_rollout_resumes_from_every_point_it_can_be_killed() {
        let base = || Svc::external().with_set("b", BLUE, "PRIMARY").good(BLUE);
        // Killed after the rollout tag, before CreateTaskSet.
        assert_eq!(
            step(&base().rollout(BLUE, GREEN), WANT),
            Step::CreateTaskSet {
                revision: Some(GREEN.into()),
                primary: false
            }
        );
        // Killed after CreateTaskSet, or during the bake: verify green again.
        let flying = || base().rollout(BLUE, GREEN).with_set("g", GREEN, "ACTIVE");
        assert_eq!(
            step(&flying(), WANT),
            Step::VerifyTaskSet {
                task_set: "g".into(),
                revision: GREEN.into(),
                role: Role::Green,
                baseline: Some(BLUE.into())
            }
        );
        // Killed after the verdict: promote a passed set, remove a failed one.
        assert_eq!(
            step(&flying().verdict(Verdict::Passed("g".into())), WANT),
            Step::Promote {
                task_set: "g".into()
            }
        );
        assert_eq!(
            step(&flying().verdict(Verdict::Failed("g".into())), WANT),
            Step::RemoveGreen {
                task_set: Some("g".into()),
                failed: GREEN.into(),
                restored: BLUE.into(),
                inconclusive: false
            }
        );
        // Inconclusive: removed like a failure, but said so (and never quarantined).
        assert_eq!(
            step(&flying().verdict(Verdict::Inconclusive("g".into())), WANT),
            Step::RemoveGreen {
                task_set: Some("g".into()),
                failed: GREEN.into(),
                restored: BLUE.into(),
                inconclusive: true
            }
        );
        // A verdict about another set is no verdict about this one.
        assert_eq!(
            step(&flying().verdict(Verdict::Passed("old".into())), WANT),
            Step::VerifyTaskSet {
                task_set: "g".into(),
                revision: GREEN.into(),
                role: Role::Green,
                baseline: Some(BLUE.into())
            }
        );
        // Killed after UpdateServicePrimaryTaskSet: finish the promotion.
        let promoted = Svc::external()
            .with_set("b", BLUE, "ACTIVE")
            .with_set("g", GREEN, "PRIMARY")
            .good(BLUE)
            .rollout(BLUE, GREEN)
            .verdict(Verdict::Passed("g".into()));
        assert_eq!(
            step(&promoted, WANT),
            Step::FinishPromotion {
                revision: GREEN.into(),
                others: vec!["b".into()]
            }
        );
        // Killed while blue drains (last good already moved): finish, blue is left out.
        let draining = Svc::external()
            .with_set("b", BLUE, "DRAINING")
            .with_set("g", GREEN, "PRIMARY")
            .good(GREEN)
            .rollout(BLUE, GREEN)
            .verdict(Verdict::Passed("g".into()));
        assert_eq!(
            step(&draining, WANT),
            Step::FinishPromotion {
                revision: GREEN.into(),
                others: vec![]
            }
        );
        // Killed after deleting a failed green, before clearing the rollout.
        let removed = base()
            .rollout(BLUE, GREEN)
            .verdict(Verdict::Failed("g".into()));
        assert_eq!(
            step(&removed, WANT),
            Step::RemoveGreen {
                task_set: None,
                failed: GREEN.into(),
                restored: BLUE.into(),
                inconclusive: false
            }
        );
        let deleted_by_someone = base().rollout(BLUE, GREEN).with_set("g", GREEN, "DRAINING");
        assert!(matches!(
            step(&deleted_by_someone, WANT),
            Step::RemoveGreen { task_set: None, .. }
        ));
    }

    #[test]
    fn leftovers_outside_a_rollout_are_cleaned_and_blue_is_never_scaled_down() {
        let stray = Svc::external()
            .with_set("g", GREEN, "PRIMARY")
            .with_set("b", BLUE, "ACTIVE")
            .good(GREEN);
        assert_eq!(
            step(&stray, WANT),
            Step::RemoveTaskSets {
                task_sets: vec!["b".into()]
            }
        );
        let mut low = Svc::external().with_set("g", GREEN, "PRIMARY").good(GREEN);
        low.0.task_sets[0].scale = 0.0;
        assert_eq!(
            step(&low, WANT),
            Step::ScalePrimary {
                task_set: "g".into()
            }
        );
        // No primary at all but sets: the last good one becomes primary, never deleted.
        let headless = Svc::external()
            .with_set("x", GREEN, "ACTIVE")
            .with_set("b", BLUE, "ACTIVE")
            .good(BLUE);
        assert_eq!(
            step(&headless, WANT),
            Step::MakePrimary {
                task_set: "b".into()
            }
        );
    }

    #[test]
    fn rolling_states() {
        let svc = Svc::rolling(BLUE).good(BLUE);
        let roll = |s: &Svc, h: &str| {
            decide(
                Some(&s.0),
                Some(h),
                wanted(Strategy::BlueGreen),
                &Pass::default(),
            )
        };
        assert_eq!(
            roll(&svc, WANT),
            Step::Nothing {
                revision: BLUE.into()
            }
        );
        // A rolling service keeps its controller whatever new services get.
        assert_eq!(roll(&svc, "old"), Step::StartRolling);
        assert_eq!(
            roll(&Svc::rolling(BLUE).good(BLUE).quarantine(IMAGE), "old"),
            Step::Quarantined {
                image: IMAGE.into()
            }
        );
        assert!(matches!(
            roll(&Svc::rolling(BLUE), "old"),
            Step::Adopt {
                task_set: None,
                then_done: false,
                ..
            }
        ));
        // In flight and running: verify it.
        assert_eq!(
            roll(&Svc::rolling(GREEN).good(BLUE).rollout(BLUE, GREEN), WANT),
            Step::VerifyRolling {
                to: GREEN.into(),
                from: Some(BLUE.into())
            }
        );
        // In flight but not running (the update never happened, or ECS rolled back).
        assert!(matches!(
            roll(&Svc::rolling(BLUE).good(BLUE).rollout(BLUE, GREEN), WANT),
            Step::RollBack { .. }
        ));
        assert_eq!(
            roll(&Svc::rolling(BLUE).rollout(BLUE, GREEN), WANT),
            Step::ClearMark
        );
    }

    #[test]
    fn every_step_reads_as_a_sentence() {
        let steps = [
            Step::CreateService {
                strategy: Strategy::BlueGreen,
            },
            Step::CreateTaskSet {
                revision: None,
                primary: false,
            },
            Step::RemoveGreen {
                task_set: Some("g".into()),
                failed: GREEN.into(),
                restored: BLUE.into(),
                inconclusive: false,
            },
        ];
        for s in steps {
            let text = s.to_string();
            assert!(text.len() > 20 && !text.contains("{"), "{text}");
        }
    }

    #[test]
    fn verdicts_round_trip_through_their_tag() {
        for v in [
            Verdict::Passed("ecs-svc/1".into()),
            Verdict::Failed("x".into()),
        ] {
            assert_eq!(Verdict::parse(&v.tag_value()), Some(v));
        }
        assert_eq!(Verdict::parse("maybe:1"), None);
    }
}
