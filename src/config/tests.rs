use super::*;

const EXAMPLE: &str = include_str!("../../config/activegate-lifecycle.toml");

const MINIMAL: &str = MINIMAL_TARGET;

fn invalid(text: &str) -> (usize, usize, String, String) {
    match Config::parse("ag.toml", text) {
        Err(ConfigError::Invalid {
            line,
            column,
            field,
            message,
            ..
        }) => (line, column, field, message),
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn the_shipped_example_is_valid() {
    let c = Config::parse("example", EXAMPLE).expect("the example config must be valid");
    assert_eq!(c.targets.len(), 1);
    let t = &c.targets[0];
    assert_eq!(
        t.environment.to_map().get("DT_TENANT").map(String::as_str),
        Some("abc12345")
    );
    assert_eq!(
        t.entry_point.as_ref().map(|e| (e.host.as_str(), e.port)),
        Some(("activegate.observability.internal", 9999))
    );
}

#[test]
fn a_minimal_target_gets_defaults() {
    let c = Config::parse("ag.toml", MINIMAL).expect("valid");
    let t = &c.targets[0];
    assert_eq!(t.logs.retention_days.0, 30);
    assert_eq!(t.logs.stream_prefix.0, "activegate");
    assert!(t.container_health_check);
    assert!(!t.network.assign_public_ip);
}

#[test]
fn a_misspelt_field_names_the_nearest_valid_one() {
    let text = MINIMAL.replace("region =", "regoin =");
    let (line, column, field, message) = invalid(&text);
    assert_eq!((line, column), (3, 1));
    assert_eq!(field, "target[0].regoin");
    assert!(message.contains("unknown field `regoin`"), "{message}");
    assert!(message.contains("did you mean `region`?"), "{message}");

    let text = format!("{MINIMAL}\n[target.environment]\nDT_TENNANT = \"abc\"\n");
    let (_, _, field, message) = invalid(&text);
    assert_eq!(field, "target[0].environment.DT_TENNANT");
    assert!(message.contains("did you mean `DT_TENANT`?"), "{message}");
}

#[test]
fn an_arn_of_the_wrong_service_is_named() {
    let text = MINIMAL.replace(
        "arn:aws:iam::123456789012:role/exec",
        "arn:aws:s3:::my-bucket",
    );
    let (line, _, field, message) = invalid(&text);
    assert_eq!(line, 6);
    assert_eq!(field, "target[0].execution_role_arn");
    assert!(message.contains("an IAM role ARN"), "{message}");
    assert!(message.contains("`arn:aws:s3:::my-bucket`"), "{message}");
    assert!(message.contains("service `s3`"), "{message}");
}

#[test]
fn a_retention_cloudwatch_does_not_offer_lists_the_allowed_values() {
    let text = MINIMAL.replace(
        "group = \"/ecs/activegate\"",
        "group = \"/ecs/activegate\"\nretention_days = 45",
    );
    let (line, column, field, message) = invalid(&text);
    assert_eq!((line, column), (13, 18));
    assert_eq!(field, "target[0].logs.retention_days");
    assert!(
        message.contains("45 days is not a CloudWatch Logs retention"),
        "{message}"
    );
    assert!(message.contains("1, 3, 5, 7, 14, 30"), "{message}");
    assert!(message.contains("nearest: 30"), "{message}");
}

#[test]
fn errors_in_a_later_target_name_that_target() {
    let second = MINIMAL
        .replace("prod-eu", "prod-us")
        .replace("dynatrace-activegate", "ag-us")
        .replace(
            "subnets = [\"subnet-0123456789abcdef0\"]",
            "subnets = [\n  \"subnet-0123456789abcdef0\",\n  \"subnet-nothex\",\n]",
        );
    let (line, _, field, message) = invalid(&format!("{MINIMAL}\n{second}"));
    // The span of an array element is the array's: the `subnets = [` line.
    assert_eq!(line, 25);
    assert_eq!(field, "target[1].network.subnets");
    assert!(message.contains("a subnet ID"), "{message}");
}

#[test]
fn wrong_types_and_empty_lists_are_refused() {
    let (_, _, field, message) = invalid(&MINIMAL.replace(
        "service = \"dynatrace-activegate\"",
        "service = \"dynatrace-activegate\"\ndesired_count = \"three\"",
    ));
    assert_eq!(field, "target[0].desired_count");
    assert!(message.contains("invalid type"), "{message}");
    let (_, _, field, message) = invalid(&MINIMAL.replace("[\"subnet-0123456789abcdef0\"]", "[]"));
    assert_eq!(field, "target[0].network.subnets");
    assert!(message.contains("at least one"), "{message}");
    let (_, _, _, message) = invalid(&MINIMAL.replace(
        "service = \"dynatrace-activegate\"",
        "service = \"dynatrace-activegate\"\ndesired_count = 0",
    ));
    assert!(
        message.contains("expected 1 to 100 tasks, found 0"),
        "{message}"
    );
}

#[test]
fn kubernetes_monitoring_is_refused_on_ecs() {
    let (_, _, field, message) = invalid(&format!(
        "{MINIMAL}\n[target.environment]\nDT_CAPABILITIES = \"MSGrouter,kubernetes_monitoring\"\n"
    ));
    assert_eq!(field, "target[0].environment.DT_CAPABILITIES");
    assert!(message.contains("needs the Kubernetes API"), "{message}");
}

#[test]
fn a_token_in_the_environment_is_refused() {
    let (_, _, _, message) = invalid(&format!(
        "{MINIMAL}\n[target.environment]\nDT_GROUP = \"dt0c01.ABC.DEF\"\n"
    ));
    assert!(
        message.contains("looks like a Dynatrace token"),
        "{message}"
    );
    assert!(
        !message.contains("dt0c01.ABC"),
        "the error repeats the token: {message}"
    );
}

#[test]
fn registry_credentials_must_come_from_secrets_manager() {
    let text = MINIMAL.replace(
        "tenant_token =",
        "registry_credentials = \"arn:aws:ssm:eu-central-1:123456789012:parameter/pull\"\ntenant_token =",
    );
    let (_, _, field, message) = invalid(&text);
    assert_eq!(field, "target[0].secrets.registry_credentials");
    assert!(message.contains("only from Secrets Manager"), "{message}");
}

#[test]
fn duplicate_targets_are_refused() {
    let err = Config::parse("ag.toml", &format!("{MINIMAL}\n{MINIMAL}")).expect_err("duplicate");
    let msg = err.to_string();
    // The place of the field the check names: the second target's name.
    assert!(msg.contains("ag.toml:18:1: target[1].name:"), "{msg}");
    assert!(
        msg.contains("`prod-eu` is used by an earlier target"),
        "{msg}"
    );
    let same_service = MINIMAL.replace("prod-eu", "prod-eu-2");
    let msg = Config::parse("ag.toml", &format!("{MINIMAL}\n{same_service}"))
        .expect_err("same service")
        .to_string();
    assert!(msg.contains("would fight"), "{msg}");
    // The same names in another account (through `role_arn`) are another service; in the
    // same account through a role, the same one.
    let in_account = |account: &str, name: &str| {
        MINIMAL.replace("prod-eu", name).replace(
            "execution_role_arn",
            &format!("role_arn = \"arn:aws:iam::{account}:role/ag\"\nexecution_role_arn"),
        )
    };
    Config::parse(
        "ag.toml",
        &format!("{MINIMAL}\n{}", in_account("210987654321", "prod-eu-b")),
    )
    .expect("another account's service of the same name");
    let twice = format!(
        "{}\n{}",
        in_account("210987654321", "b-1"),
        in_account("210987654321", "b-2")
    );
    let msg = Config::parse("ag.toml", &twice)
        .expect_err("one account's service twice")
        .to_string();
    assert!(msg.contains("would fight"), "{msg}");
}

#[test]
fn an_empty_config_or_broken_toml_is_refused() {
    let msg = Config::parse("ag.toml", "# nothing\n")
        .expect_err("empty")
        .to_string();
    assert!(msg.contains("no [[target]]"), "{msg}");
    let (line, _, _, _) = invalid("[[target]\nname = 1\n");
    assert_eq!(line, 1);
    let (_, _, field, message) = invalid("colour = \"blue\"\n");
    assert_eq!(field, "colour");
    assert!(message.contains("unknown field `colour`"), "{message}");
}

#[test]
fn targets_are_chosen_by_name() {
    let two = format!(
        "{MINIMAL}\n{}",
        MINIMAL
            .replace("prod-eu", "prod-us")
            .replace("dynatrace-activegate", "ag-us")
    );
    let c = Config::parse("ag.toml", &two).expect("valid");
    assert_eq!(c.target(Some("prod-us")).expect("exists").name.0, "prod-us");
    let msg = c.target(None).expect_err("ambiguous").to_string();
    assert!(
        msg.contains("choose one with --target (prod-eu, prod-us)"),
        "{msg}"
    );
    let msg = c.target(Some("nope")).expect_err("unknown").to_string();
    assert!(msg.contains("no target named `nope`"), "{msg}");
    let one = Config::parse("ag.toml", MINIMAL).expect("valid");
    assert_eq!(one.target(None).expect("only one").name.0, "prod-eu");
}

#[test]
fn a_duplicate_table_is_named_by_its_header() {
    let text = format!("[aws]\nmax_attempts = 3\n{MINIMAL}\n[aws]\n");
    let (line, _, field, message) = invalid(&text);
    assert_eq!(line, 19);
    assert_eq!(field, "aws");
    assert!(message.contains("duplicate"), "{message}");
}

#[test]
fn bad_mesh_values_are_named() {
    for (field, value, expected) in [
        ("exclude_cidrs", "[\"10.0.0.0/33\"]", "CIDR block"),
        ("address", "\"*.example.internal\"", "DNS name"),
        ("sources", "[{ name = \"web app\" }]", "letters, digits"),
        ("consul_address", "\"consul:8500\"", "http(s) URL"),
    ] {
        let text = format!("{MINIMAL}\n[target.mesh]\n{field} = {value}\n");
        let (line, _, f, message) = invalid(&text);
        assert!(
            f.starts_with(&format!("target[0].mesh.{field}")),
            "{field}: {f}"
        );
        assert!(message.contains(expected), "{field}: {message}");
        assert!(line > 15, "{field}: line {line}");
    }
    let text = format!("{MINIMAL}\n[target.mesh]\nconsul_adress = \"http://x:8500\"\n");
    let (_, _, _, message) = invalid(&text);
    assert!(
        message.contains("did you mean `consul_address`?"),
        "{message}"
    );
}

#[test]
fn env_paths_are_not_joined_to_the_config_folder() {
    let c = Config::parse("/etc/activegate-lifecycle/ag.toml", MINIMAL).expect("valid");
    assert_eq!(
        c.resolve(Path::new("env:ACTIVEGATE_MANIFEST")),
        Path::new("env:ACTIVEGATE_MANIFEST")
    );
    assert_eq!(
        c.resolve(Path::new("activegate.yaml")),
        Path::new("/etc/activegate-lifecycle/activegate.yaml")
    );
}

#[test]
fn a_role_in_another_account_is_parsed_and_its_external_id_never_shown() {
    let text = MINIMAL.replace(
        "execution_role_arn =",
        "role_arn = \"arn:aws:iam::210987654321:role/activegate-lifecycle\"\nexternal_id = \"Zx8Qp2Lm9Vt4Rb7Nc1Hd6Jf3Ks5Wg0Ye\"\nexecution_role_arn =",
    );
    let c = Config::parse("ag.toml", &text).expect("valid");
    let t = &c.targets[0];
    assert_eq!(
        t.role_arn.as_ref().map(ToString::to_string).as_deref(),
        Some("arn:aws:iam::210987654321:role/activegate-lifecycle")
    );
    assert_eq!(t.role_session_name.0, "activegate-lifecycle");
    assert!(
        !format!("{c:?}").contains("Zx8Qp2Lm9"),
        "Debug shows the external ID"
    );

    let (_, _, field, message) = invalid(&MINIMAL.replace(
        "execution_role_arn =",
        "role_arn = \"arn:aws:iam::210987654321:user/alice\"\nexecution_role_arn =",
    ));
    assert_eq!(field, "target[0].role_arn");
    assert!(message.contains("`role/`"), "{message}");

    let (_, _, field, message) = invalid(&MINIMAL.replace(
        "execution_role_arn =",
        "external_id = \"secret id!\"\nexecution_role_arn =",
    ));
    assert_eq!(field, "target[0].external_id");
    assert!(message.contains("ExternalId"), "{message}");
    assert!(
        !message.contains("secret id"),
        "the refusal repeats the value: {message}"
    );

    let (_, _, field, message) = invalid(&MINIMAL.replace(
        "execution_role_arn =",
        "role_session_name = \"a\"\nexecution_role_arn =",
    ));
    assert_eq!(field, "target[0].role_session_name");
    assert!(message.contains("2 to 64"), "{message}");
}

#[test]
fn rate_limits_are_checked_per_family() {
    let c = Config::parse(
        "ag.toml",
        &format!("[aws.rate_limits]\nservices = {{ burst = 10, per_second = 2.5 }}\ntask_definitions = {{ per_second = 0.5 }}\n{MINIMAL}"),
    )
    .expect("valid");
    let r = &c.aws.rate_limits;
    let s = r.services.as_ref().expect("services");
    assert_eq!(
        (
            s.burst.as_ref().map(|b| b.0),
            s.per_second.as_ref().map(|p| p.0)
        ),
        (Some(10), Some(2.5))
    );
    assert!(r.tasks.is_none());
    for (table, expected) in [
        ("services = { burst = 0, per_second = 1 }", "at least 1"),
        (
            "tasks = { burst = 5, per_second = 0 }",
            "above 0 and at most 10000",
        ),
        (
            "other = { burst = 5, per_second = 20000 }",
            "above 0 and at most 10000",
        ),
    ] {
        let (line, _, field, message) = invalid(&format!("[aws.rate_limits]\n{table}\n{MINIMAL}"));
        assert_eq!(line, 2, "{table}");
        assert!(field.starts_with("aws.rate_limits"), "{table}: {field}");
        assert!(message.contains(expected), "{table}: {message}");
    }
    let (_, _, _, message) = invalid(&format!(
        "[aws.rate_limits]\nservice = {{ burst = 5 }}\n{MINIMAL}"
    ));
    assert!(message.contains("did you mean `services`?"), "{message}");
}

#[test]
fn a_target_endpoint_is_parsed_beside_the_global_one_and_checked_alike() {
    let text = format!(
        "[aws]\nendpoint_url = \"http://127.0.0.1:4566\"\n{}",
        MINIMAL.replace(
            "execution_role_arn =",
            "endpoint_url = \"https://ecs.eu-west-1.amazonaws.com\"\nexecution_role_arn =",
        )
    );
    let c = Config::parse("ag.toml", &text).expect("valid");
    assert_eq!(
        c.targets[0].endpoint_url.as_ref().map(|u| u.0.as_str()),
        Some("https://ecs.eu-west-1.amazonaws.com")
    );
    assert_eq!(
        c.aws.endpoint_url.as_ref().map(|u| u.0.as_str()),
        Some("http://127.0.0.1:4566")
    );
    let plain = Config::parse("ag.toml", MINIMAL).expect("valid");
    assert!(plain.targets[0].endpoint_url.is_none());

    // The same refusal as `[aws] endpoint_url`'s, at the target's field.
    let (line, column, field, message) = invalid(&MINIMAL.replace(
        "execution_role_arn =",
        "endpoint_url = \"ecs.eu-west-1.amazonaws.com\"\nexecution_role_arn =",
    ));
    assert_eq!((line, column), (6, 16));
    assert_eq!(field, "target[0].endpoint_url");
    assert!(message.contains("expected an http(s) URL"), "{message}");
    let (_, _, global_field, global_message) = invalid(&format!(
        "[aws]\nendpoint_url = \"ecs.eu-west-1.amazonaws.com\"\n{MINIMAL}"
    ));
    assert_eq!(global_field, "aws.endpoint_url");
    assert_eq!(global_message, message);
}
