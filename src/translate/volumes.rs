//! Volumes and mounts: emptyDir volumes → task volumes, mounts → mountPoints,
//! the writable paths a read-only root file system needs; and the tokens, which
//! an init container writes into a volume the ActiveGate reads.

use std::collections::{BTreeMap, BTreeSet};

use super::TranslateError;
use super::context::Ctx;
use super::manifest::Volume as PodVolume;
use super::report::Action;
use super::secrets;
use crate::model::limits;
use crate::model::task_definition::{ContainerDefinition, ContainerDependency, MountPoint, Volume};

/// Paths ActiveGate writes to; with a read-only root file system each needs a
/// volume. (name for an added volume, path)
pub(super) const WRITABLE_PATHS: [(&str, &str); 6] = [
    ("ag-lib-gateway-config", "/var/lib/dynatrace/gateway/config"),
    ("ag-lib-gateway-ssl", "/var/lib/dynatrace/gateway/ssl"),
    ("ag-lib-gateway-temp", "/var/lib/dynatrace/gateway/temp"),
    ("ag-lib-gateway-data", "/var/lib/dynatrace/gateway/data"),
    ("ag-log-gateway", "/var/log/dynatrace/gateway"),
    ("ag-tmp-gateway", "/var/tmp/dynatrace/gateway"),
];

/// The pod's volumes, sorted by what can become of them.
#[derive(Default)]
struct PodVolumes {
    /// Volumes a mount may use.
    usable: BTreeSet<String>,
    /// Reported once the mounts show whether a volume is used.
    pending: BTreeMap<String, (Action, String)>,
    /// The secret volume mounted where ActiveGate reads its tokens.
    tokens_volume: Option<String>,
}

/// emptyDir volumes → task volumes; mounts → mountPoints; the writable paths
/// a read-only root file system needs are added.
pub(super) fn map_volumes(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
) -> Result<Vec<Volume>, TranslateError> {
    let mut pod_volumes = sort_volumes(cx);
    let used = map_mounts(cx, c, &pod_volumes)?;
    let mut volumes = keep_mounted(cx, &mut pod_volumes.pending, &used)?;
    if c.readonly_root_filesystem == Some(true) {
        add_writable_paths(cx, c, &mut volumes);
    }
    Ok(volumes)
}

fn sort_volumes(cx: &mut Ctx<'_>) -> PodVolumes {
    let pod = &cx.m.workload.pod;
    let ag = cx.ag;
    let mut out = PodVolumes::default();
    for v in &pod.volumes {
        let src = format!("volumes[{}]", v.name.value);
        if let Some(ed) = &v.empty_dir {
            let mut detail = String::from("Fargate task-scoped volume (lives as long as the task)");
            if ed.medium.as_deref() == Some("Memory") {
                detail.push_str("; medium Memory dropped: Fargate volumes are disk-backed");
            }
            if let Some(limit) = &ed.size_limit {
                detail.push_str(&format!("; sizeLimit {limit} dropped: volumes share the task's ephemeral storage (20 GiB by default)"));
            }
            let action = if ed.medium.is_some() || ed.size_limit.is_some() {
                Action::Adjusted
            } else {
                Action::Mapped
            };
            out.pending.insert(v.name.value.clone(), (action, detail));
            out.usable.insert(v.name.value.clone());
        } else if v.secret.is_some() {
            let mounted_at_tokens = ag
                .volume_mounts
                .iter()
                .any(|m| m.name.value == v.name.value && m.mount_path.value == secrets::TOKENS_DIR);
            if mounted_at_tokens {
                out.tokens_volume = Some(v.name.value.clone());
                out.usable.insert(v.name.value.clone());
                let detail = if cx.s.tenant_token.is_some() {
                    "Kubernetes secret volume → task volume filled by the token-writer init container from ECS secrets"
                } else {
                    "Kubernetes secret volume → task volume; nothing fills it until `secrets.tenant_token` is set"
                };
                out.pending
                    .insert(v.name.value.clone(), (Action::Adjusted, detail.to_owned()));
            } else {
                let secret = v
                    .secret
                    .as_ref()
                    .and_then(|s| s.secret_name.as_deref())
                    .unwrap_or("?");
                cx.note(Action::NeedsSetting, &src, None, format!(
                    "Kubernetes secret `{secret}` mounted as files: ECS cannot mount secrets; only the ActiveGate tokens are translated (TLS certificates must be baked into an image or fetched by an init container)"));
            }
        } else {
            cx.note(Action::Dropped, &src, None, why_dropped(v));
        }
    }
    out
}

