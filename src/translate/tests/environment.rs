use super::*;

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
