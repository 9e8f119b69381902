//! Where Fargate runs the task: CPU architecture and OS from the pod's node
//! affinity and nodeSelector; other placement rules are reported as dropped.

use super::context::Ctx;
use super::report::Action;
use crate::model::task_definition::RuntimePlatform;

/// node affinity / nodeSelector on architecture and OS → runtimePlatform.
pub(super) fn map_platform(cx: &mut Ctx<'_>) -> RuntimePlatform {
    let pod = &cx.m.workload.pod;
    let mut archs: Vec<String> = Vec::new();
    let mut oses: Vec<String> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    let terms = pod
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|s| s.node_selector_terms.as_slice())
        .unwrap_or_default();
    for term in terms {
        for e in &term.match_expressions {
            match (e.key.as_str(), e.operator.as_str()) {
                ("kubernetes.io/arch" | "beta.kubernetes.io/arch", "In") => {
                    archs.extend(e.values.iter().cloned())
                }
                ("kubernetes.io/os" | "beta.kubernetes.io/os", "In") => {
                    oses.extend(e.values.iter().cloned())
                }
                _ => other.push(format!("{} {} {:?}", e.key, e.operator, e.values)),
            }
        }
    }
    for (k, v) in &pod.node_selector {
        match k.as_str() {
            "kubernetes.io/arch" | "beta.kubernetes.io/arch" => archs.push(v.clone()),
            "kubernetes.io/os" | "beta.kubernetes.io/os" => oses.push(v.clone()),
            _ => other.push(format!("{k}={v}")),
        }
    }
    if !other.is_empty() {
        cx.note(Action::Dropped, "affinity.nodeAffinity", None, format!(
            "{}: Fargate places tasks by subnet; spread subnets over availability zones instead", other.join(", ")));
    }
    if oses.iter().any(|o| o != "linux") {
        cx.note(
            Action::Dropped,
            "affinity.nodeAffinity",
            None,
            format!("os {oses:?}: the ActiveGate image is Linux only"),
        );
    }
    let cpu_architecture = if archs.iter().any(|a| a == "amd64") || archs.is_empty() {
        "X86_64"
    } else if archs.iter().any(|a| a == "arm64") {
        "ARM64"
    } else {
        cx.note(
            Action::Dropped,
            "affinity.nodeAffinity",
            None,
            format!("architectures {archs:?}: Fargate runs X86_64 or ARM64"),
        );
        "X86_64"
    };
    let target = Some("runtimePlatform");
    if archs.is_empty() {
        cx.note(
            Action::Added,
            "affinity.nodeAffinity",
            target,
            "X86_64/LINUX: the Dynatrace environment registry ships x86-64 images only",
        );
    } else if archs.len() > 1 {
        cx.note(Action::Adjusted, "affinity.nodeAffinity", target, format!(
            "{archs:?} → {cpu_architecture}/LINUX: a Fargate task definition names one architecture"));
    } else {
        cx.note(
            Action::Mapped,
            "affinity.nodeAffinity",
            target,
            format!("{} → {cpu_architecture}/LINUX", archs[0]),
        );
    }
    RuntimePlatform {
        cpu_architecture: cpu_architecture.into(),
        operating_system_family: "LINUX".into(),
    }
}
