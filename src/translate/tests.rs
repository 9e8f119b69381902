//! One focused test per mapping. Manifests are built from a pod spec written
//! at column 0 and wrapped into a StatefulSet.

use super::*;
use crate::model::task_definition::ContainerDefinition;

fn indent(body: &str, by: usize) -> String {
    body.lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("{}{l}", " ".repeat(by))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A StatefulSet named `ag` around this pod spec.
fn sts(pod_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: ag\nspec:\n  template:\n    spec:\n{}\n",
        indent(pod_spec, 6)
    )
}

const MINIMAL: &str =
    "containers:\n  - name: activegate\n    image: repo/activegate:1.301.70.20241127-162512\n";

fn parse_ok(yaml: &str) -> Manifest {
    parse("test.yaml", yaml.as_bytes()).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

fn translate_ok(yaml: &str, s: &Settings) -> Translation {
    translate(&parse_ok(yaml), s).unwrap_or_else(|e| panic!("translate failed: {e}"))
}

fn err(yaml: &str, s: &Settings) -> TranslateError {
    match parse("test.yaml", yaml.as_bytes()).and_then(|m| translate(&m, s)) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn ag(t: &Translation) -> &ContainerDefinition {
    t.task_definition
        .container(&t.container)
        .expect("the ActiveGate container")
}

fn lines(t: &Translation, action: Action) -> Vec<String> {
    t.report
        .with(action)
        .map(|e| format!("{} | {}", e.source, e.detail))
        .collect()
}

fn has_line(t: &Translation, action: Action, needle: &str) -> bool {
    lines(t, action).iter().any(|l| l.contains(needle))
}

fn arn<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("valid test ARN")
}

const TENANT_ARN: &str = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:dt/tenant-AbCdEf";
const AUTH_ARN: &str = "arn:aws:ssm:eu-central-1:123456789012:parameter/dt/auth";

/// Settings as a complete config would give them.
fn full() -> Settings {
    Settings {
        target: Some("prod-eu".into()),
        cluster: Some(arn("observability")),
        service: Some(arn("dynatrace-activegate")),
        execution_role_arn: Some(arn("arn:aws:iam::123456789012:role/exec")),
        logs: Some(LogSettings {
            group: arn("/ecs/ag"),
            region: arn("eu-central-1"),
            stream_prefix: "activegate".into(),
        }),
        tenant_token: Some(arn(TENANT_ARN)),
        auth_token: Some(arn(AUTH_ARN)),
        subnets: vec![arn("subnet-0123456789abcdef0")],
        environment: [
            ("DT_TENANT", "abc12345"),
            (
                "DT_SERVER",
                "https://abc12345.live.dynatrace.com/communication",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..Settings::default()
    }
}

// ---- resources ---------------------------------------------------------------------------------

fn with_resources(req: &str, lim: &str) -> String {
    sts(&format!(
        "{MINIMAL}    resources:\n      requests: {{{req}}}\n      limits: {{{lim}}}\n"
    ))
}

#[test]
fn quarter_cpu_half_gib_rounds_to_the_smallest_fargate_size() {
    let t = translate_ok(
        &with_resources("cpu: 250m, memory: 512Mi", "cpu: 250m, memory: 512Mi"),
        &full(),
    );
    assert_eq!(
        (
            t.task_definition.cpu.as_str(),
            t.task_definition.memory.as_str()
        ),
        ("256", "512")
    );
    assert_eq!(ag(&t).cpu, Some(256));
    // A request equal to the limit: only the hard limit (ECS wants memory above
    // memoryReservation; without a reservation the limit is what is reserved).
    assert_eq!(ag(&t).memory_reservation, None);
    assert_eq!(ag(&t).memory, Some(512));
    assert!(has_line(&t, Action::Adjusted, "equal to the limit"));
    assert!(has_line(
        &t,
        Action::Warning,
        "below Dynatrace's sizing guidance"
    ));
}

#[test]
fn odd_sizes_round_up_to_a_valid_pair() {
    let t = translate_ok(
        &with_resources("cpu: 300m, memory: 600Mi", "memory: 3Gi"),
        &full(),
    );
    // 300m = 308 units → 512 CPU; 3 GiB fits 512 CPU.
    assert_eq!(
        (
            t.task_definition.cpu.as_str(),
            t.task_definition.memory.as_str()
        ),
        ("512", "3072")
    );
    assert!(has_line(
        &t,
        Action::Adjusted,
        "rounded up to the smallest valid size"
    ));
    assert!(!has_line(&t, Action::Warning, "sizing guidance"));
}

#[test]
fn missing_resources_use_dynatrace_small_size() {
    let t = translate_ok(&sts(MINIMAL), &full());
    assert_eq!(
        (
            t.task_definition.cpu.as_str(),
            t.task_definition.memory.as_str()
        ),
        ("256", "2048")
    );
    assert!(has_line(&t, Action::Added, "small routing ActiveGate"));
}

#[test]
fn beyond_fargate_is_refused() {
    let e = err(&with_resources("cpu: 32", "memory: 1Gi"), &full());
    assert!(
        matches!(e, TranslateError::TooLargeForFargate { .. }),
        "{e}"
    );
}

#[test]
fn an_unparseable_quantity_names_its_line() {
    let e = err(&with_resources("cpu: 250x", "memory: 1Gi"), &full());
    let msg = e.to_string();
    assert!(msg.starts_with("test.yaml:12:"), "{msg}");
    assert!(msg.contains("`250x` is not a Kubernetes quantity"), "{msg}");
}

// ---- security context --------------------------------------------------------------------------

#[test]
fn security_context_maps_what_ecs_can_express() {
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    securityContext:\n      allowPrivilegeEscalation: false\n      capabilities:\n        drop: [all]\n        add: [NET_ADMIN, SYS_PTRACE]\n      privileged: false\n      readOnlyRootFilesystem: true\n      runAsNonRoot: true\n      seccompProfile: {{type: RuntimeDefault}}\n"
        )),
        &full(),
    );
    let c = ag(&t);
    assert_eq!(c.user.as_deref(), Some("1001"));
    assert_eq!(c.readonly_root_filesystem, Some(true));
    assert_eq!(c.privileged, None);
    let caps = c
        .linux_parameters
        .as_ref()
        .and_then(|l| l.capabilities.as_ref())
        .expect("capabilities");
    assert_eq!(caps.drop, ["ALL"]);
    assert_eq!(caps.add, ["SYS_PTRACE"]);
    assert!(has_line(
        &t,
        Action::Dropped,
        "Fargate allows adding only SYS_PTRACE"
    ));
    assert!(has_line(&t, Action::Dropped, "allowPrivilegeEscalation"));
    assert!(has_line(&t, Action::Dropped, "seccompProfile"));
}

