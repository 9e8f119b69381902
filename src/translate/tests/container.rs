use super::*;

// ---- platform, registry, logs, ports -----------------------------------------------------------

#[test]
fn node_affinity_picks_the_architecture() {
    let arm = sts(&format!(
        "{MINIMAL}affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms:\n        - matchExpressions:\n            - {{key: kubernetes.io/arch, operator: In, values: [arm64]}}\n            - {{key: topology.kubernetes.io/zone, operator: In, values: [eu-central-1a]}}\n"
    ));
    let t = translate_ok(&arm, &full());
    let rp = t
        .task_definition
        .runtime_platform
        .as_ref()
        .expect("runtime platform");
    assert_eq!(
        (
            rp.cpu_architecture.as_str(),
            rp.operating_system_family.as_str()
        ),
        ("ARM64", "LINUX")
    );
    assert!(has_line(
        &t,
        Action::Dropped,
        "Fargate places tasks by subnet"
    ));
    let t = translate_ok(&sts(MINIMAL), &full());
    assert_eq!(
        t.task_definition
            .runtime_platform
            .as_ref()
            .map(|r| r.cpu_architecture.as_str()),
        Some("X86_64")
    );
    assert!(has_line(&t, Action::Added, "x86-64 images only"));
}

#[test]
fn pull_secrets_become_repository_credentials() {
    let yaml = sts(&format!(
        "{MINIMAL}imagePullSecrets: [{{name: dynatrace-docker-registry}}]\n"
    ));
    let t = translate_ok(&yaml, &full());
    assert!(ag(&t).repository_credentials.is_none());
    assert!(has_line(
        &t,
        Action::NeedsSetting,
        "dynatrace-docker-registry"
    ));
    let mut s = full();
    s.registry_credentials = Some(arn(
        "arn:aws:secretsmanager:eu-central-1:123456789012:secret:pull-AbCdEf",
    ));
    let t = translate_ok(&yaml, &s);
    assert_eq!(
        ag(&t)
            .repository_credentials
            .as_ref()
            .map(|r| r.credentials_parameter.as_str()),
        Some("arn:aws:secretsmanager:eu-central-1:123456789012:secret:pull-AbCdEf")
    );
    // The token writer pulls the same image, so it needs the same credentials.
    assert!(
        t.task_definition
            .container(secrets::TOKEN_WRITER)
            .and_then(|w| w.repository_credentials.as_ref())
            .is_some()
    );
}

#[test]
fn logs_go_to_the_configured_group() {
    let t = translate_ok(&sts(MINIMAL), &full());
    let lc = ag(&t)
        .log_configuration
        .as_ref()
        .expect("log configuration");
    assert_eq!(lc.log_driver, "awslogs");
    assert_eq!(
        lc.options.get("awslogs-group").map(String::as_str),
        Some("/ecs/ag")
    );
    assert_eq!(
        lc.options.get("awslogs-region").map(String::as_str),
        Some("eu-central-1")
    );
    assert_eq!(
        lc.options.get("awslogs-stream-prefix").map(String::as_str),
        Some("activegate")
    );
    let t = translate_ok(&sts(MINIMAL), &Settings::default());
    assert!(ag(&t).log_configuration.is_none());
    assert!(has_line(&t, Action::NeedsSetting, "logs.group"));
}

#[test]
fn the_activegate_port_is_kept_by_name_or_added() {
    let t = translate_ok(&sts(&format!("{MINIMAL}{PROBES}")), &full());
    let pm = &ag(&t).port_mappings;
    assert_eq!(pm.len(), 1);
    assert_eq!(
        (
            pm[0].name.as_deref(),
            pm[0].container_port,
            pm[0].protocol.as_str()
        ),
        (Some("ag-https"), 9999, "tcp")
    );
    let t = translate_ok(&sts(MINIMAL), &full());
    assert_eq!(ag(&t).port_mappings[0].container_port, 9999);
    assert!(has_line(&t, Action::Added, "9999 (ag-https)"));
}

#[test]
fn the_fargate_basics_are_always_set() {
    let t = translate_ok(&sts(MINIMAL), &full());
    let td = &t.task_definition;
    assert_eq!(td.network_mode, "awsvpc");
    assert_eq!(td.requires_compatibilities, ["FARGATE"]);
    assert_eq!(td.family, "ag");
    assert_eq!(
        td.execution_role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/exec")
    );
    assert!(
        td.tags
            .iter()
            .any(|t| t.key == "managed-by" && t.value == "activegate-lifecycle")
    );
    assert!(crate::model::fargate::is_valid(
        td.cpu.parse().expect("number"),
        td.memory.parse().expect("number")
    ));
}

#[test]
fn a_termination_grace_period_becomes_a_stop_timeout_within_fargates_limit() {
    let t = translate_ok(
        &sts(&format!("{MINIMAL}terminationGracePeriodSeconds: 600\n")),
        &full(),
    );
    assert_eq!(ag(&t).stop_timeout, Some(120));
    assert!(has_line(&t, Action::Adjusted, "Fargate allows 2–120 s"));
}
