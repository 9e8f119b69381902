//! Our task-definition and service documents → the SDK's request builders.

use std::collections::HashMap;

use aws_sdk_ecs::operation::create_service::builders::CreateServiceFluentBuilder;
use aws_sdk_ecs::operation::create_task_set::builders::CreateTaskSetFluentBuilder;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types as sdk;

use super::EcsError;
use crate::model::service::CreateService;
use crate::model::task_definition::{
    ContainerDefinition, LinuxParameters, LogConfiguration, TaskDefinition,
};

fn build_err<E: std::fmt::Display>(op: &'static str) -> impl Fn(E) -> EcsError {
    move |e| EcsError::Request {
        op,
        detail: e.to_string(),
    }
}

const REGISTER: &str = "RegisterTaskDefinition";

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn container(c: &ContainerDefinition) -> Result<sdk::ContainerDefinition, EcsError> {
    let err = build_err(REGISTER);
    let mut b = sdk::ContainerDefinition::builder()
        .name(&c.name)
        .image(&c.image)
        .essential(c.essential)
        .set_entry_point((!c.entry_point.is_empty()).then(|| c.entry_point.clone()))
        .set_command((!c.command.is_empty()).then(|| c.command.clone()))
        .set_working_directory(c.working_directory.clone())
        .set_user(c.user.clone())
        .set_cpu(c.cpu.map(i32_of))
        .set_memory(c.memory.map(i32_of))
        .set_memory_reservation(c.memory_reservation.map(i32_of))
        .set_readonly_root_filesystem(c.readonly_root_filesystem)
        .set_privileged(c.privileged)
        .set_stop_timeout(c.stop_timeout.map(i32_of));
    for p in &c.port_mappings {
        b = b.port_mappings(
            sdk::PortMapping::builder()
                .set_name(p.name.clone())
                .container_port(i32::from(p.container_port))
                .protocol(sdk::TransportProtocol::from(p.protocol.as_str()))
                .build(),
        );
    }
    for kv in &c.environment {
        b = b.environment(
            sdk::KeyValuePair::builder()
                .name(&kv.name)
                .value(&kv.value)
                .build(),
        );
    }
    for s in &c.secrets {
        b = b.secrets(
            sdk::Secret::builder()
                .name(&s.name)
                .value_from(&s.value_from)
                .build()
                .map_err(&err)?,
        );
    }
    for m in &c.mount_points {
        b = b.mount_points(
            sdk::MountPoint::builder()
                .source_volume(&m.source_volume)
                .container_path(&m.container_path)
                .read_only(m.read_only)
                .build(),
        );
    }
    for d in &c.depends_on {
        b = b.depends_on(
            sdk::ContainerDependency::builder()
                .container_name(&d.container_name)
                .condition(sdk::ContainerCondition::from(d.condition.as_str()))
                .build()
                .map_err(&err)?,
        );
    }
    if let Some(h) = &c.health_check {
        b = b.health_check(
            sdk::HealthCheck::builder()
                .set_command(Some(h.command.clone()))
                .interval(i32_of(h.interval))
                .timeout(i32_of(h.timeout))
                .retries(i32_of(h.retries))
                .start_period(i32_of(h.start_period))
                .build()
                .map_err(&err)?,
        );
    }
    if let Some(lp) = &c.linux_parameters {
        b = b.linux_parameters(linux_parameters(lp));
    }
    if let Some(lc) = &c.log_configuration {
        b = b.log_configuration(log_configuration(lc)?);
    }
    if let Some(rc) = &c.repository_credentials {
        b = b.repository_credentials(
            sdk::RepositoryCredentials::builder()
                .credentials_parameter(&rc.credentials_parameter)
                .build()
                .map_err(&err)?,
        );
    }
    Ok(b.build())
}

fn linux_parameters(lp: &LinuxParameters) -> sdk::LinuxParameters {
    let caps = lp.capabilities.as_ref().map(|k| {
        sdk::KernelCapabilities::builder()
            .set_add((!k.add.is_empty()).then(|| k.add.clone()))
            .set_drop((!k.drop.is_empty()).then(|| k.drop.clone()))
            .build()
    });
    sdk::LinuxParameters::builder()
        .set_capabilities(caps)
        .set_init_process_enabled(lp.init_process_enabled)
        .build()
}

fn log_configuration(lc: &LogConfiguration) -> Result<sdk::LogConfiguration, EcsError> {
    let options: HashMap<String, String> = lc.options.clone().into_iter().collect();
    sdk::LogConfiguration::builder()
        .log_driver(sdk::LogDriver::from(lc.log_driver.as_str()))
        .set_options(Some(options))
        .build()
        .map_err(build_err(REGISTER))
}

/// Fills a RegisterTaskDefinition request from our document and extra tags.
pub fn register(
    mut b: RegisterTaskDefinitionFluentBuilder,
    td: &TaskDefinition,
    tags: &[(String, String)],
) -> Result<RegisterTaskDefinitionFluentBuilder, EcsError> {
    b = b
        .family(&td.family)
        .set_task_role_arn(td.task_role_arn.clone())
        .set_execution_role_arn(td.execution_role_arn.clone())
        .network_mode(sdk::NetworkMode::from(td.network_mode.as_str()))
        .cpu(&td.cpu)
        .memory(&td.memory);
    for c in &td.container_definitions {
        b = b.container_definitions(container(c)?);
    }
    for v in &td.volumes {
        b = b.volumes(sdk::Volume::builder().name(&v.name).build());
    }
    for r in &td.requires_compatibilities {
        b = b.requires_compatibilities(sdk::Compatibility::from(r.as_str()));
    }
    if let Some(rp) = &td.runtime_platform {
        b = b.runtime_platform(
            sdk::RuntimePlatform::builder()
                .cpu_architecture(sdk::CpuArchitecture::from(rp.cpu_architecture.as_str()))
                .operating_system_family(sdk::OsFamily::from(rp.operating_system_family.as_str()))
                .build(),
        );
    }
    for t in td
        .tags
        .iter()
        .map(|t| (&t.key, &t.value))
        .chain(tags.iter().map(|(k, v)| (k, v)))
    {
        b = b.tags(sdk::Tag::builder().key(t.0).value(t.1).build());
    }
    Ok(b)
}