#[test]
fn explicit_user_and_group_win_over_the_default() {
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    securityContext: {{runAsUser: 1500, runAsGroup: 1600, runAsNonRoot: true}}\n"
        )),
        &full(),
    );
    assert_eq!(ag(&t).user.as_deref(), Some("1500:1600"));
}

// ---- volumes -----------------------------------------------------------------------------------

#[test]
fn empty_dirs_become_task_volumes_and_writable_paths_are_added() {
    let t = translate_ok(
        &sts(
            "containers:\n  - name: activegate\n    image: r/ag:1\n    securityContext: {readOnlyRootFilesystem: true}\n    volumeMounts:\n      - {name: cfg, mountPath: /var/lib/dynatrace/gateway/config}\n      - {name: jks, mountPath: /etc/x/cacerts, subPath: k.jks}\n      - {name: host, mountPath: /mnt/root}\nvolumes:\n  - {name: cfg, emptyDir: {medium: Memory}}\n  - {name: jks, emptyDir: {}}\n  - {name: host, hostPath: {path: /}}\n",
        ),
        &full(),
    );
    let c = ag(&t);
    let paths: Vec<&str> = c
        .mount_points
        .iter()
        .map(|m| m.container_path.as_str())
        .collect();
    for (_, p) in WRITABLE_PATHS {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert!(!paths.contains(&"/etc/x/cacerts"));
    assert!(!paths.contains(&"/mnt/root"));
    let names: Vec<&str> = t
        .task_definition
        .volumes
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert!(names.contains(&"cfg"));
    assert!(
        !names.contains(&"jks"),
        "a volume only a dropped mount used is dropped"
    );
    assert!(!names.contains(&"host"));
    assert!(has_line(&t, Action::Dropped, "subPath cannot be expressed"));
    assert!(has_line(
        &t,
        Action::Dropped,
        "Fargate gives no access to the host"
    ));
    assert!(has_line(&t, Action::Adjusted, "medium Memory dropped"));
    // Every mount names a volume of the task.
    for m in &c.mount_points {
        assert!(
            names.contains(&m.source_volume.as_str()),
            "{} has no volume",
            m.source_volume
        );
    }
}

#[test]
fn without_a_read_only_root_no_volumes_are_added() {
    let t = translate_ok(&sts(MINIMAL), &full());
    let c = ag(&t);
    assert!(
        c.mount_points
            .iter()
            .all(|m| m.container_path == secrets::TOKENS_DIR)
    );
}

// ---- tokens ------------------------------------------------------------------------------------

#[test]
fn tokens_reach_activegate_as_files_through_an_init_container() {
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    volumeMounts:\n      - {{name: tokens, mountPath: /var/lib/dynatrace/secrets/tokens}}\nvolumes:\n  - {{name: tokens, secret: {{secretName: dynatrace-tokens}}}}\n"
        )),
        &full(),
    );
    let td = &t.task_definition;
    let writer = td.container(secrets::TOKEN_WRITER).expect("token writer");
    assert!(!writer.essential);
    let refs: Vec<(&str, &str)> = writer
        .secrets
        .iter()
        .map(|s| (s.name.as_str(), s.value_from.as_str()))
        .collect();
    assert_eq!(
        refs,
        [("TENANT_TOKEN", TENANT_ARN), ("AUTH_TOKEN", AUTH_ARN)]
    );
    assert!(
        writer
            .mount_points
            .iter()
            .any(|m| m.source_volume == "tokens" && !m.read_only)
    );
    let c = ag(&t);
    assert!(
        c.secrets.is_empty(),
        "ActiveGate itself gets no secrets as environment"
    );
    assert!(c.mount_points.iter().any(|m| m.source_volume == "tokens"
        && m.read_only
        && m.container_path == secrets::TOKENS_DIR));
    assert_eq!(c.depends_on.len(), 1);
    assert_eq!(
        (
            c.depends_on[0].container_name.as_str(),
            c.depends_on[0].condition.as_str()
        ),
        (secrets::TOKEN_WRITER, "SUCCESS")
    );
    assert!(td.volumes.iter().any(|v| v.name == "tokens"));
}

