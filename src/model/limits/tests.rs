use super::*;
use crate::model::task_definition::{
    ContainerDefinition, KeyValuePair, PortMapping, TaskDefinition,
};

fn td() -> TaskDefinition {
    let mut c = ContainerDefinition::new("activegate", "repo/ag:1");
    c.port_mappings.push(PortMapping {
        name: Some("ag-https".into()),
        container_port: 9999,
        protocol: "tcp".into(),
    });
    TaskDefinition {
        family: "ag".into(),
        task_role_arn: None,
        execution_role_arn: None,
        network_mode: "awsvpc".into(),
        container_definitions: vec![c],
        volumes: Vec::new(),
        requires_compatibilities: vec!["FARGATE".into()],
        cpu: "256".into(),
        memory: "512".into(),
        runtime_platform: None,
        tags: Vec::new(),
    }
}

fn fields(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|v| v.field.as_str()).collect()
}

#[test]
fn a_plain_task_definition_passes() {
    assert_eq!(task_definition(&td()), Vec::new());
}

#[test]
fn memory_below_the_reservation_or_docker_minimum_is_refused() {
    let mut t = td();
    t.container_definitions[0].memory = Some(1);
    t.container_definitions[0].memory_reservation = Some(512);
    let v = task_definition(&t);
    assert!(
        fields(&v).contains(&"containerDefinitions[activegate].memory"),
        "{v:?}"
    );
    assert!(container_memory("c", Some(512), Some(512), 512).is_err());
    assert!(container_memory("c", Some(512), Some(256), 512).is_ok());
    assert!(container_memory("c", Some(1024), None, 512).is_err());
}

#[test]
fn names_images_and_ports_follow_ecs() {
    let mut t = td();
    t.container_definitions[0].name = "a".repeat(256);
    t.container_definitions[0].image = format!("r/{}", "b".repeat(300));
    t.container_definitions[0].port_mappings[0].container_port = 0;
    let v = task_definition(&t);
    let f = fields(&v);
    assert!(f.contains(&"containerDefinitions[?].name"), "{f:?}");
    assert!(f.contains(&"containerDefinitions[?].image"), "{f:?}");
    assert!(
        f.contains(&"containerDefinitions[?].portMappings[0].containerPort"),
        "{f:?}"
    );
    assert!(v.iter().all(|v| v.found.len() < 100), "{v:?}");
}

#[test]
fn control_characters_and_tokens_never_reach_a_document() {
    let mut t = td();
    t.container_definitions[0].environment.push(KeyValuePair {
        name: "X".into(),
        value: "a\0b".into(),
    });
    t.container_definitions[0].environment.push(KeyValuePair {
        name: "Y".into(),
        value: "dt0c01.ABCDEFGHIJKLMNOPQRSTUVWX.ABCDEFGHIJKLMNOPQRSTUVWXYZ".into(),
    });
    let v = task_definition(&t);
    let f = fields(&v);
    assert!(
        f.contains(&"containerDefinitions[activegate].environment[X].value"),
        "{f:?}"
    );
    assert!(
        f.contains(&"containerDefinitions[activegate].environment[Y].value"),
        "{f:?}"
    );
    assert!(
        v.iter().all(|v| !v.to_string().contains("ABCDEFGH")),
        "{v:?}"
    );
}

#[test]
fn awsvpc_allows_16_subnets_and_5_security_groups() {
    let c = AwsVpcConfiguration {
        subnets: vec!["subnet-01234567".into(); 17],
        security_groups: vec!["sg-01234567".into(); 6],
        assign_public_ip: "DISABLED".into(),
    };
    assert_eq!(awsvpc("n", &c).len(), 2);
    let ok = AwsVpcConfiguration {
        subnets: vec!["subnet-01234567".into(); 16],
        security_groups: vec!["sg-01234567".into(); 5],
        assign_public_ip: "ENABLED".into(),
    };
    assert!(awsvpc("n", &ok).is_empty());
}

#[test]
fn tags_follow_the_tag_rules() {
    assert!(tags("tags", [("managed-by", "activegate-lifecycle")]).is_empty());
    assert_eq!(tags("tags", [("aws:x", "y")]).len(), 1);
    let key = "k".repeat(129);
    assert_eq!(tags("tags", [(key.as_str(), "v")]).len(), 1);
    let many: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
    assert_eq!(
        tags("tags", many.iter().map(|(k, v)| (k.as_str(), v.as_str()))).len(),
        1
    );
}

#[test]
fn a_violation_says_field_found_allowed_and_source() {
    let e = port("containerDefinitions[ag].portMappings[0].containerPort", 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "containerDefinitions[ag].portMappings[0].containerPort: found 0; allowed: a port from 1 to 65535 (ECS API reference, PortMapping)"
    );
}