/// Fills a CreateService request from our service document.
pub fn create_service(
    mut b: CreateServiceFluentBuilder,
    s: &CreateService,
) -> CreateServiceFluentBuilder {
    let dc = &s.deployment_configuration;
    b = b
        .cluster(&s.cluster)
        .service_name(&s.service_name)
        .desired_count(i32_of(s.desired_count));
    if s.deployment_controller
        .as_ref()
        .is_some_and(|c| c.is_external())
    {
        // Task definition, launch type, network and registries belong to the task sets of an
        // EXTERNAL service, and ECS's circuit breaker exists only for its own controller.
        b = b
            .deployment_controller(
                sdk::DeploymentController::builder()
                    .r#type(sdk::DeploymentControllerType::External)
                    .build()
                    .expect("type is set"),
            )
            .deployment_configuration(
                sdk::DeploymentConfiguration::builder()
                    .minimum_healthy_percent(i32_of(dc.minimum_healthy_percent))
                    .maximum_percent(i32_of(dc.maximum_percent))
                    .build(),
            );
    } else {
        b = b
            .task_definition(&s.task_definition)
            .launch_type(sdk::LaunchType::from(s.launch_type.as_str()))
            .platform_version(&s.platform_version)
            .network_configuration(network(&s.network_configuration))
            .deployment_configuration(
                sdk::DeploymentConfiguration::builder()
                    .minimum_healthy_percent(i32_of(dc.minimum_healthy_percent))
                    .maximum_percent(i32_of(dc.maximum_percent))
                    .deployment_circuit_breaker(
                        sdk::DeploymentCircuitBreaker::builder()
                            .enable(dc.deployment_circuit_breaker.enable)
                            .rollback(dc.deployment_circuit_breaker.rollback)
                            .build(),
                    )
                    .build(),
            );
        for r in &s.service_registries {
            b = b.service_registries(registry(r));
        }
    }
    b = b
        .set_health_check_grace_period_seconds(s.health_check_grace_period_seconds.map(i32_of))
        .enable_ecs_managed_tags(s.enable_ecs_managed_tags)
        .propagate_tags(sdk::PropagateTags::from(s.propagate_tags.as_str()))
        .enable_execute_command(s.enable_execute_command);
    let external = s
        .deployment_controller
        .as_ref()
        .is_some_and(|c| c.is_external());
    for lb in s.load_balancers.iter().filter(|_| !external) {
        b = b.load_balancers(load_balancer(lb));
    }
    for t in &s.tags {
        b = b.tags(sdk::Tag::builder().key(&t.key).value(&t.value).build());
    }
    b
}

/// The awsvpc network configuration of a service or task set.
pub fn network(n: &crate::model::service::NetworkConfiguration) -> sdk::NetworkConfiguration {
    let vpc = &n.awsvpc_configuration;
    sdk::NetworkConfiguration::builder()
        .awsvpc_configuration(
            sdk::AwsVpcConfiguration::builder()
                .set_subnets(Some(vpc.subnets.clone()))
                .set_security_groups(
                    (!vpc.security_groups.is_empty()).then(|| vpc.security_groups.clone()),
                )
                .assign_public_ip(sdk::AssignPublicIp::from(vpc.assign_public_ip.as_str()))
                .build()
                .expect("subnets are set"),
        )
        .build()
}

/// Fills a CreateTaskSet request: the service document's task-set level members (launch
/// type, platform, network, registries), the revision, a scale in percent.
pub fn create_task_set(
    mut b: CreateTaskSetFluentBuilder,
    s: &CreateService,
    task_definition: &str,
    scale_percent: f64,
    external_id: &str,
    client_token: &str,
) -> CreateTaskSetFluentBuilder {
    b = b
        .cluster(&s.cluster)
        .service(&s.service_name)
        .task_definition(task_definition)
        .launch_type(sdk::LaunchType::from(s.launch_type.as_str()))
        .platform_version(&s.platform_version)
        .network_configuration(network(&s.network_configuration))
        .scale(
            sdk::Scale::builder()
                .unit(sdk::ScaleUnit::Percent)
                .value(scale_percent)
                .build(),
        )
        .external_id(external_id)
        .client_token(client_token);
    for lb in &s.load_balancers {
        b = b.load_balancers(load_balancer(lb));
    }
    for r in &s.service_registries {
        b = b.service_registries(registry(r));
    }
    for t in &s.tags {
        b = b.tags(sdk::Tag::builder().key(&t.key).value(&t.value).build());
    }
    b
}

fn load_balancer(lb: &crate::model::service::LoadBalancer) -> sdk::LoadBalancer {
    sdk::LoadBalancer::builder()
        .target_group_arn(&lb.target_group_arn)
        .container_name(&lb.container_name)
        .container_port(i32::from(lb.container_port))
        .build()
}

fn registry(r: &crate::model::service::ServiceRegistry) -> sdk::ServiceRegistry {
    sdk::ServiceRegistry::builder()
        .registry_arn(&r.registry_arn)
        .build()
}