#[test]
fn a_tokens_volume_is_added_when_the_manifest_has_none() {
    let t = translate_ok(&sts(MINIMAL), &full());
    assert!(
        t.task_definition
            .volumes
            .iter()
            .any(|v| v.name == "dynatrace-tokens")
    );
    assert!(
        ag(&t)
            .mount_points
            .iter()
            .any(|m| m.container_path == secrets::TOKENS_DIR && m.read_only)
    );
}

#[test]
fn without_a_token_arn_the_report_asks_for_one() {
    let t = translate_ok(&sts(MINIMAL), &Settings::default());
    assert!(t.task_definition.container(secrets::TOKEN_WRITER).is_none());
    assert!(has_line(&t, Action::NeedsSetting, "tenant token"));
}

#[test]
fn literal_tokens_are_refused_with_their_place_and_without_their_value() {
    let cases = [
        (
            "env:\n      - {name: DT_TENANT_TOKEN, value: s3cr3t-value}\n",
            "env `DT_TENANT_TOKEN`",
        ),
        (
            "env:\n      - {name: ANYTHING, value: dt0c01.ABCDEF.s3cr3t-value}\n",
            "env `ANYTHING`",
        ),
        ("args: ['--authtoken=s3cr3t-value']\n", "args[0]"),
        ("args: ['--token', 's3cr3t-value']\n", "args[1]"),
    ];
    for (extra, what) in cases {
        let yaml = sts(&format!("{MINIMAL}    {extra}"));
        let e = err(&yaml, &full());
        let msg = e.to_string();
        assert!(matches!(e, TranslateError::LiteralSecret { .. }), "{msg}");
        assert!(msg.contains(what), "{msg}");
        assert!(msg.starts_with("test.yaml:"), "{msg}");
        assert!(
            !msg.contains("s3cr3t"),
            "the error repeats the secret: {msg}"
        );
    }
}

