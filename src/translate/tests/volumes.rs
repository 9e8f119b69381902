use super::*;

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
    for (_, p) in crate::translate::volumes::WRITABLE_PATHS {
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
