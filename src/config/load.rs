//! Reading a config file, and the checks that span several fields (each refusal
//! placed at the field it names).

use std::collections::BTreeSet;
use std::path::Path;

use super::locate::{self, Locator};
use super::raw;
use super::schema::{ConfigFile, Target, VersionSourceKind};
use super::{Config, ConfigError, MAX_CONFIG_BYTES};

/// Settings whose place the translator may need for a refusal.
const LOCATED_SETTINGS: &[&str] = &[
    "name",
    "image",
    "family",
    "service",
    "entry_point",
    "probe",
    "network.subnets",
    "network.security_groups",
    "load_balancer.target_group_arn",
    "service_discovery.registry_arn",
    "environment.DT_TENANT",
    "environment.DT_SERVER",
    "environment.DT_NETWORK_ZONE",
    "environment.DT_CAPABILITIES",
    "environment.DT_GROUP",
    "environment.DT_DEPLOYMENT_METADATA",
    "environment.DT_IGNORE_CLUSTER_RUNTIME_INFO",
];

impl Config {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let bytes = crate::read_limited(path, MAX_CONFIG_BYTES).map_err(|e| match e {
            crate::ReadError::Io(source) => ConfigError::Read {
                path: shown.clone(),
                source,
            },
            crate::ReadError::TooLarge(size) => ConfigError::TooLarge {
                path: shown.clone(),
                size,
            },
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| ConfigError::NotUtf8 {
            path: shown.clone(),
            offset: e.valid_up_to(),
        })?;
        Self::parse(&shown, text)
    }

    /// Parses config text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
        // Before the typed parse, whose messages may quote values: nothing in a config
        // may look like a secret, and its refusal names the field, never the value.
        let tree = raw::Tree::parse(text);
        let at = Locator::new(path, text, &tree);
        if let Some(f) = tree.scan() {
            return Err(at.offset(f.offset, f.field, f.message));
        }
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| locate::invalid(path, text, &tree, &e))?;
        if file.targets.is_empty() {
            return Err(at.field(
                &[],
                "target".into(),
                "no [[target]]: the config must describe at least one ActiveGate service".into(),
            ));
        }
        unique_targets(&at, &file.targets)?;
        if let Some(lease) = &file.daemon.lease {
            lease.check().map_err(|r| {
                at.field(
                    &["daemon", "lease", "duration_seconds"],
                    "daemon.lease.duration_seconds".into(),
                    r.0,
                )
            })?;
        }
        let mut targets: Vec<Target> = file
            .targets
            .into_iter()
            .map(toml::Spanned::into_inner)
            .collect();
        for (i, t) in targets.iter_mut().enumerate() {
            check_target(&at, i, t)?;
            // The schedule's zone is a field of its own: the expression was parsed alone.
            let tz = t.timezone.0;
            if let Some(s) = t.schedule.as_mut() {
                s.0 = s.0.clone().in_zone(tz);
            }
            for key in LOCATED_SETTINGS {
                t.locations
                    .insert((*key).to_owned(), at.place_in_target(i, key));
            }
        }
        Ok(Config {
            path: path.to_owned(),
            base_dir: Path::new(path)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            aws: file.aws,
            daemon: file.daemon,
            targets,
        })
    }
}

/// Names are unique, and no two targets manage one service.
fn unique_targets(at: &Locator<'_>, targets: &[toml::Spanned<Target>]) -> Result<(), ConfigError> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut services: BTreeSet<(String, String, String, String)> = BTreeSet::new();
    for (i, t) in targets.iter().enumerate() {
        let target = t.get_ref();
        if !seen.insert(target.name.0.clone()) {
            let index = i.to_string();
            return Err(at.field(
                &["target", &index, "name"],
                format!("target[{i}].name"),
                format!(
                    "the name `{}` is used by an earlier target; names must be unique",
                    target.name
                ),
            ));
        }
        // The same cluster and service names in another account (a target with `role_arn`)
        // are another service.
        let key = (
            target
                .role_arn
                .as_ref()
                .map_or("", |r| r.account())
                .to_owned(),
            target.region.to_string(),
            target.cluster.to_string(),
            target.service.to_string(),
        );
        if !services.insert(key) {
            return Err(at.offset(
                t.span().start,
                format!("target `{}`", target.name),
                format!(
                    "service `{}` in cluster `{}` ({}) is already managed by an earlier target; two targets on one service would fight",
                    target.service, target.cluster, target.region
                ),
            ));
        }
    }
    Ok(())
}

/// The checks across one target's fields.
fn check_target(at: &Locator<'_>, i: usize, t: &Target) -> Result<(), ConfigError> {
    let r = &t.rollout;
    if r.maximum_percent.0 < 100 || r.maximum_percent.0 < r.minimum_healthy_percent.0 {
        return Err(at.in_target(
            i,
            &["rollout", "maximum_percent"],
            format!(
                "target `{}`: rollout.maximum_percent must be at least 100 and at least minimum_healthy_percent ({} / {})",
                t.name, r.minimum_healthy_percent.0, r.maximum_percent.0
            ),
        ));
    }
    if let Some(v) = &t.versions
        && v.source == VersionSourceKind::Registry
        && v.repository.is_none()
    {
        return Err(at.in_target(
            i,
            &["versions", "source"],
            format!(
                "target `{}`: versions.source = \"registry\" needs versions.repository",
                t.name
            ),
        ));
    }
    let p = &t.probe;
    let trusts = usize::from(p.ca_bundle.is_some())
        + usize::from(p.pin_sha256.is_some())
        + usize::from(p.insecure);
    if trusts > 1 {
        let second = if p.ca_bundle.is_some() && p.pin_sha256.is_some() {
            "pin_sha256"
        } else {
            "insecure"
        };
        return Err(at.in_target(
            i,
            &["probe", second],
            format!(
                "target `{}`: set only one of probe.ca_bundle, probe.pin_sha256 and probe.insecure",
                t.name
            ),
        ));
    }
    check_network(at, i, t)
}

/// awsvpc's limits (ECS API reference, AwsVpcConfiguration): the service, and every
/// task set the engine creates from it, would be refused.
fn check_network(at: &Locator<'_>, i: usize, t: &Target) -> Result<(), ConfigError> {
    let n = &t.network;
    let vpc = crate::model::service::AwsVpcConfiguration {
        subnets: n.subnets.0.iter().map(ToString::to_string).collect(),
        security_groups: n.security_groups.iter().map(ToString::to_string).collect(),
        assign_public_ip: "DISABLED".into(),
    };
    match crate::model::limits::awsvpc("network", &vpc)
        .into_iter()
        .next()
    {
        Some(v) => {
            let key = if v.field.ends_with("subnets") {
                "subnets"
            } else {
                "security_groups"
            };
            Err(at.in_target(
                i,
                &["network", key],
                format!("found {}; allowed: {} ({})", v.found, v.allowed, v.source),
            ))
        }
        None => Ok(()),
    }
}