#[test]
fn secret_references_are_not_copied() {
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    env:\n      - name: PROXY_PASSWORD\n        valueFrom: {{secretKeyRef: {{name: proxy, key: password}}}}\n"
        )),
        &full(),
    );
    assert!(ag(&t).env("PROXY_PASSWORD").is_none());
    assert!(has_line(
        &t,
        Action::NeedsSetting,
        "Kubernetes secret `proxy`"
    ));
}

// ---- Kubernetes-only parts ---------------------------------------------------------------------

#[test]
fn kubernetes_monitoring_and_its_trust_store_loader_are_dropped() {
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    env:\n      - {{name: DT_CAPABILITIES, value: 'kubernetes_monitoring,MSGrouter,restInterface'}}\n      - {{name: DT_ID_SEED_NAMESPACE, value: dynatrace}}\ninitContainers:\n  - name: certificate-loader\n    image: r/ag:1\n    args: ['-c', '/opt/dynatrace/gateway/k8scrt2jks.sh']\n"
        )),
        &Settings::default(),
    );
    assert_eq!(
        ag(&t).env("DT_CAPABILITIES"),
        Some("MSGrouter,restInterface")
    );
    assert_eq!(ag(&t).env("DT_ID_SEED_NAMESPACE"), None);
    assert!(t.task_definition.container("certificate-loader").is_none());
    assert!(has_line(&t, Action::Dropped, "Java trust store"));
    assert!(has_line(
        &t,
        Action::Adjusted,
        "kubernetes_monitoring needs the Kubernetes API"
    ));
}

// ---- environment -------------------------------------------------------------------------------

#[test]
fn service_variable_references_are_resolved_or_reported_never_copied() {
    let yaml = sts(&format!(
        "{MINIMAL}    env:\n      - {{name: BASE, value: base}}\n      - {{name: DERIVED, value: '$(BASE)/x and $$(LITERAL)'}}\n      - {{name: DT_DNS_ENTRY_POINT, value: 'https://$(AG_SERVICE_HOST):$(AG_SERVICE_PORT)/communication'}}\n      - {{name: OTHER, value: '$(NOPE)'}}\n"
    ));
    let t = translate_ok(&yaml, &Settings::default());
    let c = ag(&t);
    assert_eq!(c.env("DERIVED"), Some("base/x and $(LITERAL)"));
    assert_eq!(c.env("DT_DNS_ENTRY_POINT"), None);
    assert_eq!(c.env("OTHER"), None);
    assert!(has_line(&t, Action::NeedsSetting, "set `entry_point`"));
    assert!(
        c.environment
            .iter()
            .all(|kv| !kv.value.contains("$(AG") && !kv.value.contains("$(NOPE"))
    );

    let s = Settings {
        entry_point: Some(EntryPoint {
            url: "https://ag.internal:9999/communication".into(),
            host: "ag.internal".into(),
            port: 9999,
        }),
        ..Settings::default()
    };
    let t = translate_ok(&yaml, &s);
    assert_eq!(
        ag(&t).env("DT_DNS_ENTRY_POINT"),
        Some("https://ag.internal:9999/communication")
    );
}

#[test]
fn config_environment_wins_and_required_values_are_asked_for() {
    let yaml = sts(&format!(
        "{MINIMAL}    env:\n      - {{name: DT_NETWORK_ZONE, value: k8s}}\n"
    ));
    let mut s = full();
    s.environment
        .insert("DT_NETWORK_ZONE".into(), "aws.eu".into());
    let t = translate_ok(&yaml, &s);
    assert_eq!(ag(&t).env("DT_NETWORK_ZONE"), Some("aws.eu"));
    assert_eq!(ag(&t).env("DT_TENANT"), Some("abc12345"));
    let t = translate_ok(&yaml, &Settings::default());
    assert!(has_line(&t, Action::NeedsSetting, "environment.DT_TENANT"));
    assert!(has_line(&t, Action::NeedsSetting, "environment.DT_SERVER"));
}

