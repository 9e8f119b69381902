//! One focused test per mapping. Manifests are built from a pod spec written
//! at column 0 and wrapped into a StatefulSet.

mod container;
mod documents;
mod environment;
mod parse;
mod probes;
mod resources;
mod security;
mod volumes;

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

/// Liveness and readiness probes on the ActiveGate port, under MINIMAL.
const PROBES: &str = "    ports: [{name: ag-https, containerPort: 9999}]\n    livenessProbe:\n      httpGet: {path: /rest/state, port: ag-https, scheme: HTTPS}\n      initialDelaySeconds: 400\n      periodSeconds: 30\n      timeoutSeconds: 1\n      failureThreshold: 2\n    readinessProbe:\n      httpGet: {path: /rest/health, port: ag-https, scheme: HTTPS}\n      periodSeconds: 15\n      failureThreshold: 3\n";

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
