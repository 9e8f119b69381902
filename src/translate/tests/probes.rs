use super::*;

// ---- probes ------------------------------------------------------------------------------------

#[test]
fn liveness_becomes_a_container_health_check_within_ecs_limits() {
    let t = translate_ok(&sts(&format!("{MINIMAL}{PROBES}")), &full());
    let hc = ag(&t).health_check.as_ref().expect("health check");
    assert_eq!(hc.command[0], "CMD-SHELL");
    assert!(
        hc.command[1].contains("https://127.0.0.1:9999/rest/state"),
        "{:?}",
        hc.command
    );
    assert!(hc.command[1].contains("grep -q RUNNING"));
    assert_eq!(
        (hc.interval, hc.timeout, hc.retries, hc.start_period),
        (30, 2, 2, 300)
    );
    assert!(has_line(
        &t,
        Action::Adjusted,
        "initialDelaySeconds 400 → 300"
    ));
}

#[test]
fn readiness_is_kept_for_the_daemon() {
    let t = translate_ok(&sts(&format!("{MINIMAL}{PROBES}")), &full());
    assert_eq!(t.readiness.port, 9999);
    assert_eq!(t.readiness.path, "/rest/health");
    assert_eq!(
        (t.readiness.period_seconds, t.readiness.failure_threshold),
        (15, 3)
    );
}

#[test]
fn the_health_check_can_be_left_to_the_daemon() {
    let mut s = full();
    s.container_health_check = Some(false);
    let t = translate_ok(&sts(&format!("{MINIMAL}{PROBES}")), &s);
    assert!(ag(&t).health_check.is_none());
    assert!(has_line(
        &t,
        Action::Dropped,
        "container_health_check = false"
    ));
}

#[test]
fn exec_probes_map_and_socket_probes_do_not() {
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    livenessProbe: {{exec: {{command: [cat, /tmp/ok]}}}}\n"
        )),
        &full(),
    );
    assert_eq!(
        ag(&t).health_check.as_ref().map(|h| h.command.clone()),
        Some(vec!["CMD".into(), "cat".into(), "/tmp/ok".into()])
    );
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    livenessProbe: {{tcpSocket: {{port: 9999}}}}\n"
        )),
        &full(),
    );
    assert!(ag(&t).health_check.is_none());
    assert!(has_line(&t, Action::Dropped, "tcpSocket"));
}