fn why_dropped(v: &PodVolume) -> &'static str {
    if v.config_map.is_some() {
        "ConfigMap volumes do not exist on ECS; set the values as environment in the config"
    } else if v.host_path.is_some() {
        "Fargate gives no access to the host"
    } else if v.persistent_volume_claim.is_some() {
        "ActiveGate keeps no state that must outlive a task; Fargate volumes are task-scoped (use EFS by hand if needed)"
    } else {
        "this volume type has no Fargate equivalent"
    }
}

/// The container's mounts of usable volumes → mountPoints; returns the
/// volumes mounted.
fn map_mounts(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
    pod_volumes: &PodVolumes,
) -> Result<BTreeSet<String>, TranslateError> {
    let ag = cx.ag;
    let mut used: BTreeSet<String> = BTreeSet::new();
    for m in &ag.volume_mounts {
        let src = cx.src(&format!("volumeMounts[{}]", m.name.value));
        if !pod_volumes.usable.contains(&m.name.value) {
            cx.note(
                Action::Dropped,
                &src,
                None,
                format!(
                    "mount of `{}` at {}: its volume was not translated",
                    m.name.value, m.mount_path.value
                ),
            );
            continue;
        }
        if let Some(sub) = &m.sub_path {
            let why = if m.mount_path.value.contains("jre/lib/security/cacerts") {
                "the trust store built for kubernetes_monitoring; dropped with the certificate-loader init container"
            } else {
                "ECS mounts whole volumes; subPath cannot be expressed"
            };
            cx.note(
                Action::Dropped,
                &src,
                None,
                format!(
                    "mount at {} with subPath `{sub}`: {why}",
                    m.mount_path.value
                ),
            );
            continue;
        }
        let read_only = m.read_only || Some(&m.name.value) == pod_volumes.tokens_volume.as_ref();
        let target = cx.dst(&format!("mountPoints[{}]", m.name.value));
        cx.gate(
            &cx.at(&m.mount_path),
            &format!("{src}.mountPath"),
            &format!("{target}.containerPath"),
            &m.mount_path.value,
            limits::path,
        )?;
        cx.gate(
            &cx.at(&m.name),
            &format!("{src}.name"),
            &format!("{target}.sourceVolume"),
            &m.name.value,
            |f, v| limits::name(f, v, limits::source::REGISTER_TASK_DEFINITION),
        )?;
        c.mount_points.push(MountPoint {
            source_volume: m.name.value.clone(),
            container_path: m.mount_path.value.clone(),
            read_only,
        });
        used.insert(m.name.value.clone());
        cx.note(
            if read_only != m.read_only {
                Action::Adjusted
            } else {
                Action::Mapped
            },
            &src,
            Some(&cx.dst("mountPoints")),
            format!(
                "{}{}",
                m.mount_path.value,
                if read_only { " (read-only)" } else { "" }
            ),
        );
    }
    Ok(used)
}

/// The usable volumes that are mounted become task volumes, in the pod's order;
/// the others are reported as dropped.
fn keep_mounted(
    cx: &mut Ctx<'_>,
    pending: &mut BTreeMap<String, (Action, String)>,
    used: &BTreeSet<String>,
) -> Result<Vec<Volume>, TranslateError> {
    let mut volumes = Vec::new();
    for v in &cx.m.workload.pod.volumes {
        let Some((action, detail)) = pending.remove(&v.name.value) else {
            continue;
        };
        let src = format!("volumes[{}]", v.name.value);
        if used.contains(&v.name.value) {
            cx.gate(
                &cx.at(&v.name),
                &format!("{src}.name"),
                &format!("{src}.name"),
                &v.name.value,
                |f, x| limits::name(f, x, limits::source::REGISTER_TASK_DEFINITION),
            )?;
            cx.note(action, &src, Some(&src), detail);
            volumes.push(Volume {
                name: v.name.value.clone(),
            });
        } else {
            cx.note(
                Action::Dropped,
                &src,
                None,
                "no translated container mounts it",
            );
        }
    }
    Ok(volumes)
}

