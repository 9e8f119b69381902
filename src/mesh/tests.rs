use serde_json::json;

use super::envoy::view;
use super::*;

fn spec() -> Spec {
    Spec {
        service: "dynatrace-activegate".into(),
        namespace: Some("dynatrace".into()),
        gateway: "terminating-gateway".into(),
        addresses: AddressSource::Tasks,
        port: 9999,
        sources: vec![Source {
            name: "frontend".into(),
            namespace: Some("shop".into()),
        }],
        exclude_cidrs: Vec::new(),
        consul: None,
        envoy_admin: None,
    }
}

#[test]
fn service_defaults_names_the_destination() {
    let e = spec().service_defaults(&["10.0.1.5".into(), "10.0.2.9".into()]);
    assert_eq!(
        e,
        json!({
            "Kind": "service-defaults", "Name": "dynatrace-activegate", "Namespace": "dynatrace",
            "Protocol": "tcp", "Destination": { "Addresses": ["10.0.1.5", "10.0.2.9"], "Port": 9999 }
        })
    );
}

#[test]
fn without_sources_there_are_no_intentions() {
    let mut s = spec();
    s.sources.clear();
    let docs = s.render(&["a.example.internal".into()], Format::Consul);
    let files: Vec<&str> = docs.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(files, ["service-defaults.json", "terminating-gateway.json"]);
}

#[test]
fn task_addresses_as_excluded_cidrs_are_warned_about() {
    let s = spec();
    let (text, warnings) = s.exclusions(&["10.0.1.5".into()], Format::Crd);
    assert!(text.contains("10.0.1.5/32"), "{text}");
    assert!(text.contains("SECURITY"), "{text}");
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("change at every rollout"));
    let mut stable = spec();
    stable.exclude_cidrs = vec!["10.0.16.0/20".into()];
    let (text, warnings) = stable.exclusions(&["10.0.1.5".into()], Format::Consul);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("SECURITY"));
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        v["transparentProxy"]["excludeOutboundCIDRs"],
        json!(["10.0.16.0/20"])
    );
    assert_eq!(v["transparentProxy"]["excludeOutboundPorts"], json!([9999]));
}

fn clusters(hosts: &[(&str, &str)]) -> serde_json::Value {
    json!({ "cluster_statuses": hosts.iter().map(|(addr, health)| json!({
        "name": format!("destination.{}.dynatrace-activegate.dynatrace.dc1.internal.9d891a97-6f0c-61bb-40c4-eb8fffa28743.consul", addr.replace('.', "-")),
        "host_statuses": [{
            "address": { "socket_address": { "address": addr, "port_value": 9999 } },
            "health_status": { "eds_health_status": health }
        }]
    })).collect::<Vec<_>>() })
}

#[test]
fn the_gateway_view_finds_each_destination_cluster_and_its_health() {
    let c = clusters(&[("10.0.1.5", "HEALTHY"), ("10.0.2.9", "UNHEALTHY")]);
    let addresses = ["10.0.1.5".to_owned(), "10.0.2.9".into(), "10.0.3.3".into()];
    let v = view(&c, "dynatrace-activegate", &addresses);
    assert_eq!(v.healthy, ["10.0.1.5"]);
    assert_eq!(
        v.not_healthy,
        [
            ("10.0.2.9".to_owned(), "hosts UNHEALTHY".to_owned()),
            (
                "10.0.3.3".to_owned(),
                "no cluster on the gateway".to_owned()
            )
        ]
    );
    assert!(!v.all_healthy());
    assert_eq!(
        v.summary(),
        "1/3 HEALTHY; 10.0.2.9: hosts UNHEALTHY; 10.0.3.3: no cluster on the gateway"
    );
    // Another service's cluster for the same address does not count.
    let v = view(&c, "other", &addresses[..1]);
    assert!(v.healthy.is_empty());
    // Garbage is no cluster, not a panic.
    let v = view(
        &json!({"cluster_statuses": "nope"}),
        "dynatrace-activegate",
        &addresses[..1],
    );
    assert!(!v.all_healthy());
}
