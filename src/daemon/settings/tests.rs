use super::*;

const EXAMPLE: &str = include_str!("../../../config/activegate-lifecycle.toml");

const MINIMAL: &str = crate::config::MINIMAL_TARGET;

#[test]
fn the_shipped_example_translates_with_its_settings() {
    let c = Config::parse("example", EXAMPLE).expect("the example config must be valid");
    let s = translate(&c.targets[0]);
    assert_eq!(
        s.environment.get("DT_TENANT").map(String::as_str),
        Some("abc12345")
    );
    assert_eq!(
        s.entry_point.as_ref().map(|e| (e.host.as_str(), e.port)),
        Some(("activegate.observability.internal", 9999))
    );
}

#[test]
fn the_mesh_destination_prefers_a_stable_name() {
    use crate::mesh::AddressSource;
    // No mesh: no spec.
    let c = Config::parse("ag.toml", MINIMAL).expect("valid");
    assert!(mesh(&c, &c.targets[0]).is_none());
    // Only sources: the tasks' addresses on the probe port, named after the ECS service.
    let text = format!("{MINIMAL}\n[target.mesh]\nsources = [{{ name = \"web\" }}]\n");
    let c = Config::parse("ag.toml", &text).expect("valid");
    let s = mesh(&c, &c.targets[0]).expect("a mesh");
    assert_eq!(s.addresses, AddressSource::Tasks);
    assert_eq!((s.service.as_str(), s.port), ("dynatrace-activegate", 9999));
    assert_eq!(s.gateway, "terminating-gateway");
    assert!(s.consul.is_none());
    // An entry point with a name: that name and its port.
    let text = text.replace(
        "[target.network]",
        "entry_point = \"https://ag.example.internal:443/communication\"\n\n[target.network]",
    );
    let c = Config::parse("ag.toml", &text).expect("valid");
    let s = mesh(&c, &c.targets[0]).expect("a mesh");
    assert_eq!(
        s.addresses,
        AddressSource::Stable("ag.example.internal".into())
    );
    assert_eq!(s.port, 443);
    // task_addresses wins over the name.
    let forced = text.replace("sources = ", "task_addresses = true\nsources = ");
    let c = Config::parse("ag.toml", &forced).expect("valid");
    assert_eq!(
        mesh(&c, &c.targets[0]).expect("a mesh").addresses,
        AddressSource::Tasks
    );
    // The example's Consul settings.
    let c = Config::parse("example", EXAMPLE).expect("valid");
    let s = mesh(&c, &c.targets[0]).expect("a mesh");
    let consul = s.consul.expect("consul");
    assert_eq!(consul.token_env, "CONSUL_HTTP_TOKEN");
    assert_eq!(consul.datacenter.as_deref(), Some("dc1"));
    assert_eq!(s.sources.len(), 2);
}

#[test]
fn rate_limits_keep_ecs_buckets_where_the_config_says_nothing() {
    let c = Config::parse(
        "ag.toml",
        &format!("[aws.rate_limits]\nservices = {{ burst = 10 }}\ntask_definitions = {{ burst = 5, per_second = 0.5 }}\n{MINIMAL}"),
    )
    .expect("valid");
    let r = rate_limits(&c.aws.rate_limits);
    let ecs = crate::ecs::RateLimits::default();
    assert_eq!(
        (r.services.burst, r.services.per_second),
        (10, ecs.services.per_second)
    );
    assert_eq!(
        (r.task_definitions.burst, r.task_definitions.per_second),
        (5, 0.5)
    );
    assert_eq!(r.tasks, ecs.tasks);
    assert_eq!(r.other, ecs.other);
    let none = Config::parse("ag.toml", MINIMAL).expect("valid");
    assert_eq!(rate_limits(&none.aws.rate_limits), ecs);
}

#[test]
fn a_target_role_becomes_the_clients_assumed_role() {
    let none = Config::parse("ag.toml", MINIMAL).expect("valid");
    assert!(assume_role(&none.targets[0]).is_none());
    let text = MINIMAL.replace(
        "execution_role_arn =",
        "role_arn = \"arn:aws:iam::210987654321:role/ag\"\nexternal_id = \"ag-prod\"\nrole_session_name = \"ag-eu\"\nexecution_role_arn =",
    );
    let c = Config::parse("ag.toml", &text).expect("valid");
    let role = assume_role(&c.targets[0]).expect("a role");
    assert_eq!(role.arn, "arn:aws:iam::210987654321:role/ag");
    assert_eq!(role.session_name, "ag-eu");
    assert_eq!(
        role.external_id.as_ref().map(|e| e.0.as_str()),
        Some("ag-prod")
    );
    assert!(
        !format!("{role:?}").contains("ag-prod"),
        "Debug shows the external ID"
    );
}

#[test]
fn a_target_endpoint_wins_over_the_global_one_for_that_target_only() {
    let two = format!(
        "{MINIMAL}\n{}",
        MINIMAL
            .replace("prod-eu", "prod-us")
            .replace("region = \"eu-central-1\"", "region = \"us-east-1\"")
            .replace(
                "execution_role_arn =",
                "endpoint_url = \"http://127.0.0.1:4567\"\nexecution_role_arn =",
            )
    );
    // Without `[aws] endpoint_url`: the SDK's resolution for the first, its own for the second.
    let c = Config::parse("ag.toml", &two).expect("valid");
    assert_eq!(endpoint_url(&c, &c.targets[0]), None);
    assert_eq!(
        endpoint_url(&c, &c.targets[1]).as_deref(),
        Some("http://127.0.0.1:4567")
    );
    // With it: the global one for the first, still its own for the second.
    let c = Config::parse(
        "ag.toml",
        &format!("[aws]\nendpoint_url = \"http://127.0.0.1:4566\"\n{two}"),
    )
    .expect("valid");
    let first = crate::daemon::wiring::client_settings(&c, &c.targets[0], |_| {});
    let second = crate::daemon::wiring::client_settings(&c, &c.targets[1], |_| {});
    assert_eq!(first.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
    assert_eq!(
        second.endpoint_url.as_deref(),
        Some("http://127.0.0.1:4567")
    );
}
