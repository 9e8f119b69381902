use super::*;

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
