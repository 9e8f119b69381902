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
fn a_blue_green_rollout_resumes_from_every_point_up_to_its_verdict() {
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
}

#[test]
fn a_blue_green_rollout_resumes_from_every_point_after_promotion_or_removal_began() {
    let base = || Svc::external().with_set("b", BLUE, "PRIMARY").good(BLUE);
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
