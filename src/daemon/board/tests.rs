//! The board: what `/metrics` shows, and what a reload keeps.

use super::*;

fn board() -> Board {
    let b = Board::default();
    let (tx, _rx) = mpsc::channel(1);
    b.set_targets(vec![(
        "prod".into(),
        TargetStatus {
            schedule: Some("0 30 3 * * * (UTC)".into()),
            ..TargetStatus::default()
        },
        tx,
    )]);
    b.target("prod", |t| {
        *t.outcomes.entry("verified".into()).or_default() += 2;
        t.probes_ok = 3;
        t.availability = Some(0.999);
    });
    b.probe_latencies("prod", &[0.004, 0.02, 3.0]);
    b
}

#[test]
fn prometheus_text_keeps_the_names_and_the_latency_is_a_histogram() {
    let m = board().metrics();
    for line in [
        "# TYPE activegate_lifecycle_rollouts_total counter",
        "activegate_lifecycle_rollouts_total{target=\"prod\",outcome=\"verified\"} 2",
        "activegate_lifecycle_probes_total{target=\"prod\",result=\"ok\"} 3",
        "activegate_lifecycle_availability_ratio{target=\"prod\"} 0.999",
        "# TYPE activegate_lifecycle_event_loop_lateness_seconds gauge",
        "# TYPE activegate_lifecycle_reconcile_retry_backoff_seconds gauge",
        "# TYPE activegate_lifecycle_probe_latency_seconds histogram",
        "activegate_lifecycle_probe_latency_seconds_bucket{target=\"prod\",le=\"0.005\"} 1",
        "activegate_lifecycle_probe_latency_seconds_bucket{target=\"prod\",le=\"0.025\"} 2",
        "activegate_lifecycle_probe_latency_seconds_bucket{target=\"prod\",le=\"2\"} 2",
        "activegate_lifecycle_probe_latency_seconds_bucket{target=\"prod\",le=\"+Inf\"} 3",
        "activegate_lifecycle_probe_latency_seconds_count{target=\"prod\"} 3",
        "activegate_lifecycle_config_reloads_total{result=\"applied\"} 0",
    ] {
        assert!(m.lines().any(|l| l == line), "no `{line}` in:\n{m}");
    }
    assert!(!m.contains("# EOF"), "{m}");
}

#[test]
fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
    let m = board().openmetrics();
    assert!(
        m.contains("# TYPE activegate_lifecycle_rollouts counter\n"),
        "{m}"
    );
    assert!(
        m.contains("# UNIT activegate_lifecycle_probe_latency_seconds seconds\n"),
        "{m}"
    );
    assert!(m.ends_with("# EOF\n"), "{m}");
}

#[test]
fn a_reload_keeps_what_the_daemon_learnt_and_takes_the_new_config() {
    let b = board();
    let started = Utc::now();
    b.target("prod", |t| {
        // What the old code dropped on a reload: two counters (missed fires is a
        // Prometheus counter, which must not go back to 0), the last error beside the
        // kept last outcome, and a reconcile still in flight (its loop ends after it).
        t.missed_fires = 4;
        t.coalesced_triggers = 2;
        t.last_error = Some("ecs: throttled".into());
        t.running = true;
        t.last_trigger = Some(Trigger::Schedule);
        t.last_started = Some(started);
        // A pending retry belongs to the old loop.
        t.retry_attempt = 3;
        t.retry_backoff_seconds = 8.0;
        t.retry_at = Some(started);
    });
    let before = b.snapshot().targets["prod"].clone();
    let (tx, _rx) = mpsc::channel(1);
    b.set_targets(vec![(
        "prod".into(),
        TargetStatus {
            cluster: "new-cluster".into(),
            service: "new-service".into(),
            schedule: Some("0 0 4 * * * (UTC)".into()),
            ..TargetStatus::default()
        },
        tx,
    )]);
    let t = b.snapshot().targets["prod"].clone();
    assert_eq!(
        (
            t.cluster.as_str(),
            t.service.as_str(),
            t.schedule.as_deref()
        ),
        ("new-cluster", "new-service", Some("0 0 4 * * * (UTC)"))
    );
    assert_eq!((t.retry_attempt, t.retry_at), (0, None));
    assert_eq!(t.retry_backoff_seconds, 0.0);
    assert_eq!(
        (
            t.missed_fires,
            t.coalesced_triggers,
            t.last_error.as_deref()
        ),
        (4, 2, Some("ecs: throttled"))
    );
    assert_eq!(
        (t.running, t.last_trigger, t.last_started),
        (true, Some(Trigger::Schedule), Some(started))
    );
    assert_eq!(t.outcomes, before.outcomes);
    assert_eq!((t.probes_ok, t.availability), (3, Some(0.999)));
    assert!(
        b.metrics()
            .lines()
            .any(|l| l == "activegate_lifecycle_missed_fires_total{target=\"prod\"} 4"),
        "{}",
        b.metrics()
    );
}

#[test]
fn a_target_dropped_by_a_reload_leaves_the_histogram() {
    let b = board();
    let (tx, _rx) = mpsc::channel(1);
    b.set_targets(vec![("other".into(), TargetStatus::default(), tx)]);
    let m = b.metrics();
    assert!(!m.contains("target=\"prod\""), "{m}");
}
