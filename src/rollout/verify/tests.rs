use super::*;

fn round() -> Round {
    Round {
        interval: Duration::from_secs(15),
        started_late: Duration::ZERO,
        event_loop_late: Duration::ZERO,
        new_probes: 2,
        new_failed: 2,
        old_probes: 2,
        old_failed: 0,
        connect_failed: 0,
    }
}

#[test]
fn new_tasks_failing_while_old_ones_answer_is_evidence() {
    assert_eq!(inconclusive(&round()), None);
    // One old task failing too is not "all of them".
    assert_eq!(
        inconclusive(&Round {
            old_failed: 1,
            ..round()
        }),
        None
    );
    // Without a baseline, failures count unless a self-check says otherwise.
    assert_eq!(
        inconclusive(&Round {
            old_probes: 0,
            old_failed: 0,
            ..round()
        }),
        None
    );
}

#[test]
fn old_and_new_failing_together_proves_nothing() {
    let why = inconclusive(&Round {
        old_failed: 2,
        ..round()
    })
    .expect("inconclusive");
    assert!(why.contains("old and new tasks failed together"), "{why}");
}

#[test]
fn a_round_that_started_late_proves_nothing() {
    // The injected clock: this round began 20 s after it was planned, with a 15 s interval.
    let late = Round {
        started_late: Duration::from_secs(20),
        ..round()
    };
    let why = inconclusive(&late).expect("inconclusive");
    assert!(why.contains("started 20.0 s late"), "{why}");
    // Within the interval it is not.
    assert_eq!(
        inconclusive(&Round {
            started_late: Duration::from_secs(10),
            ..round()
        }),
        None
    );
}

#[test]
fn a_late_event_loop_or_no_connection_at_all_proves_nothing() {
    let busy = Round {
        event_loop_late: Duration::from_millis(1500),
        ..round()
    };
    assert!(inconclusive(&busy).is_some_and(|w| w.contains("event loop")));
    let cut = Round {
        old_probes: 0,
        old_failed: 0,
        connect_failed: 2,
        ..round()
    };
    assert!(inconclusive(&cut).is_some_and(|w| w.contains("connect")));
}

#[test]
fn success_is_evidence_whatever_the_load() {
    let ok = Round {
        new_failed: 0,
        started_late: Duration::from_secs(60),
        event_loop_late: Duration::from_secs(5),
        old_failed: 2,
        ..round()
    };
    assert_eq!(inconclusive(&ok), None);
}