// ---- probes ------------------------------------------------------------------------------------

const PROBES: &str = "    ports: [{name: ag-https, containerPort: 9999}]\n    livenessProbe:\n      httpGet: {path: /rest/state, port: ag-https, scheme: HTTPS}\n      initialDelaySeconds: 400\n      periodSeconds: 30\n      timeoutSeconds: 1\n      failureThreshold: 2\n    readinessProbe:\n      httpGet: {path: /rest/health, port: ag-https, scheme: HTTPS}\n      periodSeconds: 15\n      failureThreshold: 3\n";

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

// ---- documents, kinds, services ----------------------------------------------------------------

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: ag}\nspec:\n  selector: {app: ag}\n  ports: [{port: 443, targetPort: ag-https}]\n---\n";

#[test]
fn the_service_becomes_a_registry_or_a_load_balancer() {
    let yaml = format!("{SERVICE}{}", sts(&format!("{MINIMAL}{PROBES}")));
    let t = translate_ok(&yaml, &full());
    assert_eq!(t.service_ports, [(String::new(), 9999)]);
    assert!(has_line(&t, Action::NeedsSetting, "port 443 → 9999"));

    let mut s = full();
    s.service_registry_arn = Some(arn(
        "arn:aws:servicediscovery:eu-central-1:123456789012:service/srv-abc",
    ));
    s.desired_count = Some(3);
    let t = translate_ok(&yaml, &s);
    let doc = service_document(&t, &s).expect("service document");
    assert_eq!(doc.service_registries.len(), 1);
    assert_eq!(doc.desired_count, 3);
    assert_eq!(doc.deployment_configuration.minimum_healthy_percent, 100);
    assert_eq!(doc.deployment_configuration.maximum_percent, 200);
    assert!(
        doc.deployment_configuration
            .deployment_circuit_breaker
            .enable
    );
    assert!(
        doc.deployment_configuration
            .deployment_circuit_breaker
            .rollback
    );
    assert_eq!(doc.task_definition, "ag");

    s.target_group_arn = Some(arn(
        "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/ag/abc",
    ));
    let doc = service_document(&translate_ok(&yaml, &s), &s).expect("service document");
    assert_eq!(doc.load_balancers[0].container_port, 9999);
    assert_eq!(doc.load_balancers[0].container_name, "activegate");
    assert!(
        doc.health_check_grace_period_seconds
            .is_some_and(|g| g >= 90)
    );

    let e = service_document(&t, &Settings::default()).expect_err("needs a cluster");
    assert!(e.to_string().contains("`cluster`"));
}

#[test]
fn other_kinds_are_skipped_and_reported() {
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\ndata: {{a: b}}\n---\n{}",
        sts(MINIMAL)
    );
    let t = translate_ok(&yaml, &full());
    assert!(has_line(&t, Action::Dropped, "ConfigMap/cm"));
}

#[test]
fn a_deployment_works_like_a_statefulset() {
    let yaml = sts(MINIMAL).replace("kind: StatefulSet", "kind: Deployment");
    let t = translate_ok(&yaml, &full());
    assert_eq!(t.task_definition.family, "ag");
}

#[test]
fn no_workload_two_workloads_or_no_container_are_errors() {
    let e = err(SERVICE.trim_end_matches("---\n"), &full());
    assert!(matches!(e, TranslateError::NoWorkload { .. }), "{e}");
    assert!(e.to_string().contains("found Service/ag"), "{e}");

    let two = format!(
        "{}---\n{}",
        sts(MINIMAL),
        sts(MINIMAL).replace("name: ag\n", "name: ag2\n")
    );
    let e = err(&two, &full());
    assert!(
        e.to_string()
            .contains("one ActiveGate workload per manifest"),
        "{e}"
    );

    let e = err(&sts("containers: []\n"), &full());
    assert!(e.to_string().contains("has no containers"), "{e}");
    let e = err(&sts("volumes: []\n"), &full());
    assert!(e.to_string().contains("has no containers"), "{e}");
}

