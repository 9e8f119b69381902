//! Fields present in the manifest that no mapping reads: each gets a
//! `dropped` line with the reason, so that nothing disappears silently.

use serde_json::Value;

use super::Action;
use super::context::Ctx;

/// Why a Kubernetes field has no place in an ECS task definition.
fn reason(key: &str) -> &'static str {
    match key {
        "namespace" => "ECS has no namespaces; the cluster and service names place the task",
        "labels" | "annotations" => {
            "Kubernetes labels and annotations have no meaning to ECS (tags are set from the config)"
        }
        "selector" => "an ECS service owns its tasks; there is no label selector",
        "serviceName" => {
            "the headless Service for per-pod DNS; use Cloud Map service discovery on ECS"
        }
        "updateStrategy" | "strategy" => {
            "replaced by the daemon's rollout: minimum healthy 100 %, maximum 200 %, circuit breaker, HTTPS verification and rollback"
        }
        "podManagementPolicy"
        | "minReadySeconds"
        | "revisionHistoryLimit"
        | "progressDeadlineSeconds" => {
            "a Kubernetes controller setting; the daemon's rollout settings take its place"
        }
        "volumeClaimTemplates" | "persistentVolumeClaimRetentionPolicy" => {
            "ActiveGate needs no storage that outlives a task; Fargate volumes are task-scoped"
        }
        "serviceAccountName" | "serviceAccount" | "automountServiceAccountToken" => {
            "the ECS task role takes the place of the Kubernetes service account"
        }
        "tolerations"
        | "nodeName"
        | "schedulerName"
        | "priorityClassName"
        | "priority"
        | "topologySpreadConstraints" => {
            "Fargate schedules tasks itself; spread them by giving the service subnets in several availability zones"
        }
        "dnsPolicy" | "dnsConfig" | "hostNetwork" | "hostPID" | "hostIPC" | "hostAliases"
        | "hostname" | "subdomain" => "Fargate tasks use their own ENI and the VPC's DNS",
        "restartPolicy" => "ECS replaces stopped tasks of a service",
        "enableServiceLinks" => "ECS injects no Service environment variables",
        "imagePullPolicy" => "ECS pulls the image at every task start",
        "envFrom" => "copy the values into [target.environment] in the config",
        "lifecycle" => "ECS has no postStart or preStop hooks",
        "terminationMessagePath" | "terminationMessagePolicy" => {
            "ECS records a stopped reason and exit code instead"
        }
        "stdin" | "stdinOnce" | "tty" => "ActiveGate needs no terminal",
        "status" => "run-time status, not configuration",
        _ => "no equivalent in an ECS task definition",
    }
}

fn keys(v: Option<&Value>) -> Vec<(String, &Value)> {
    v.and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v)).collect())
        .unwrap_or_default()
}

fn drop_unhandled(cx: &mut Ctx<'_>, prefix: &str, obj: Option<&Value>, handled: &[&str]) {
    for (k, v) in keys(obj) {
        if handled.contains(&k.as_str()) || v.is_null() {
            continue;
        }
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let source = format!("{} {path}", cx.m.workload.id());
        cx.report.push(Action::Dropped, source, None, reason(&k));
    }
}

/// Documents that are neither the workload nor a Service.
pub(super) fn skipped_documents(cx: &mut Ctx<'_>) {
    for skipped in &cx.m.skipped {
        cx.report.push(
            Action::Dropped,
            skipped.clone(),
            None,
            "document skipped: this kind has no part in an ActiveGate task",
        );
    }
}

pub(super) fn report(cx: &mut Ctx<'_>) {
    let ag_name = cx.ag_name();
    let raw = cx.m.workload.raw.clone();
    drop_unhandled(cx, "metadata", raw.get("metadata"), &["name"]);
    let spec = raw.get("spec");
    drop_unhandled(cx, "spec", spec, &["replicas", "template"]);
    let template = spec.and_then(|s| s.get("template"));
    drop_unhandled(
        cx,
        "spec.template.metadata",
        template.and_then(|t| t.get("metadata")),
        &[],
    );
    let pod = template.and_then(|t| t.get("spec"));
    drop_unhandled(
        cx,
        "spec.template.spec",
        pod,
        &[
            "containers",
            "initContainers",
            "volumes",
            "imagePullSecrets",
            "affinity",
            "nodeSelector",
            "securityContext",
            "terminationGracePeriodSeconds",
        ],
    );
    let container = pod
        .and_then(|p| p.get("containers"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(ag_name))
        });
    drop_unhandled(
        cx,
        &format!("spec.template.spec.containers[{ag_name}]"),
        container,
        &[
            "name",
            "image",
            "command",
            "args",
            "workingDir",
            "ports",
            "env",
            "volumeMounts",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "resources",
            "securityContext",
        ],
    );

    let services: Vec<(String, Value)> =
        cx.m.services
            .iter()
            .map(|s| (s.name.clone(), s.raw.clone()))
            .collect();
    for (name, raw) in services {
        for (k, v) in keys(raw.get("spec")) {
            if ["ports", "type"].contains(&k.as_str()) || v.is_null() {
                continue;
            }
            cx.report.push(
                Action::Dropped,
                format!("Service/{name} spec.{k}"),
                None,
                reason(&k),
            );
        }
    }
}
