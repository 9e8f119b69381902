//! The Kubernetes Service → the ECS service document (`create-service`).

use super::context::Ctx;
use super::manifest::IntOrString;
use super::{Action, Settings, TranslateError, Translation};
use crate::model::MANAGED_BY;
use crate::model::limits;
use crate::model::marks;
use crate::model::service::{
    AwsVpcConfiguration, CreateService, DeploymentCircuitBreaker, DeploymentConfiguration,
    LoadBalancer, NetworkConfiguration, ServiceRegistry,
};
use crate::model::task_definition::Tag;

/// Reports what becomes of each Service port; returns (port name, container port).
pub(super) fn map_services(cx: &mut Ctx<'_>) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    let ag_name = cx.ag_name();
    // The first container of that name, as the raw manifest is searched too.
    let ag =
        cx.m.workload
            .pod
            .containers
            .iter()
            .find(|c| c.name.value == ag_name);
    for svc in &cx.m.services {
        for (i, p) in svc.ports.iter().enumerate() {
            let src = format!(
                "Service/{} spec.ports[{}]",
                svc.name,
                p.name.clone().unwrap_or_else(|| i.to_string())
            );
            let target_port = match &p.target_port {
                None => Some(p.port),
                Some(IntOrString::Int(n)) => Some(*n),
                Some(IntOrString::Name(name)) => ag.and_then(|c| {
                    c.ports
                        .iter()
                        .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                        .map(|cp| cp.container_port.value)
                }),
            };
            let Some(container_port) = target_port else {
                cx.report.push(
                    Action::Dropped,
                    src,
                    None,
                    format!(
                        "targetPort `{}` names no port of container `{ag_name}`",
                        p.target_port
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    ),
                );
                continue;
            };
            let remap = if p.port != container_port {
                format!(
                    "; port {} → {container_port}: awsvpc tasks cannot remap ports, so clients connect to {container_port} unless a load balancer listens on {}",
                    p.port, p.port
                )
            } else {
                String::new()
            };
            let (action, target, detail) = if cx.s.target_group_arn.is_some() {
                (
                    Action::Adjusted,
                    Some("loadBalancers"),
                    format!("target group, container port {container_port}{remap}"),
                )
            } else if cx.s.service_registry_arn.is_some() {
                (
                    Action::Adjusted,
                    Some("serviceRegistries"),
                    format!(
                        "Cloud Map DNS names the tasks; OneAgents connect to port {container_port}{remap}"
                    ),
                )
            } else {
                (
                    Action::NeedsSetting,
                    None,
                    format!(
                        "a Service gives OneAgents one stable address; on ECS set `service_discovery.registry_arn` (Cloud Map) or `load_balancer.target_group_arn` in the config{remap}"
                    ),
                )
            };
            cx.report.push(action, src, target, detail);
            out.push((p.name.clone().unwrap_or_default(), container_port));
        }
        if let Some(t) = svc.service_type.as_ref().filter(|t| *t != "ClusterIP") {
            {
                cx.report.push(
                    Action::Dropped,
                    format!("Service/{} spec.type", svc.name),
                    None,
                    format!(
                        "{t}: exposure is set by subnets, security groups and load balancers on ECS"
                    ),
                );
            }
        }
    }
    out
}

/// The `create-service` document for a translation. Needs cluster, service
/// name and subnets from the config.
pub fn service_document(t: &Translation, s: &Settings) -> Result<CreateService, TranslateError> {
    let cluster = s
        .cluster
        .as_ref()
        .ok_or(TranslateError::NeedsConfig("`cluster`"))?;
    let service = s
        .service
        .as_ref()
        .ok_or(TranslateError::NeedsConfig("`service`"))?;
    if s.subnets.is_empty() {
        return Err(TranslateError::NeedsConfig("`network.subnets`"));
    }
    let load_balancers: Vec<LoadBalancer> = s
        .target_group_arn
        .iter()
        .map(|arn| LoadBalancer {
            target_group_arn: arn.to_string(),
            container_name: t.container.clone(),
            container_port: t.readiness.port,
        })
        .collect();
    let mut tags = vec![Tag::new(marks::MANAGED_BY, MANAGED_BY)];
    if let Some(target) = &s.target {
        tags.push(Tag::new(marks::TARGET, target.clone()));
    }
    let doc = CreateService {
        cluster: cluster.to_string(),
        service_name: service.to_string(),
        task_definition: t.task_definition.family.clone(),
        deployment_controller: None,
        desired_count: t.desired_count,
        launch_type: "FARGATE".into(),
        platform_version: "LATEST".into(),
        network_configuration: NetworkConfiguration {
            awsvpc_configuration: AwsVpcConfiguration {
                subnets: s.subnets.iter().map(ToString::to_string).collect(),
                security_groups: s.security_groups.iter().map(ToString::to_string).collect(),
                assign_public_ip: if s.assign_public_ip {
                    "ENABLED"
                } else {
                    "DISABLED"
                }
                .into(),
            },
        },
        // Never fewer healthy tasks than desired during a rollout; the breaker
        // stops a deployment whose tasks cannot start.
        deployment_configuration: DeploymentConfiguration {
            deployment_circuit_breaker: DeploymentCircuitBreaker {
                enable: true,
                rollback: true,
            },
            maximum_percent: 200,
            minimum_healthy_percent: 100,
        },
        health_check_grace_period_seconds: (!load_balancers.is_empty())
            .then_some(t.readiness.initial_delay_seconds.max(90)),
        load_balancers,
        service_registries: s
            .service_registry_arn
            .iter()
            .map(|arn| ServiceRegistry {
                registry_arn: arn.to_string(),
            })
            .collect(),
        enable_ecs_managed_tags: true,
        propagate_tags: "SERVICE".into(),
        enable_execute_command: false,
        tags,
    };
    // The whole document against ECS's limits: its network part is also what every
    // task set of the service gets (the engine builds CreateTaskSet from it).
    if let Some(violation) = limits::create_service(&doc).into_iter().next() {
        let key = if violation.field.contains("subnets") {
            "network.subnets"
        } else if violation.field.contains("securityGroups") {
            "network.security_groups"
        } else if violation.field.starts_with("serviceName") {
            "service"
        } else if violation.field.starts_with("loadBalancers") {
            "load_balancer.target_group_arn"
        } else if violation.field.starts_with("serviceRegistries") {
            "service_discovery.registry_arn"
        } else {
            "name"
        };
        return Err(TranslateError::Limit {
            at: s.at(key),
            source_field: format!("(config) {key}"),
            violation: Box::new(violation),
        });
    }
    Ok(doc)
}