#[test]
fn the_activegate_is_found_among_several_containers() {
    let yaml = sts(
        "containers:\n  - {name: proxy, image: envoy:1}\n  - {name: activegate, image: r/ag:1}\n",
    );
    let t = translate_ok(&yaml, &full());
    assert_eq!(t.container, "activegate");
    assert!(t.task_definition.container("proxy").is_none());
    assert!(has_line(&t, Action::Dropped, "containers[proxy]"));
    let e = err(
        &sts("containers:\n  - {name: a, image: x:1}\n  - {name: b, image: y:1}\n"),
        &full(),
    );
    assert!(
        e.to_string()
            .contains("none is named or imaged like an ActiveGate"),
        "{e}"
    );
}

#[test]
fn translation_is_deterministic() {
    let yaml = format!("{SERVICE}{}", sts(&format!("{MINIMAL}{PROBES}")));
    let a = serde_json::to_string(&translate_ok(&yaml, &full()).task_definition).expect("json");
    let b = serde_json::to_string(&translate_ok(&yaml, &full()).task_definition).expect("json");
    assert_eq!(a, b);
    assert_eq!(
        translate_ok(&yaml, &full()).report,
        translate_ok(&yaml, &full()).report
    );
}

#[test]
fn unmapped_fields_are_reported_with_reasons() {
    let yaml = sts(&format!(
        "{MINIMAL}    imagePullPolicy: Always\n    lifecycle: {{preStop: {{exec: {{command: [x]}}}}}}\nserviceAccountName: ag\ntolerations: [{{key: a}}]\n"
    ));
    let t = translate_ok(&yaml, &full());
    assert!(has_line(
        &t,
        Action::Dropped,
        "imagePullPolicy | ECS pulls the image"
    ));
    assert!(has_line(
        &t,
        Action::Dropped,
        "lifecycle | ECS has no postStart"
    ));
    assert!(has_line(
        &t,
        Action::Dropped,
        "serviceAccountName | the ECS task role"
    ));
    assert!(has_line(
        &t,
        Action::Dropped,
        "tolerations | Fargate schedules"
    ));
}

// ---- parse errors ------------------------------------------------------------------------------

#[test]
fn yaml_errors_carry_line_and_column() {
    let e = err("kind: StatefulSet\nspec:\n  template: [unclosed\n", &full());
    assert!(matches!(e, TranslateError::Yaml { .. }), "{e}");
    assert!(e.to_string().starts_with("test.yaml:3:"), "{e}");

    let bad_type = sts(
        "containers:\n  - name: activegate\n    image: r/ag:1\n    ports: [{containerPort: abc}]\n",
    );
    let e = err(&bad_type, &full());
    assert!(e.to_string().starts_with("test.yaml:11:"), "{e}");
}

#[test]
fn empty_non_utf8_and_oversized_input_are_refused() {
    assert!(matches!(parse("x", b""), Err(TranslateError::Empty { .. })));
    assert!(matches!(
        parse("x", b"# only a comment\n---\n"),
        Err(TranslateError::Empty { .. })
    ));
    let e = parse("x", b"kind: Service\nmetadata:\n  name: a\xffb\n").expect_err("not UTF-8");
    assert_eq!(
        e.to_string(),
        "x:3:10: the file is not UTF-8 text (invalid byte at offset 33)"
    );
    let big = vec![b'#'; (manifest::MAX_MANIFEST_BYTES + 1) as usize];
    assert!(matches!(
        parse("x", &big),
        Err(TranslateError::TooLarge { .. })
    ));
}

#[test]
fn yaml_1_1_booleans_stay_strings() {
    // `value: on` must not become `true` (nor fail as a boolean where a string is expected).
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    env:\n      - {{name: FLAG, value: on}}\n"
        )),
        &full(),
    );
    assert_eq!(ag(&t).env("FLAG"), Some("on"));
}