/// With a read-only root file system, a volume for each path ActiveGate
/// writes to that no mount covers.
fn add_writable_paths(cx: &mut Ctx<'_>, c: &mut ContainerDefinition, volumes: &mut Vec<Volume>) {
    for (name, path) in WRITABLE_PATHS {
        let covered = c.mount_points.iter().any(|mp| {
            path == mp.container_path || path.starts_with(&format!("{}/", mp.container_path))
        });
        if !covered {
            let name = unique_name(volumes, name);
            volumes.push(Volume { name: name.clone() });
            c.mount_points.push(MountPoint {
                source_volume: name.clone(),
                container_path: path.into(),
                read_only: false,
            });
            cx.note(Action::Added, &cx.src("volumeMounts"), Some(&cx.dst("mountPoints")),
                format!("{path} on volume `{name}`: ActiveGate writes there and the root file system is read-only"));
        }
    }
}

fn unique_name(volumes: &[Volume], base: &str) -> String {
    let taken = |n: &str| volumes.iter().any(|v| v.name == n);
    if !taken(base) {
        return base.to_owned();
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken(n))
        .expect("an unused name exists")
}

/// Tokens: the init container writes them into the tokens volume (added when
/// the manifest mounts none), and the ActiveGate waits for it. Returns the
/// init container; `c` must already have its user, logs and registry credentials.
pub(super) fn map_tokens(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
    volumes: &mut Vec<Volume>,
    image: &str,
) -> Option<ContainerDefinition> {
    let s = cx.s;
    let Some(tenant) = &s.tenant_token else {
        let tpath = cx.tpath.clone();
        cx.note(Action::NeedsSetting, "(config) secrets.tenant_token", Some(&tpath),
            "ActiveGate cannot connect without its tenant token: set `secrets.tenant_token` to a Secrets Manager or SSM ARN");
        return None;
    };
    let tokens_volume = c
        .mount_points
        .iter()
        .find(|mp| mp.container_path == secrets::TOKENS_DIR)
        .map(|mp| mp.source_volume.clone());
    let volume = tokens_volume.unwrap_or_else(|| {
        let name = unique_name(volumes, "dynatrace-tokens");
        volumes.push(Volume { name: name.clone() });
        c.mount_points.push(MountPoint {
            source_volume: name.clone(),
            container_path: secrets::TOKENS_DIR.into(),
            read_only: true,
        });
        name
    });
    let mut writer = secrets::token_writer(
        image,
        &volume,
        tenant,
        s.auth_token.as_ref(),
        c.user.as_deref(),
    );
    writer.log_configuration = c.log_configuration.clone();
    writer.repository_credentials = c.repository_credentials.clone();
    let ag_name = cx.ag_name();
    cx.note(Action::Added, "(config) secrets.tenant_token", Some(&format!("containerDefinitions[{}]", secrets::TOKEN_WRITER)),
        format!(
            "init container: receives the token{} through ECS secrets ({}) and writes {} into volume `{volume}`; `{ag_name}` waits for it (dependsOn SUCCESS)",
            if s.auth_token.is_some() { "s" } else { "" },
            std::iter::once(tenant.to_string()).chain(s.auth_token.iter().map(|a| a.to_string())).collect::<Vec<_>>().join(", "),
            if s.auth_token.is_some() { "tenant-token and auth-token" } else { "tenant-token" },
        ));
    if s.auth_token.is_none() {
        cx.note(
            Action::Warning,
            "(config) secrets.auth_token",
            None,
            "no ActiveGate auth token: fine unless the environment enforces ActiveGate tokens",
        );
    }
    c.depends_on.push(ContainerDependency {
        container_name: secrets::TOKEN_WRITER.into(),
        condition: "SUCCESS".into(),
    });
    Some(writer)
}
