//! The composition root's conversions: a config target (values already parsed at
//! load) into the settings of the module that uses them: the translator's, the
//! prober's, the engine's verification policy and deployment, the mesh spec.
//! They live here, not in `config`, so that config depends on `model` alone.

use crate::config::{
    BucketSettings, Config, ConfigError, EntryPointUrl, RateLimitSettings, Target,
};
use crate::translate::{EntryPoint, LogSettings, Settings, Where};

/// What the translator needs from this target.
pub fn translate(target: &Target) -> Settings {
    let t = target;
    Settings {
        target: Some(t.name.0.clone()),
        family: t.family.clone(),
        cluster: Some(t.cluster.clone()),
        service: Some(t.service.clone()),
        image: t.image.as_ref().map(|i| i.0.clone()),
        execution_role_arn: Some(t.execution_role_arn.clone()),
        task_role_arn: t.task_role_arn.clone(),
        logs: Some(LogSettings {
            group: t.logs.group.clone(),
            region: t.region.clone(),
            stream_prefix: t.logs.stream_prefix.0.clone(),
        }),
        tenant_token: Some(t.secrets.tenant_token.clone()),
        auth_token: t.secrets.auth_token.clone(),
        registry_credentials: t.secrets.registry_credentials.clone(),
        environment: t.environment.to_map(),
        entry_point: t.entry_point.as_ref().map(entry_point),
        container_health_check: Some(t.container_health_check),
        desired_count: t.desired_count.as_ref().map(|d| d.0),
        subnets: t.network.subnets.0.clone(),
        security_groups: t.network.security_groups.clone(),
        assign_public_ip: t.network.assign_public_ip,
        service_registry_arn: t.service_discovery.as_ref().map(|s| s.registry_arn.clone()),
        target_group_arn: t.load_balancer.as_ref().map(|l| l.target_group_arn.clone()),
        at: t
            .locations
            .iter()
            .map(|(k, p)| (k.clone(), Where::at(&p.file, p.line, p.column)))
            .collect(),
    }
}

fn entry_point(e: &EntryPointUrl) -> EntryPoint {
    EntryPoint {
        url: e.url.clone(),
        host: e.host.clone(),
        port: e.port,
    }
}

/// The target's mesh, when it has one: names, the destination's address source and port.
pub fn mesh(config: &Config, target: &Target) -> Option<crate::mesh::Spec> {
    use crate::mesh::{AddressSource, Source, Spec, consul};
    let m = target.mesh.as_ref()?;
    let entry = target.entry_point.as_ref();
    let entry_name = entry
        .filter(|e| e.host.parse::<std::net::IpAddr>().is_err())
        .map(|e| (e.host.clone(), e.port));
    let probe_port = target.probe.port.unwrap_or(9999);
    let (addresses, port) = match (&m.address, &entry_name, m.task_addresses) {
        (_, _, true) => (AddressSource::Tasks, probe_port),
        (Some(a), _, false) => (
            AddressSource::Stable(a.0.clone()),
            entry.map_or(probe_port, |e| e.port),
        ),
        (None, Some((host, port)), false) => (AddressSource::Stable(host.clone()), *port),
        (None, None, false) => (AddressSource::Tasks, probe_port),
    };
    Some(Spec {
        service: m
            .service
            .as_ref()
            .map_or_else(|| target.service.to_string(), |s| s.0.clone()),
        namespace: m.namespace.as_ref().map(|n| n.0.clone()),
        gateway: m.terminating_gateway.0.clone(),
        addresses,
        port: m.port.unwrap_or(port),
        sources: m
            .sources
            .iter()
            .map(|s| Source {
                name: s.name.0.clone(),
                namespace: s.namespace.as_ref().map(|n| n.0.clone()),
            })
            .collect(),
        exclude_cidrs: m.exclude_cidrs.iter().map(|c| c.0.clone()).collect(),
        consul: m.consul_address.as_ref().map(|a| consul::Settings {
            address: a.0.clone(),
            token_env: m.token_env.clone(),
            datacenter: m.datacenter.as_ref().map(|d| d.0.clone()),
            ca_bundle: m.ca_bundle.as_ref().map(|p| config.resolve(p)),
        }),
        envoy_admin: m.envoy_admin.as_ref().map(|e| e.0.clone()),
    })
}

/// How the rollout engine verifies revisions of this target.
pub fn verify_policy(target: &Target) -> crate::rollout::VerifyPolicy {
    crate::rollout::VerifyPolicy {
        interval: target.probe.interval_seconds.duration(),
        grace: target.probe.grace_seconds.duration(),
        healthy_after: target.probe.healthy_after.0,
        unhealthy_after: target.probe.unhealthy_after.0,
        bake: target.rollout.bake_seconds.duration(),
        deadline: target.rollout.deadline_seconds.duration(),
    }
}

