//! The correctness half of the side-by-side benchmark (`cargo bench --bench side_by_side`):
//! outcomes and downtime of this daemon (blue/green and rolling), ECS's circuit breaker alone
//! and a deploy script, on the same simulated service with realistic timings. Timings are
//! measured by the benchmark, never asserted here.

mod simkit;

use simkit::compare::*;

const SPEED: f64 = 200.0;
/// Simulated seconds watched after each rollout.
const WINDOW: f64 = 700.0;
/// Blue/green only needs to be watched until green is gone (about 250 s after the rollout),
/// and runs faster: its cases are the ones added to this test's runtime.
const BLUE_GREEN_WINDOW: f64 = 400.0;
const BLUE_GREEN_SPEED: f64 = 400.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_is_caught_by_all_three_and_the_daemon_keeps_a_healthy_task() {
    let daemon = measure(Strategy::Rolling, Case::Bad, SPEED, WINDOW).await;
    assert_eq!(daemon.outcome, "rolled-back", "{daemon:?}");
    assert!(
        daemon.detect_s.is_some() && daemon.back_s.is_some() && daemon.only_good_s.is_some(),
        "{daemon:?}"
    );
    assert_eq!(daemon.failed_service_probes, 0, "{daemon:?}");

    let breaker = measure(Strategy::Breaker, Case::Bad, SPEED, WINDOW).await;
    assert_eq!(
        breaker.outcome, "deployment FAILED, rolled back by ECS",
        "{breaker:?}"
    );
    assert!(breaker.back_s.is_some(), "{breaker:?}");

    let script = measure(Strategy::Script, Case::Bad, SPEED, WINDOW).await;
    assert_eq!(script.outcome, "timed out: rolled back", "{script:?}");
    let detect = script.detect_s.expect("the script's roll-back");
    assert!(detect >= SCRIPT_TIMEOUT, "{script:?}");
    assert!(script.back_s.is_some(), "{script:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_running_is_caught_by_the_daemon_only() {
    let daemon = measure(Strategy::Rolling, Case::CrashAfterRunning, SPEED, WINDOW).await;
    assert_eq!(daemon.outcome, "rolled-back", "{daemon:?}");
    assert!(daemon.back_s.is_some(), "{daemon:?}");

    let breaker = measure(Strategy::Breaker, Case::CrashAfterRunning, SPEED, WINDOW).await;
    assert_eq!(breaker.detect_s, None, "{breaker:?}");
    assert_eq!(breaker.outcome, "not detected");

    let script = measure(Strategy::Script, Case::CrashAfterRunning, SPEED, WINDOW).await;
    assert_eq!(script.outcome, "stable: declared a success", "{script:?}");
    assert_eq!(script.detect_s, None, "{script:?}");
    // Left alone, the crashing tasks take the service down again and again.
    assert!(script.failed_service_probes > 0, "{script:?}");
    assert!(breaker.failed_service_probes > 0, "{breaker:?}");
    assert_eq!(breaker.only_good_s, None, "{breaker:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_rolls_back_a_late_failure_without_a_moment_with_no_healthy_task() {
    for case in [Case::FailsAfterHealthy, Case::CrashAfterRunning] {
        let m = measure(
            Strategy::BlueGreen,
            case,
            BLUE_GREEN_SPEED,
            BLUE_GREEN_WINDOW,
        )
        .await;
        assert_eq!(m.outcome, "rolled-back", "{m:?}");
        assert_eq!(m.via, Some("green deleted"), "{m:?}");
        assert!(
            m.detect_s.is_some() && m.back_s.is_some() && m.only_good_s.is_some(),
            "{m:?}"
        );
        assert_eq!(m.none_healthy_s, 0.0, "{m:?}");
        assert_eq!(m.failed_service_probes, 0, "{m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_rolls_with_no_failed_service_probe_whoever_rolls_it() {
    for strategy in Strategy::ALL {
        let speed = if strategy == Strategy::BlueGreen {
            BLUE_GREEN_SPEED
        } else {
            SPEED
        };
        let m = measure(strategy, Case::Good, speed, 300.0).await;
        assert!(m.done_s.is_some(), "{m:?}");
        assert!(m.old_gone_s.is_some(), "{m:?}");
        if strategy.is_daemon() {
            assert_eq!(m.outcome, "verified", "{m:?}");
        }
        assert_eq!(m.detect_s, None, "{m:?}");
        assert_eq!(m.failed_service_probes, 0, "{m:?}");
        assert_eq!(m.none_healthy_s, 0.0, "{m:?}");
    }
}