/// The deployment settings ECS gets on every update.
pub fn deployment(target: &Target) -> crate::model::service::DeploymentConfiguration {
    crate::rollout::deployment(
        target.rollout.minimum_healthy_percent.0,
        target.rollout.maximum_percent.0,
        target.rollout.circuit_breaker,
    )
}

/// The probe settings; the port and path default to the manifest's readinessProbe.
pub fn probe(
    config: &Config,
    target: &Target,
    readiness: &crate::translate::Readiness,
) -> Result<crate::health::ProbeSettings, ConfigError> {
    let p = &target.probe;
    let trust = trust(config, target)?;
    Ok(crate::health::ProbeSettings {
        port: p.port.unwrap_or(readiness.port),
        path: p
            .path
            .as_ref()
            .map_or_else(|| readiness.path.clone(), |x| x.0.clone()),
        timeout: p.timeout_seconds.duration(),
        body_match: p.body_match.clone(),
        trust,
    })
}

/// Whom the probes trust. A target must say: ActiveGate's certificate is self-signed by
/// default.
pub fn trust(config: &Config, target: &Target) -> Result<crate::health::Trust, ConfigError> {
    use crate::health::Trust;
    let p = &target.probe;
    if let Some(bundle) = &p.ca_bundle {
        let path = config.resolve(bundle);
        let pem = std::fs::read(&path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Trust::CaBundle(pem))
    } else if let Some(pin) = &p.pin_sha256 {
        Ok(Trust::Pin(pin.0))
    } else if p.insecure {
        Ok(Trust::Insecure)
    } else {
        Err(no_trust(config, target))
    }
}

/// The refusal of a target with no trust set, at its `[target.probe]` (or the target).
fn no_trust(config: &Config, target: &Target) -> ConfigError {
    let (line, column) = target
        .locations
        .get("probe")
        .map_or((1, 1), |p| (p.line.max(1), p.column.max(1)));
    ConfigError::Invalid {
        path: config.path.clone(),
        line: usize::try_from(line).unwrap_or(1),
        column: usize::try_from(column).unwrap_or(1),
        field: format!("target `{}` probe", target.name),
        message: format!(
            "target `{}`: set probe.ca_bundle, probe.pin_sha256 or probe.insecure = true; ActiveGate's certificate is self-signed by default, so the daemon must be told whom to trust",
            target.name
        ),
    }
}

/// The role the target's AWS clients assume, when it names one.
pub fn assume_role(target: &Target) -> Option<crate::ecs::AssumeRole> {
    target.role_arn.as_ref().map(|arn| crate::ecs::AssumeRole {
        arn: arn.to_string(),
        external_id: target
            .external_id
            .as_ref()
            .map(|e| crate::model::secret::Redacted(e.0.clone())),
        session_name: target.role_session_name.0.clone(),
    })
}

/// The endpoint of the target's ECS, CloudWatch Logs and STS calls: its own `endpoint_url`,
/// else `[aws] endpoint_url`, else none (the SDK resolves one). Every client cache, rate
/// budget and observer is keyed by the endpoint, so targets at two endpoints share none.
pub fn endpoint_url(config: &Config, target: &Target) -> Option<String> {
    target
        .endpoint_url
        .as_ref()
        .or(config.aws.endpoint_url.as_ref())
        .map(|u| u.0.clone())
}

/// `[aws.rate_limits]` over ECS's documented buckets: a family or field left out keeps
/// ECS's value.
pub fn rate_limits(configured: &RateLimitSettings) -> crate::ecs::RateLimits {
    let ecs = crate::ecs::RateLimits::default();
    let over = |default: crate::ecs::Bucket, set: &Option<BucketSettings>| match set {
        None => default,
        Some(b) => crate::ecs::Bucket {
            burst: b.burst.as_ref().map_or(default.burst, |n| n.0),
            per_second: b.per_second.as_ref().map_or(default.per_second, |r| r.0),
        },
    };
    crate::ecs::RateLimits {
        services: over(ecs.services, &configured.services),
        tasks: over(ecs.tasks, &configured.tasks),
        service_writes: over(ecs.service_writes, &configured.service_writes),
        task_definitions: over(ecs.task_definitions, &configured.task_definitions),
        service_deployments: over(ecs.service_deployments, &configured.service_deployments),
        other: over(ecs.other, &configured.other),
    }
}

#[cfg(test)]
mod tests;
