//! Kubernetes ActiveGate manifest → ECS Fargate task definition + report.
//!
//! Pure: it reads a parsed [`Manifest`] and [`Settings`] (what only the config
//! can say: roles, secrets' ARNs, log group, network) and returns documents and
//! a [`Report`]. No I/O, no clock, no randomness: the same input gives the same
//! bytes.

pub mod manifest;
pub mod quantity;
pub mod report;
pub mod secrets;
mod service;
mod unmapped;

use std::collections::{BTreeMap, BTreeSet};

use crate::model::MANAGED_BY;
use crate::model::aws::{
    Cluster, EcsName, LogGroupName, Region, RoleArn, SecretArn, SecretsManagerArn, SecurityGroupId,
    ServiceRegistryArn, SubnetId, TargetGroupArn,
};
use crate::model::fargate;
use crate::model::limits::{self, Violation};
use crate::model::secret;
use crate::model::task_definition::{
    ContainerDefinition, ContainerDependency, HealthCheck, KernelCapabilities, KeyValuePair,
    LinuxParameters, LogConfiguration, MountPoint, PortMapping, RepositoryCredentials,
    RuntimePlatform, Tag, TaskDefinition, Volume,
};

pub use manifest::{Manifest, Where, parse};
pub use report::{Action, Report};
pub use service::service_document;

use manifest::{Container, IntOrString, Probe};
use quantity::Quantity;
use serde_saphyr::Spanned;

/// Everything that can go wrong reading or translating a manifest. All of
/// these are bad input: the user must change the file or the config.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("{at}: the file is {size} bytes; a manifest may be at most {limit} bytes")]
    TooLarge { at: Where, size: u64, limit: u64 },
    #[error("{at}: the file is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { at: Where, offset: usize },
    #[error("{at}: the file holds no YAML document")]
    Empty { at: Where },
    #[error("{at}: {message}")]
    Yaml { at: Where, message: String },
    #[error("{at}: no StatefulSet or Deployment in the file{found}")]
    NoWorkload { at: Where, found: String },
    #[error("{at}: {message}")]
    Unsupported { at: Where, message: String },
    #[error(
        "{at}: {what} holds a literal secret ({shape}); a token must not be written into a manifest \
         or a task definition: store it in Secrets Manager or SSM Parameter Store and name \
         its ARN under [target.secrets] in the config"
    )]
    LiteralSecret {
        at: Where,
        what: String,
        /// What the value looks like, never the value.
        shape: String,
    },
    /// A value ECS would refuse (or one beyond the product's budget), with the
    /// manifest or config field it came from.
    #[error("{at}: {source_field} → {violation}")]
    Limit {
        at: Where,
        source_field: String,
        violation: Box<Violation>,
    },
    #[error(
        "{at}: {what}: its $(VAR) references expand to more than {limit} bytes \
         (an expanded value may hold at most {value_limit} bytes, all of a container's \
         environment {limit}); write the value out or shorten it"
    )]
    ExpansionBudget {
        at: Where,
        what: String,
        limit: usize,
        value_limit: usize,
    },
    #[error(
        "{at}: {what} needs {cpu} CPU units and {memory_mib} MiB, more than the largest Fargate size (16384 CPU / 122880 MiB)"
    )]
    TooLargeForFargate {
        at: Where,
        what: String,
        cpu: u128,
        memory_mib: u128,
    },
    #[error("the service document needs {0} from the config (use --config and --target)")]
    NeedsConfig(&'static str),
}

/// Where the awslogs driver sends the containers' output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub group: LogGroupName,
    pub region: Region,
    pub stream_prefix: String,
}

/// The endpoint OneAgents use to reach the ActiveGates, split for `$(X_SERVICE_HOST)`
/// and `$(X_SERVICE_PORT)` substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    /// The full URL, e.g. `https://activegate.internal:9999/communication`.
    pub url: String,
    pub host: String,
    pub port: u16,
}

/// What only the config can say. `Settings::default()` translates without a config:
/// everything it would need is then reported as `needs-setting`.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The config's target name, tagged onto what is created.
    pub target: Option<String>,
    pub family: Option<EcsName>,
    pub cluster: Option<Cluster>,
    pub service: Option<EcsName>,
    /// Overrides the manifest's image (the rollout engine's choice).
    pub image: Option<String>,
    pub execution_role_arn: Option<RoleArn>,
    pub task_role_arn: Option<RoleArn>,
    pub logs: Option<LogSettings>,
    pub tenant_token: Option<SecretArn>,
    pub auth_token: Option<SecretArn>,
    pub registry_credentials: Option<SecretsManagerArn>,
    /// `DT_*` variables set by the config; they win over the manifest's.
    pub environment: BTreeMap<String, String>,
    pub entry_point: Option<EntryPoint>,
    /// Translate the liveness probe into an ECS container health check (needs
    /// `curl` in the image). `None` means the default, on.
    pub container_health_check: Option<bool>,
    pub desired_count: Option<u32>,
    pub subnets: Vec<SubnetId>,
    pub security_groups: Vec<SecurityGroupId>,
    pub assign_public_ip: bool,
    pub service_registry_arn: Option<ServiceRegistryArn>,
    pub target_group_arn: Option<TargetGroupArn>,
    /// Where each setting was written (`image`, `entry_point`, `environment.DT_TENANT`,
    /// `network.subnets`, …), so that a refusal of a setting points at its line.
    pub at: BTreeMap<String, Where>,
}

impl Settings {
    /// Where a setting was written; `(config) KEY` when nobody said.
    pub fn at(&self, key: &str) -> Where {
        self.at
            .get(key)
            .cloned()
            .unwrap_or_else(|| Where::file(&format!("(config) {key}")))
    }
}

/// The HTTPS readiness probe the daemon runs against every task, taken from
/// the manifest's readinessProbe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub port: u16,
    pub path: String,
    pub period_seconds: u32,
    pub failure_threshold: u32,
    pub timeout_seconds: u32,
    pub initial_delay_seconds: u32,
}

/// The result of a translation.
#[derive(Debug, Clone)]
pub struct Translation {
    pub task_definition: TaskDefinition,
    pub report: Report,
    pub readiness: Readiness,
    /// The ActiveGate container's name in the task definition.
    pub container: String,
    /// Desired count: config, else the manifest's replicas, else 2.
    pub desired_count: u32,
    /// The Services' ports, resolved to container ports, for the service document.
    pub service_ports: Vec<(String, u16)>,
}

/// The ActiveGate port (HTTPS).
pub const ACTIVEGATE_PORT: u16 = 9999;
/// Memory Dynatrace recommends for the smallest routing ActiveGate.
const RECOMMENDED_MEMORY_MIB: u32 = 2048;
/// What the Dynatrace Operator waits before the first probe of a new ActiveGate.
const TYPICAL_START_SECONDS: u32 = 90;

/// Paths ActiveGate writes to; with a read-only root file system each needs a
/// volume. (name for an added volume, path)
const WRITABLE_PATHS: [(&str, &str); 6] = [
    ("ag-lib-gateway-config", "/var/lib/dynatrace/gateway/config"),
    ("ag-lib-gateway-ssl", "/var/lib/dynatrace/gateway/ssl"),
    ("ag-lib-gateway-temp", "/var/lib/dynatrace/gateway/temp"),
    ("ag-lib-gateway-data", "/var/lib/dynatrace/gateway/data"),
    ("ag-log-gateway", "/var/log/dynatrace/gateway"),
    ("ag-tmp-gateway", "/var/tmp/dynatrace/gateway"),
];

/// Capabilities that only make sense with the Kubernetes API.
const KUBERNETES_ONLY_CAPABILITIES: [&str; 2] = ["kubernetes_monitoring", "kubernetes-monitoring"];

/// Translation state: the manifest, the settings, and the report being written.
struct Ctx<'a> {
    m: &'a Manifest,
    s: &'a Settings,
    report: Report,
    /// `StatefulSet/name spec.template.spec`
    pod_path: String,
    /// Where each document field came from: (document field, place, source field),
    /// so that a limit found on the whole document points at its input.
    origins: Vec<(String, Where, String)>,
}

/// A field path for a message: a bracketed part longer than 64 characters (a
/// 1 MB container name) is cut, and nothing token-looking is kept.
fn short_path(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        let inner = &rest[open + 1..close];
        if inner.chars().count() > 64 {
            out.push_str(&format!("[…{} chars]", inner.chars().count()));
        } else {
            out.push_str(&rest[open..=close]);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    let out: String = if out.chars().count() > 512 {
        out.chars().take(512).chain("…".chars()).collect()
    } else {
        out
    };
    secret::scrub(&out).into_owned()
}

/// Placeholder images (`<YOUR_ENVIRONMENT_URL>/linux/activegate`): kept only in a
/// translation without a config, which reports them as needing a setting.
fn is_placeholder(image: &str) -> bool {
    image.contains('<') || image.contains('>')
}

impl Ctx<'_> {
    fn note(
        &mut self,
        action: Action,
        source: &str,
        target: Option<&str>,
        detail: impl Into<String>,
    ) {
        let source = if source.is_empty() {
            self.m.workload.id()
        } else if source.starts_with("(config)") {
            source.to_owned()
        } else if source.starts_with("spec") || source.starts_with("metadata") {
            format!("{} {source}", self.m.workload.id())
        } else {
            format!("{} {}.{source}", self.m.workload.id(), self.pod_path)
        };
        self.report.push(action, source, target, detail);
    }

    /// Records where a document field came from.
    fn origin(&mut self, target: &str, at: &Where, source: &str) {
        self.origins
            .push((target.to_owned(), at.clone(), source.to_owned()));
    }

    /// Every value copied from the manifest or the config into a document passes
    /// here: it must not look like a secret, and must keep the field's own limit.
    fn gate(
        &mut self,
        at: &Where,
        source: &str,
        target: &str,
        value: &str,
        limit: impl FnOnce(&str, &str) -> Result<(), Violation>,
    ) -> Result<(), TranslateError> {
        self.origin(target, at, source);
        if let Some(f) = secret::find(value) {
            return Err(TranslateError::LiteralSecret {
                at: at.clone(),
                what: short_path(source),
                shape: format!("it looks like {}", secret::describe(value, &f)),
            });
        }
        limit(target, value).map_err(|mut violation| {
            violation.field = short_path(&violation.field);
            TranslateError::Limit {
                at: at.clone(),
                source_field: short_path(source),
                violation: Box::new(violation),
            }
        })
    }

    /// A limit found on a document, pointed at the input it came from: the
    /// longest recorded field it falls under, else the workload.
    fn refusal(&self, violation: Violation) -> TranslateError {
        let best = self
            .origins
            .iter()
            .filter(|(t, ..)| {
                violation.field == *t
                    || violation.field.starts_with(&format!("{t}."))
                    || violation.field.starts_with(&format!("{t}["))
            })
            .max_by_key(|(t, ..)| t.len());
        let (at, source_field) = match best {
            Some((_, at, src)) => (at.clone(), short_path(src)),
            None => (
                self.m.workload.at.clone(),
                short_path(&self.m.workload.id()),
            ),
        };
        let mut violation = violation;
        violation.field = short_path(&violation.field);
        TranslateError::Limit {
            at,
            source_field,
            violation: Box::new(violation),
        }
    }
}

/// Translates a parsed manifest with the given settings.
pub fn translate(m: &Manifest, s: &Settings) -> Result<Translation, TranslateError> {
    let mut cx = Ctx {
        m,
        s,
        report: Report::default(),
        pod_path: "spec.template.spec".into(),
        origins: Vec::new(),
    };
    for skipped in &m.skipped {
        cx.report.push(
            Action::Dropped,
            skipped.clone(),
            None,
            "document skipped: this kind has no part in an ActiveGate task",
        );
    }

    let pod = &m.workload.pod;
    let ag = pick_activegate(m)?;
    let ag_name = ag.name.value.clone();
    let cpath = format!("containers[{ag_name}]");
    let tpath = format!("containerDefinitions[{ag_name}]");
    for other in pod.containers.iter().filter(|c| c.name.value != ag_name) {
        cx.note(
            Action::Dropped,
            &format!("containers[{}]", other.name.value),
            None,
            "only the ActiveGate container is translated; run sidecars as their own ECS containers",
        );
    }
    refuse_literal_secrets(m, ag)?;
    for init in &pod.init_containers {
        refuse_literal_secrets(m, init)?;
        drop_init_container(&mut cx, init);
    }

    cx.gate(
        &Where::of(&m.source, &ag.name),
        &format!("{cpath}.name"),
        &format!("{tpath}.name"),
        &ag_name,
        |f, v| limits::name(f, v, limits::source::CONTAINER_DEFINITION),
    )?;

    // Image.
    let image_target = format!("{tpath}.image");
    let image = match (&s.image, &ag.image) {
        (Some(img), from) => {
            cx.gate(
                &s.at("image"),
                "(config) image",
                &image_target,
                img,
                limits::image,
            )?;
            let was = from
                .as_ref()
                .map_or_else(|| "(none)".to_owned(), |f| secret::shown(&f.value));
            cx.note(
                Action::Adjusted,
                &format!("{cpath}.image"),
                Some(&image_target),
                format!("`{img}` from the config (manifest had {was})"),
            );
            img.clone()
        }
        (None, Some(spanned)) => {
            let img = &spanned.value;
            let at = Where::of(&m.source, spanned);
            let source = format!("{cpath}.image");
            if is_placeholder(img) {
                if s.target.is_some() {
                    return Err(TranslateError::Limit {
                        at,
                        source_field: source,
                        violation: Box::new(Violation {
                            field: image_target,
                            found: format!("the placeholder {}", secret::shown(img)),
                            allowed: "a real image: set `image` in the config".into(),
                            source: limits::source::CONTAINER_DEFINITION,
                        }),
                    });
                }
                // A draft without a config: the report asks for the image.
                cx.gate(&at, &source, &image_target, img, |_, _| Ok(()))?;
                let shown = secret::shown(img);
                cx.note(
                    Action::NeedsSetting,
                    &source,
                    Some(&image_target),
                    format!("{shown} is a placeholder; set `image` in the config"),
                );
            } else {
                cx.gate(&at, &source, &image_target, img, limits::image)?;
                if !has_tag_or_digest(img) {
                    cx.note(Action::Warning, &source, Some(&image_target),
                        format!("`{img}` names no tag or digest; public ActiveGate images carry version tags only, so pin one"));
                } else {
                    cx.note(
                        Action::Mapped,
                        &source,
                        Some(&image_target),
                        format!("`{img}`"),
                    );
                }
            }
            img.clone()
        }
        (None, None) => {
            return Err(TranslateError::Unsupported {
                at: Where::of(&m.source, &ag.name),
                message: format!(
                    "container {} has no image and the config sets none",
                    secret::shown(&ag_name)
                ),
            });
        }
    };

    let mut c = ContainerDefinition::new(ag_name.clone(), image.clone());
    cx.origin(&tpath, &Where::of(&m.source, &ag.name), &cpath);
    if let Some(dir) = &ag.working_dir {
        cx.gate(
            &Where::of(&m.source, dir),
            &format!("{cpath}.workingDir"),
            &format!("{tpath}.workingDirectory"),
            &dir.value,
            limits::path,
        )?;
        c.working_directory = Some(dir.value.clone());
        cx.note(
            Action::Mapped,
            &format!("{cpath}.workingDir"),
            Some(&format!("{tpath}.workingDirectory")),
            "",
        );
    }
    for (field, list, target) in [
        ("command", &ag.command, "entryPoint"),
        ("args", &ag.args, "command"),
    ] {
        for (i, a) in list.iter().enumerate() {
            cx.gate(
                &Where::of(&m.source, a),
                &format!("{cpath}.{field}[{i}]"),
                &format!("{tpath}.{target}[{i}]"),
                &a.value,
                |f, v| limits::text(f, v, limits::VALUE_MAX_BYTES, true, limits::source::BUDGET),
            )?;
        }
    }
    if !ag.command.is_empty() {
        c.entry_point = ag.command.iter().map(|a| a.value.clone()).collect();
        cx.note(
            Action::Mapped,
            &format!("{cpath}.command"),
            Some(&format!("{tpath}.entryPoint")),
            "Kubernetes `command` replaces the image's ENTRYPOINT, as ECS `entryPoint` does",
        );
    }
    if !ag.args.is_empty() {
        c.command = ag.args.iter().map(|a| a.value.clone()).collect();
        cx.note(
            Action::Mapped,
            &format!("{cpath}.args"),
            Some(&format!("{tpath}.command")),
            "Kubernetes `args` replaces the image's CMD, as ECS `command` does",
        );
    }

    map_ports(&mut cx, ag, &mut c, &cpath, &tpath)?;
    map_environment(&mut cx, ag, &mut c, &cpath, &tpath)?;
    let (cpu, memory) = map_resources(&mut cx, ag, &mut c, &cpath, &tpath)?;
    map_security(&mut cx, ag, &mut c, &cpath, &tpath)?;
    let mut volumes = map_volumes(&mut cx, ag, &mut c, &cpath, &tpath)?;
    map_probes(&mut cx, ag, &mut c, &cpath, &tpath)?;
    let readiness = readiness(&mut cx, ag, &cpath)?;
    let runtime_platform = map_platform(&mut cx);

    if let Some(grace) = pod.termination_grace_period_seconds {
        let secs = u32::try_from(grace.clamp(2, 120)).expect("clamped to 2..=120");
        let action = if i64::from(secs) == grace {
            Action::Mapped
        } else {
            Action::Adjusted
        };
        cx.note(
            action,
            "terminationGracePeriodSeconds",
            Some(&format!("{tpath}.stopTimeout")),
            if action == Action::Mapped {
                format!("{secs} s")
            } else {
                format!("{grace} s → {secs} s (Fargate allows 2–120 s)")
            },
        );
        c.stop_timeout = Some(secs);
    }

    // Registry credentials.
    let repository_credentials = match (&s.registry_credentials, pod.image_pull_secrets.is_empty())
    {
        (Some(arn), no_secret) => {
            let src = if no_secret {
                "(config)".to_owned()
            } else {
                "imagePullSecrets".to_owned()
            };
            let action = if no_secret {
                Action::Added
            } else {
                Action::Mapped
            };
            cx.note(
                action,
                &src,
                Some(&format!("{tpath}.repositoryCredentials")),
                format!("credentialsParameter {arn}"),
            );
            Some(RepositoryCredentials {
                credentials_parameter: arn.to_string(),
            })
        }
        (None, false) => {
            let names: Vec<&str> = pod
                .image_pull_secrets
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            cx.note(Action::NeedsSetting, "imagePullSecrets", Some(&format!("{tpath}.repositoryCredentials")),
                format!("pull secret `{}`: set `secrets.registry_credentials` to a Secrets Manager ARN holding {{\"username\",\"password\"}}", names.join("`, `")));
            None
        }
        (None, true) => None,
    };
    c.repository_credentials = repository_credentials.clone();

    // Logs.
    let log_configuration = match &s.logs {
        Some(logs) => {
            let mut options = BTreeMap::new();
            options.insert("awslogs-group".to_owned(), logs.group.to_string());
            options.insert("awslogs-region".to_owned(), logs.region.to_string());
            options.insert(
                "awslogs-stream-prefix".to_owned(),
                logs.stream_prefix.clone(),
            );
            cx.note(
                Action::Added,
                "(config)",
                Some(&format!("{tpath}.logConfiguration")),
                format!(
                    "awslogs to group {} in {}, stream prefix `{}`",
                    logs.group, logs.region, logs.stream_prefix
                ),
            );
            Some(LogConfiguration {
                log_driver: "awslogs".into(),
                options,
            })
        }
        None => {
            cx.note(
                Action::NeedsSetting,
                "(config)",
                Some(&format!("{tpath}.logConfiguration")),
                "set `logs.group` and `region`: without them the containers' output is lost",
            );
            None
        }
    };
    c.log_configuration = log_configuration.clone();

    // Tokens: the init container writes them into the tokens volume.
    let mut containers = Vec::new();
    let tokens_volume = c
        .mount_points
        .iter()
        .find(|mp| mp.container_path == secrets::TOKENS_DIR)
        .map(|mp| mp.source_volume.clone());
    match &s.tenant_token {
        Some(tenant) => {
            let volume = tokens_volume.unwrap_or_else(|| {
                let name = unique_name(&volumes, "dynatrace-tokens");
                volumes.push(Volume { name: name.clone() });
                c.mount_points.push(MountPoint {
                    source_volume: name.clone(),
                    container_path: secrets::TOKENS_DIR.into(),
                    read_only: true,
                });
                name
            });
            let mut writer = secrets::token_writer(
                &image,
                &volume,
                tenant,
                s.auth_token.as_ref(),
                c.user.as_deref(),
            );
            writer.log_configuration = log_configuration;
            writer.repository_credentials = repository_credentials;
            cx.note(Action::Added, "(config) secrets.tenant_token", Some(&format!("containerDefinitions[{}]", secrets::TOKEN_WRITER)),
                format!(
                    "init container: receives the token{} through ECS secrets ({}) and writes {} into volume `{volume}`; `{ag_name}` waits for it (dependsOn SUCCESS)",
                    if s.auth_token.is_some() { "s" } else { "" },
                    std::iter::once(tenant.to_string()).chain(s.auth_token.iter().map(|a| a.to_string())).collect::<Vec<_>>().join(", "),
                    if s.auth_token.is_some() { "tenant-token and auth-token" } else { "tenant-token" },
                ));
            if s.auth_token.is_none() {
                cx.note(Action::Warning, "(config) secrets.auth_token", None,
                    "no ActiveGate auth token: fine unless the environment enforces ActiveGate tokens");
            }
            c.depends_on.push(ContainerDependency {
                container_name: secrets::TOKEN_WRITER.into(),
                condition: "SUCCESS".into(),
            });
            containers.push(writer);
        }
        None => {
            cx.note(Action::NeedsSetting, "(config) secrets.tenant_token", Some(&tpath),
                "ActiveGate cannot connect without its tenant token: set `secrets.tenant_token` to a Secrets Manager or SSM ARN");
        }
    }
    containers.insert(0, c);

    // Unmapped fields: everything present but not read above.
    unmapped::report(&mut cx, &ag_name);

    let family = match &s.family {
        Some(f) => {
            cx.origin("family", &s.at("family"), "(config) family");
            f.to_string()
        }
        None => {
            // The name as written, before `.` becomes `-`: a token must not slip through.
            cx.gate(
                &m.workload.at,
                "metadata.name",
                "family",
                &m.workload.name,
                |_, _| Ok(()),
            )?;
            let f = sanitize_family(&m.workload.name);
            cx.gate(&m.workload.at, "metadata.name", "family", &f, |_, _| Ok(()))?;
            cx.note(
                Action::Mapped,
                "metadata.name",
                Some("family"),
                format!("`{f}`"),
            );
            f
        }
    };
    match &s.execution_role_arn {
        Some(_) => {}
        None if s.tenant_token.is_some()
            || s.logs.is_some()
            || s.registry_credentials.is_some() =>
        {
            cx.note(Action::NeedsSetting, "(config) execution_role_arn", Some("executionRoleArn"),
                "ECS needs an execution role to read secrets, pull from a private registry and write logs");
        }
        None => {}
    }
    let desired_count = s.desired_count.or(m.workload.replicas).unwrap_or(2);
    match (s.desired_count, m.workload.replicas) {
        (Some(n), _) => cx.note(
            Action::Adjusted,
            "spec.replicas",
            Some("desiredCount"),
            format!("{n} from the config"),
        ),
        (None, Some(n)) => cx.note(
            Action::Mapped,
            "spec.replicas",
            Some("desiredCount"),
            format!("{n}"),
        ),
        (None, None) => cx.note(
            Action::Added,
            "spec.replicas",
            Some("desiredCount"),
            "2: one ActiveGate may fail without losing routing",
        ),
    }
    if desired_count < 2 {
        cx.note(Action::Warning, "spec.replicas", Some("desiredCount"),
            format!("{desired_count} task: a single ActiveGate is a single point of failure for every OneAgent that routes through it"));
    }
    let service_ports = service::map_services(&mut cx, &ag_name);

    let mut tags = vec![Tag::new("managed-by", MANAGED_BY)];
    if let Some(t) = &s.target {
        tags.push(Tag::new("activegate-lifecycle:target", t.clone()));
    }

    let task_definition = TaskDefinition {
        family,
        task_role_arn: s.task_role_arn.as_ref().map(ToString::to_string),
        execution_role_arn: s.execution_role_arn.as_ref().map(ToString::to_string),
        network_mode: "awsvpc".into(),
        container_definitions: containers,
        volumes,
        requires_compatibilities: vec!["FARGATE".into()],
        cpu: cpu.to_string(),
        memory: memory.to_string(),
        runtime_platform: Some(runtime_platform),
        tags,
    };
    // The whole document against ECS's limits, before anything prints or registers it.
    let draft_image = is_placeholder(&image) && s.target.is_none();
    if let Some(v) = limits::task_definition(&task_definition)
        .into_iter()
        .find(|v| !(draft_image && v.field.ends_with(".image")))
    {
        return Err(cx.refusal(v));
    }
    Ok(Translation {
        task_definition,
        report: cx.report,
        readiness,
        container: ag_name,
        desired_count,
        service_ports,
    })
}

fn has_tag_or_digest(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.contains(':')
}

fn sanitize_family(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(255)
        .collect();
    if s.is_empty() {
        "dynatrace-activegate".into()
    } else {
        s
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

/// The ActiveGate container: the only one, or the one named or imaged like it.
fn pick_activegate(m: &Manifest) -> Result<&Container, TranslateError> {
    let cs = &m.workload.pod.containers;
    match cs.len() {
        0 => Err(TranslateError::Unsupported {
            at: m.workload.at.clone(),
            message: secret::scrub(&format!(
                "{} has no containers (spec.template.spec.containers is empty)",
                m.workload.id()
            ))
            .into_owned(),
        }),
        1 => Ok(&cs[0]),
        _ => cs
            .iter()
            .find(|c| c.name.value.contains("activegate"))
            .or_else(|| {
                cs.iter().find(|c| {
                    c.image
                        .as_ref()
                        .is_some_and(|i| i.value.contains("activegate"))
                })
            })
            .ok_or_else(|| TranslateError::Unsupported {
                at: m.workload.at.clone(),
                message: secret::scrub(&format!(
                    "{} has {} containers and none is named or imaged like an ActiveGate: {}",
                    m.workload.id(),
                    cs.len(),
                    cs.iter()
                        .map(|c| secret::shown(&c.name.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into_owned(),
            }),
    }
}

/// Refuses env values and arguments that carry a token, pointing at the place.
fn refuse_literal_secrets(m: &Manifest, c: &Container) -> Result<(), TranslateError> {
    let cname = &c.name.value;
    for e in &c.env {
        if let Some(v) = &e.value {
            let name = &e.name.value;
            let found = secret::find(&v.value);
            if !v.value.is_empty() && (secrets::is_secret_name(name) || found.is_some()) {
                return Err(TranslateError::LiteralSecret {
                    at: Where::of(&m.source, v),
                    what: format!(
                        "env `{}` of container `{}`",
                        secret::scrub(name),
                        secret::scrub(cname)
                    ),
                    shape: match found {
                        Some(f) => format!("it looks like {}", secret::describe(&v.value, &f)),
                        None => format!(
                            "a literal value of {} chars under a secret's name",
                            v.value.chars().count()
                        ),
                    },
                });
            }
        }
    }
    for (field, list) in [("args", &c.args), ("command", &c.command)] {
        let mut next_is_secret = false;
        for (i, a) in list.iter().enumerate() {
            let (here, next) = secrets::secret_in_arg(&a.value);
            if here || (next_is_secret && !a.value.starts_with('-')) {
                return Err(TranslateError::LiteralSecret {
                    at: Where::of(&m.source, a),
                    what: format!("{field}[{i}] of container `{}`", secret::scrub(cname)),
                    shape: if here {
                        secret::shape(&a.value)
                    } else {
                        format!(
                            "the value of the flag before it, {} chars",
                            a.value.chars().count()
                        )
                    },
                });
            }
            next_is_secret = next;
        }
    }
    Ok(())
}

fn drop_init_container(cx: &mut Ctx<'_>, init: &Container) {
    let name = &init.name.value;
    let builds_truststore = name == "certificate-loader"
        || init
            .command
            .iter()
            .chain(&init.args)
            .any(|a| a.value.contains("k8scrt2jks"));
    let why = if builds_truststore {
        "builds a Java trust store from the Kubernetes service-account CA for kubernetes_monitoring; there is no Kubernetes API on ECS"
    } else {
        "init containers are not translated; add it as a non-essential ECS container with dependsOn SUCCESS if it is needed"
    };
    cx.note(
        Action::Dropped,
        &format!("initContainers[{name}]"),
        None,
        why,
    );
    if !builds_truststore {
        cx.note(
            Action::Warning,
            &format!("initContainers[{name}]"),
            None,
            "check that ActiveGate starts without it",
        );
    }
}

fn map_ports(
    cx: &mut Ctx<'_>,
    ag: &Container,
    c: &mut ContainerDefinition,
    cpath: &str,
    tpath: &str,
) -> Result<(), TranslateError> {
    let source = cx.m.source.clone();
    let mut seen: BTreeMap<u16, String> = BTreeMap::new();
    for (i, p) in ag.ports.iter().enumerate() {
        let protocol = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
        let src = format!(
            "{cpath}.ports[{}]",
            p.name.clone().unwrap_or_else(|| i.to_string())
        );
        let at = Where::of(&source, &p.container_port);
        let port = p.container_port.value;
        let target = format!("{tpath}.portMappings[{port}]");
        cx.gate(
            &at,
            &format!("{src}.containerPort"),
            &format!("{target}.containerPort"),
            "",
            |f, _| limits::port(f, u32::from(port)),
        )?;
        if let Some(name) = &p.name {
            cx.gate(
                &at,
                &format!("{src}.name"),
                &format!("{target}.name"),
                name,
                limits::port_name,
            )?;
        }
        if let Some(first) = seen.insert(port, src.clone()) {
            return Err(TranslateError::Limit {
                at,
                source_field: format!("{src}.containerPort"),
                violation: Box::new(Violation {
                    field: format!("{target}.containerPort"),
                    found: format!("port {port}, which {first} maps already"),
                    allowed: "each container port once (ECS cannot expose one port for several protocols)".into(),
                    source: limits::source::PORT_MAPPING,
                }),
            });
        }
        if protocol != "tcp" && protocol != "udp" {
            cx.note(
                Action::Dropped,
                &src,
                None,
                format!("protocol {protocol} is not supported by ECS"),
            );
            continue;
        }
        c.port_mappings.push(PortMapping {
            name: p.name.clone(),
            container_port: port,
            protocol,
        });
        cx.note(
            Action::Mapped,
            &src,
            Some(&format!("{tpath}.portMappings")),
            format!(
                "{}{}",
                port,
                p.name
                    .as_ref()
                    .map(|n| format!(" (name `{n}` kept)"))
                    .unwrap_or_default()
            ),
        );
        if port != ACTIVEGATE_PORT {
            cx.note(
                Action::Warning,
                &src,
                None,
                format!("ActiveGate listens on {ACTIVEGATE_PORT} (HTTPS); port {port} is unusual"),
            );
        }
    }
    if !c
        .port_mappings
        .iter()
        .any(|p| p.container_port == ACTIVEGATE_PORT)
    {
        c.port_mappings.push(PortMapping {
            name: Some("ag-https".into()),
            container_port: ACTIVEGATE_PORT,
            protocol: "tcp".into(),
        });
        cx.note(
            Action::Added,
            &format!("{cpath}.ports"),
            Some(&format!("{tpath}.portMappings")),
            format!("{ACTIVEGATE_PORT} (ag-https): the port OneAgents and the health probe use"),
        );
    }
    Ok(())
}

/// Resolves a named or numbered port against the container's ports.
fn resolve_port(ag: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => Some(*n),
        IntOrString::Name(name) => ag
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port.value),
    }
}

/// Why `$(VAR)` expansion gave no value.
#[derive(Debug, PartialEq, Eq)]
enum Unexpanded {
    /// These names could not be resolved.
    Missing(Vec<String>),
    /// The value would grow beyond its budget (`$(A)$(A)` doubling, variable after
    /// variable, grows exponentially): refused before anything that large exists.
    OverBudget,
}

/// Expands Kubernetes `$(VAR)` references within `budget` bytes of output.
fn expand(
    value: &str,
    known: &BTreeMap<String, String>,
    entry: Option<&EntryPoint>,
    budget: usize,
) -> Result<String, Unexpanded> {
    let mut out = String::new();
    let mut missing = Vec::new();
    let mut rest = value;
    let push = |out: &mut String, piece: &str| {
        if out.len() + piece.len() > budget {
            return Err(Unexpanded::OverBudget);
        }
        out.push_str(piece);
        Ok(())
    };
    while let Some(pos) = rest.find('$') {
        push(&mut out, &rest[..pos])?;
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$$") {
            push(&mut out, "$")?;
            rest = tail;
        } else if let Some(inner) = after.strip_prefix("$(") {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    let resolved: Option<std::borrow::Cow<'_, str>> = match known.get(name) {
                        Some(v) => Some(v.as_str().into()),
                        None => entry.and_then(|e| {
                            if name.ends_with("_SERVICE_HOST") {
                                Some(e.host.as_str().into())
                            } else if name.ends_with("_SERVICE_PORT")
                                || name.ends_with("_SERVICE_PORT_HTTPS")
                            {
                                Some(e.port.to_string().into())
                            } else {
                                None
                            }
                        }),
                    };
                    match resolved {
                        Some(v) => push(&mut out, &v)?,
                        None => missing.push(name.to_owned()),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    push(&mut out, after)?;
                    rest = "";
                }
            }
        } else {
            push(&mut out, "$")?;
            rest = &after[1..];
        }
    }
    push(&mut out, rest)?;
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(Unexpanded::Missing(missing))
    }
}

fn map_environment(
    cx: &mut Ctx<'_>,
    ag: &Container,
    c: &mut ContainerDefinition,
    cpath: &str,
    tpath: &str,
) -> Result<(), TranslateError> {
    let s = cx.s;
    let source = cx.m.source.clone();
    let target = format!("{tpath}.environment");
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    // Bytes of names and values so far: the budget of the whole environment.
    let mut used = 0usize;
    for e in &ag.env {
        let name = e.name.value.clone();
        let src = format!("{cpath}.env[{name}]");
        let name_at = Where::of(&source, &e.name);
        cx.gate(
            &name_at,
            &src,
            &format!("{target}[{name}].name"),
            &name,
            limits::env_name,
        )?;
        if let Some(from) = &e.value_from {
            if let Some(r) = &from.secret_key_ref {
                cx.note(Action::NeedsSetting, &src, None, format!(
                    "from Kubernetes secret `{}` key `{}`: ECS reads secrets from Secrets Manager or SSM; tokens go under [target.secrets], other secrets must be added by hand", r.name, r.key));
            } else if let Some(r) = &from.config_map_key_ref {
                cx.note(Action::NeedsSetting, &src, None, format!(
                    "from ConfigMap `{}` key `{}`: set the value under [target.environment] in the config", r.name, r.key));
            } else {
                cx.note(
                    Action::Dropped,
                    &src,
                    None,
                    "the Kubernetes downward API has no ECS equivalent",
                );
            }
            continue;
        }
        let raw = e
            .value
            .as_ref()
            .map(|v| v.value.clone())
            .unwrap_or_default();
        let at = e
            .value
            .as_ref()
            .map_or_else(|| name_at.clone(), |v| Where::of(&source, v));
        if name.starts_with("DT_ID_SEED_") {
            cx.note(Action::Dropped, &src, None, "seeds the ActiveGate ID from the Kubernetes cluster and namespace; meaningless on ECS");
            continue;
        }
        if s.environment.contains_key(&name) {
            // Reported below, with the config's value.
            continue;
        }
        let value_target = format!("{target}[{name}].value");
        if let Some(ep) = s
            .entry_point
            .as_ref()
            .filter(|_| name == "DT_DNS_ENTRY_POINT")
        {
            cx.gate(
                &s.at("entry_point"),
                "(config) entry_point",
                &value_target,
                &ep.url,
                limits::env_value,
            )?;
            cx.note(
                Action::Adjusted,
                &src,
                Some(&target),
                format!("`{}` from the config's entry_point", ep.url),
            );
            used += name.len() + ep.url.len();
            env.insert(name, ep.url.clone());
            continue;
        }
        let budget =
            limits::VALUE_MAX_BYTES.min(limits::ENVIRONMENT_MAX_BYTES.saturating_sub(used));
        let value = match expand(&raw, &env, s.entry_point.as_ref(), budget) {
            Ok(v) => v,
            Err(Unexpanded::OverBudget) => {
                return Err(TranslateError::ExpansionBudget {
                    at,
                    what: format!("env `{name}` of container `{}`", ag.name.value),
                    limit: limits::ENVIRONMENT_MAX_BYTES,
                    value_limit: limits::VALUE_MAX_BYTES,
                });
            }
            Err(Unexpanded::Missing(missing)) => {
                let hint = if name == "DT_DNS_ENTRY_POINT"
                    || missing.iter().any(|m| m.contains("_SERVICE_"))
                {
                    "set `entry_point` in the config to the address OneAgents use"
                } else {
                    "set the value under [target.environment] in the config"
                };
                cx.note(
                    Action::NeedsSetting,
                    &src,
                    Some(&target),
                    format!(
                        "refers to $({}), which ECS cannot resolve; not copied: {hint}",
                        missing.join("), $(")
                    ),
                );
                continue;
            }
        };
        cx.gate(&at, &src, &value_target, &value, limits::env_value)?;
        used += name.len() + value.len();
        if name == "DT_CAPABILITIES" {
            let (kept, removed): (Vec<&str>, Vec<&str>) = value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .partition(|c| !KUBERNETES_ONLY_CAPABILITIES.contains(c));
            let kept = kept.join(",");
            if removed.is_empty() {
                cx.note(Action::Mapped, &src, Some(&target), format!("`{kept}`"));
            } else {
                cx.note(
                    Action::Adjusted,
                    &src,
                    Some(&target),
                    format!(
                        "`{value}` → `{kept}`: {} needs the Kubernetes API",
                        removed.join(", ")
                    ),
                );
            }
            env.insert(name, kept);
            continue;
        }
        if value != raw {
            cx.note(
                Action::Adjusted,
                &src,
                Some(&target),
                format!("`$(...)` references resolved to {}", secret::shown(&value)),
            );
        } else {
            cx.note(Action::Mapped, &src, Some(&target), "");
        }
        env.insert(name, value);
    }
    for (name, value) in &s.environment {
        let from_manifest = ag.env.iter().any(|e| &e.name.value == name);
        let (action, src) = if from_manifest {
            (Action::Adjusted, format!("{cpath}.env[{name}]"))
        } else {
            (Action::Added, format!("(config) environment.{name}"))
        };
        let key = format!("environment.{name}");
        cx.gate(
            &s.at(&key),
            &format!("(config) {key}"),
            &format!("{target}[{name}].value"),
            value,
            limits::env_value,
        )?;
        cx.note(
            action,
            &src,
            Some(&target),
            format!("`{value}` from the config"),
        );
        env.insert(name.clone(), value.clone());
    }
    for required in ["DT_TENANT", "DT_SERVER"] {
        if !env.contains_key(required) {
            cx.note(
                Action::NeedsSetting,
                &format!("(config) environment.{required}"),
                Some(&target),
                "ActiveGate needs it to find its environment; set it under [target.environment]",
            );
        }
    }
    c.environment = env
        .into_iter()
        .map(|(name, value)| KeyValuePair { name, value })
        .collect();
    Ok(())
}

/// Maps requests/limits to container reservations and the task size.
fn map_resources(
    cx: &mut Ctx<'_>,
    ag: &Container,
    c: &mut ContainerDefinition,
    cpath: &str,
    tpath: &str,
) -> Result<(u32, u32), TranslateError> {
    let res = ag.resources.as_ref();
    let req = res.and_then(|r| r.requests.as_ref());
    let lim = res.and_then(|r| r.limits.as_ref());
    let source = cx.m.source.clone();
    fn spanned<'q>(
        source: &str,
        q: Option<&'q Spanned<Quantity>>,
    ) -> Option<(&'q Quantity, Where)> {
        q.map(|q| (&q.value, Where::of(source, q)))
    }
    let (cpu_req, cpu_req_at) = spanned(&source, req.and_then(|r| r.cpu.as_ref())).unzip();
    let (cpu_lim, _) = spanned(&source, lim.and_then(|r| r.cpu.as_ref())).unzip();
    let (mem_req, mem_req_at) = spanned(&source, req.and_then(|r| r.memory.as_ref())).unzip();
    let (mem_lim, mem_lim_at) = spanned(&source, lim.and_then(|r| r.memory.as_ref())).unzip();

    // The task must cover the larger of request and limit.
    let cpu_need = cpu_req
        .iter()
        .chain(cpu_lim.iter())
        .map(|q| q.cpu_units())
        .max();
    let mem_need = mem_req
        .iter()
        .chain(mem_lim.iter())
        .map(|q| q.mebibytes())
        .max();
    let (cpu_need, mem_need) = match (cpu_need, mem_need) {
        (Some(c), Some(m)) => (c, m),
        (c, m) => {
            cx.note(Action::Added, &format!("{cpath}.resources"), Some("cpu, memory"),
                "missing requests/limits: Dynatrace's small routing ActiveGate size (250m CPU, 2 GiB)");
            (
                c.unwrap_or(256),
                m.unwrap_or(u128::from(RECOMMENDED_MEMORY_MIB)),
            )
        }
    };
    let too_big = || TranslateError::TooLargeForFargate {
        at: Where::of(&cx.m.source, &ag.name),
        what: format!("container {}", secret::shown(&ag.name.value)),
        cpu: cpu_need,
        memory_mib: mem_need,
    };
    let size = match (u32::try_from(cpu_need), u32::try_from(mem_need)) {
        (Ok(cpu), Ok(mem)) => fargate::smallest_fitting(cpu, mem).ok_or_else(too_big)?,
        _ => return Err(too_big()),
    };

    if let Some(q) = cpu_req.or(cpu_lim) {
        let units = u32::try_from(q.cpu_units()).map_err(|_| too_big())?;
        if let Some(at) = cpu_req_at.as_ref() {
            cx.origin(
                &format!("{tpath}.cpu"),
                at,
                &format!("{cpath}.resources.requests.cpu"),
            );
        }
        c.cpu = Some(units);
        let which = if cpu_req.is_some() {
            "requests"
        } else {
            "limits"
        };
        cx.note(
            Action::Adjusted,
            &format!("{cpath}.resources.{which}.cpu"),
            Some(&format!("{tpath}.cpu")),
            format!("{q} → {units} CPU units (1024 per vCPU)"),
        );
    }
    let mib_of = |q: Option<&Quantity>| -> Result<Option<u32>, TranslateError> {
        q.map(|q| u32::try_from(q.mebibytes()).map_err(|_| too_big()))
            .transpose()
    };
    let (reservation, hard) = (mib_of(mem_req)?, mib_of(mem_lim)?);
    // Checked with the place of the quantity that breaks the limit: the limit when it
    // is below the request or Docker's minimum, else the request.
    let limit_error = limits::container_memory(tpath, hard, None, size.memory_mib)
        .err()
        .map(|v| (v, mem_lim_at.clone(), "limits"))
        .or_else(|| {
            limits::container_memory(tpath, None, reservation, size.memory_mib)
                .err()
                .map(|v| (v, mem_req_at.clone(), "requests"))
        })
        .or_else(|| match (hard, reservation) {
            (Some(h), Some(r)) if h < r => Some((
                Violation {
                    field: format!("{tpath}.memory"),
                    found: format!("{h} MiB with memoryReservation {r} MiB"),
                    allowed: "a memory limit at least the request (ECS wants memory above memoryReservation; Kubernetes refuses limits below requests too)".into(),
                    source: limits::source::CONTAINER_DEFINITION,
                },
                mem_lim_at.clone(),
                "limits",
            )),
            _ => None,
        });
    if let Some((violation, at, which)) = limit_error {
        return Err(TranslateError::Limit {
            at: at.unwrap_or_else(|| Where::of(&cx.m.source, &ag.name)),
            source_field: format!("{cpath}.resources.{which}.memory"),
            violation: Box::new(violation),
        });
    }
    if let (Some(q), Some(mib)) = (mem_req, reservation) {
        if hard == Some(mib) {
            cx.note(
                Action::Adjusted,
                &format!("{cpath}.resources.requests.memory"),
                Some(&format!("{tpath}.memoryReservation")),
                format!("{q} → not set: equal to the limit, and ECS wants a reservation below the hard limit (without one, the hard limit is what is reserved)"),
            );
        } else {
            c.memory_reservation = Some(mib);
            cx.note(
                Action::Adjusted,
                &format!("{cpath}.resources.requests.memory"),
                Some(&format!("{tpath}.memoryReservation")),
                format!("{q} → {mib} MiB (soft reservation)"),
            );
        }
        if let Some(at) = mem_req_at.as_ref() {
            cx.origin(
                &format!("{tpath}.memoryReservation"),
                at,
                &format!("{cpath}.resources.requests.memory"),
            );
        }
    }
    if let (Some(q), Some(mib)) = (mem_lim, hard) {
        if let Some(at) = mem_lim_at.as_ref() {
            cx.origin(
                &format!("{tpath}.memory"),
                at,
                &format!("{cpath}.resources.limits.memory"),
            );
        }
        c.memory = Some(mib);
        cx.note(
            Action::Adjusted,
            &format!("{cpath}.resources.limits.memory"),
            Some(&format!("{tpath}.memory")),
            format!("{q} → {mib} MiB (hard limit)"),
        );
    }
    if let Some(q) = cpu_lim {
        cx.note(
            Action::Mapped,
            &format!("{cpath}.resources.limits.cpu"),
            Some("cpu"),
            format!("{q}: Fargate limits CPU for the whole task, not per container"),
        );
    }
    let exact = u128::from(size.cpu) == cpu_need && u128::from(size.memory_mib) == mem_need;
    cx.note(
        if exact {
            Action::Mapped
        } else {
            Action::Adjusted
        },
        &format!("{cpath}.resources"),
        Some("cpu, memory"),
        format!(
            "needs {cpu_need} CPU units / {mem_need} MiB → Fargate size {size}{}",
            if exact {
                ""
            } else {
                " (rounded up to the smallest valid size)"
            }
        ),
    );
    if size.memory_mib < RECOMMENDED_MEMORY_MIB {
        cx.note(Action::Warning, &format!("{cpath}.resources"), Some("memory"), format!(
            "{} MiB is below Dynatrace's sizing guidance for a routing ActiveGate (small: 250m CPU / 2 GiB)", size.memory_mib));
    }
    Ok((size.cpu, size.memory_mib))
}

fn map_security(
    cx: &mut Ctx<'_>,
    ag: &Container,
    c: &mut ContainerDefinition,
    cpath: &str,
    tpath: &str,
) -> Result<(), TranslateError> {
    let pod = cx.m.workload.pod.security_context.as_ref();
    let sc = ag.security_context.as_ref();
    let p = format!("{cpath}.securityContext");

    if let Some(ro) = sc.and_then(|s| s.read_only_root_filesystem) {
        c.readonly_root_filesystem = Some(ro);
        cx.note(
            Action::Mapped,
            &format!("{p}.readOnlyRootFilesystem"),
            Some(&format!("{tpath}.readonlyRootFilesystem")),
            format!("{ro}"),
        );
    }
    let uid = sc
        .and_then(|s| s.run_as_user)
        .or(pod.and_then(|s| s.run_as_user));
    let gid = sc
        .and_then(|s| s.run_as_group)
        .or(pod.and_then(|s| s.run_as_group));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod.and_then(|s| s.run_as_non_root));
    match (uid, gid) {
        (Some(u), g) => {
            let user = match g {
                Some(g) => format!("{u}:{g}"),
                None => u.to_string(),
            };
            cx.note(
                Action::Mapped,
                &format!("{p}.runAsUser"),
                Some(&format!("{tpath}.user")),
                format!("`{user}`"),
            );
            c.user = Some(user);
        }
        (None, _) if non_root == Some(true) => {
            c.user = Some("1001".into());
            cx.note(Action::Adjusted, &format!("{p}.runAsNonRoot"), Some(&format!("{tpath}.user")),
                "`1001`: ECS has no runAsNonRoot check, so the ActiveGate image's non-root user is set explicitly");
        }
        _ => {}
    }
    if let Some(caps) = sc.and_then(|s| s.capabilities.as_ref()) {
        let at = Where::of(&cx.m.source, &ag.name);
        for (i, cap) in caps.drop.iter().chain(&caps.add).enumerate() {
            cx.gate(
                &at,
                &format!("{p}.capabilities[{i}]"),
                &format!("{tpath}.linuxParameters.capabilities"),
                cap,
                |f, v| {
                    let ok = !v.is_empty()
                        && v.len() <= 64
                        && v.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
                    if ok {
                        Ok(())
                    } else {
                        Err(Violation {
                            field: f.to_owned(),
                            found: secret::shown(v),
                            allowed: "a Linux capability name such as `ALL` or `NET_BIND_SERVICE`"
                                .into(),
                            source: limits::source::CONTAINER_DEFINITION,
                        })
                    }
                },
            )?;
        }
        let drop: Vec<String> = caps.drop.iter().map(|d| d.to_ascii_uppercase()).collect();
        let (add, refused): (Vec<String>, Vec<String>) = caps
            .add
            .iter()
            .map(|a| a.to_ascii_uppercase())
            .partition(|a| a == "SYS_PTRACE");
        if !drop.is_empty() {
            let changed = drop.iter().zip(&caps.drop).any(|(a, b)| a != b);
            cx.note(
                if changed {
                    Action::Adjusted
                } else {
                    Action::Mapped
                },
                &format!("{p}.capabilities.drop"),
                Some(&format!("{tpath}.linuxParameters.capabilities.drop")),
                format!(
                    "{:?}{}",
                    drop,
                    if changed {
                        " (ECS wants upper case)"
                    } else {
                        ""
                    }
                ),
            );
        }
        if !refused.is_empty() {
            cx.note(
                Action::Dropped,
                &format!("{p}.capabilities.add"),
                None,
                format!("{refused:?}: Fargate allows adding only SYS_PTRACE"),
            );
        }
        if !add.is_empty() {
            cx.note(
                Action::Mapped,
                &format!("{p}.capabilities.add"),
                Some(&format!("{tpath}.linuxParameters.capabilities.add")),
                format!("{add:?}"),
            );
        }
        if !drop.is_empty() || !add.is_empty() {
            c.linux_parameters = Some(LinuxParameters {
                capabilities: Some(KernelCapabilities { add, drop }),
                init_process_enabled: None,
            });
        }
    }
    match sc.and_then(|s| s.privileged) {
        Some(true) => cx.note(
            Action::Dropped,
            &format!("{p}.privileged"),
            None,
            "Fargate never runs privileged containers",
        ),
        Some(false) => cx.note(
            Action::Mapped,
            &format!("{p}.privileged"),
            Some(&format!("{tpath}.privileged")),
            "false: left unset, Fargate never runs privileged containers",
        ),
        None => {}
    }
    if sc.and_then(|s| s.allow_privilege_escalation).is_some() {
        cx.note(Action::Dropped, &format!("{p}.allowPrivilegeEscalation"), None,
            "ECS task definitions cannot express it; with all capabilities dropped and a non-root user there is little to escalate to");
    }
    if sc.and_then(|s| s.seccomp_profile.as_ref()).is_some()
        || pod.and_then(|s| s.seccomp_profile.as_ref()).is_some()
    {
        cx.note(
            Action::Dropped,
            &format!("{p}.seccompProfile"),
            None,
            "Fargate applies its own default seccomp profile; ECS cannot choose one",
        );
    }
    if pod.and_then(|s| s.fs_group).is_some() {
        cx.note(
            Action::Dropped,
            "securityContext.fsGroup",
            None,
            "ECS cannot set volume group ownership",
        );
    }
    Ok(())
}

/// emptyDir volumes → task volumes; mounts → mountPoints; the writable paths
/// a read-only root file system needs are added.
fn map_volumes(
    cx: &mut Ctx<'_>,
    ag: &Container,
    c: &mut ContainerDefinition,
    cpath: &str,
    tpath: &str,
) -> Result<Vec<Volume>, TranslateError> {
    let pod = &cx.m.workload.pod;
    let source = cx.m.source.clone();
    let mut volumes: Vec<Volume> = Vec::new();
    let mut usable: BTreeSet<String> = BTreeSet::new();
    // Reported once the mounts show whether a volume is used.
    let mut pending: BTreeMap<String, (Action, String)> = BTreeMap::new();
    let mut tokens_volume: Option<String> = None;
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
            pending.insert(v.name.value.clone(), (action, detail));
            usable.insert(v.name.value.clone());
        } else if v.secret.is_some() {
            let mounted_at_tokens = ag
                .volume_mounts
                .iter()
                .any(|m| m.name.value == v.name.value && m.mount_path.value == secrets::TOKENS_DIR);
            if mounted_at_tokens {
                tokens_volume = Some(v.name.value.clone());
                usable.insert(v.name.value.clone());
                let detail = if cx.s.tenant_token.is_some() {
                    "Kubernetes secret volume → task volume filled by the token-writer init container from ECS secrets"
                } else {
                    "Kubernetes secret volume → task volume; nothing fills it until `secrets.tenant_token` is set"
                };
                pending.insert(v.name.value.clone(), (Action::Adjusted, detail.to_owned()));
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
            let why = if v.config_map.is_some() {
                "ConfigMap volumes do not exist on ECS; set the values as environment in the config"
            } else if v.host_path.is_some() {
                "Fargate gives no access to the host"
            } else if v.persistent_volume_claim.is_some() {
                "ActiveGate keeps no state that must outlive a task; Fargate volumes are task-scoped (use EFS by hand if needed)"
            } else {
                "this volume type has no Fargate equivalent"
            };
            cx.note(Action::Dropped, &src, None, why);
        }
    }

    let mut used: BTreeSet<String> = BTreeSet::new();
    for m in &ag.volume_mounts {
        let src = format!("{cpath}.volumeMounts[{}]", m.name.value);
        if !usable.contains(&m.name.value) {
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
        let read_only = m.read_only || Some(&m.name.value) == tokens_volume.as_ref();
        let target = format!("{tpath}.mountPoints[{}]", m.name.value);
        cx.gate(
            &Where::of(&source, &m.mount_path),
            &format!("{src}.mountPath"),
            &format!("{target}.containerPath"),
            &m.mount_path.value,
            limits::path,
        )?;
        cx.gate(
            &Where::of(&source, &m.name),
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
            Some(&format!("{tpath}.mountPoints")),
            format!(
                "{}{}",
                m.mount_path.value,
                if read_only { " (read-only)" } else { "" }
            ),
        );
    }
    for v in &pod.volumes {
        let Some((action, detail)) = pending.remove(&v.name.value) else {
            continue;
        };
        let src = format!("volumes[{}]", v.name.value);
        if used.contains(&v.name.value) {
            cx.gate(
                &Where::of(&source, &v.name),
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

    if c.readonly_root_filesystem == Some(true) {
        for (name, path) in WRITABLE_PATHS {
            let covered = c.mount_points.iter().any(|mp| {
                path == mp.container_path || path.starts_with(&format!("{}/", mp.container_path))
            });
            if !covered {
                let name = unique_name(&volumes, name);
                volumes.push(Volume { name: name.clone() });
                c.mount_points.push(MountPoint {
                    source_volume: name.clone(),
                    container_path: path.into(),
                    read_only: false,
                });
                cx.note(Action::Added, &format!("{cpath}.volumeMounts"), Some(&format!("{tpath}.mountPoints")),
                    format!("{path} on volume `{name}`: ActiveGate writes there and the root file system is read-only"));
            }
        }
    }
    Ok(volumes)
}

fn probe_port(ag: &Container, probe: &Probe) -> u16 {
    probe
        .http_get
        .as_ref()
        .and_then(|h| h.port.as_ref())
        .and_then(|p| resolve_port(ag, p))
        .unwrap_or(ACTIVEGATE_PORT)
}

/// Clamps a probe setting into ECS's range, noting any change.
fn clamp_note(what: &str, value: u32, lo: u32, hi: u32, notes: &mut Vec<String>) -> u32 {
    let v = value.clamp(lo, hi);
    if v != value {
        notes.push(format!("{what} {value} → {v} (ECS allows {lo}–{hi})"));
    }
    v
}

/// Characters a probe path may hold: it becomes part of a shell command (the
/// container health check), so nothing the shell would read differently.
fn probe_path_limit(field: &str, path: &str) -> Result<(), Violation> {
    let ok = path.starts_with('/')
        && path.len() <= 1024
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._~%=:@+,-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Violation {
            field: field.to_owned(),
            found: secret::shown(path),
            allowed: "a path of at most 1024 letters, digits and `/._~%=:@+,-`, starting with `/` (it becomes part of the health check's shell command)".into(),
            source: limits::source::HEALTH_CHECK,
        })
    }
}

/// The probe's path and scheme (`http` or `https`), checked.
fn probe_target(
    cx: &mut Ctx<'_>,
    h: &manifest::HttpGet,
    src: &str,
    target: &str,
    default_path: &str,
) -> Result<(String, String), TranslateError> {
    let source = cx.m.source.clone();
    let path = match &h.path {
        Some(p) => {
            cx.gate(
                &Where::of(&source, p),
                &format!("{src}.httpGet.path"),
                target,
                &p.value,
                probe_path_limit,
            )?;
            p.value.clone()
        }
        None => default_path.to_owned(),
    };
    let scheme = match &h.scheme {
        Some(sc) => {
            cx.gate(
                &Where::of(&source, sc),
                &format!("{src}.httpGet.scheme"),
                target,
                &sc.value,
                |f, v| {
                    if v.eq_ignore_ascii_case("http") || v.eq_ignore_ascii_case("https") {
                        Ok(())
                    } else {
                        Err(Violation {
                            field: f.to_owned(),
                            found: secret::shown(v),
                            allowed: "HTTP or HTTPS".into(),
                            source: limits::source::HEALTH_CHECK,
                        })
                    }
                },
            )?;
            sc.value.to_ascii_uppercase()
        }
        None => "HTTP".to_owned(),
    };
    Ok((path, scheme))
}

fn map_probes(
    cx: &mut Ctx<'_>,
    ag: &Container,
    c: &mut ContainerDefinition,
    cpath: &str,
    tpath: &str,
) -> Result<(), TranslateError> {
    if ag.startup_probe.is_some() {
        cx.note(
            Action::Dropped,
            &format!("{cpath}.startupProbe"),
            None,
            "ECS has no startup probe; the health check's startPeriod plays its part",
        );
    }
    let Some(probe) = &ag.liveness_probe else {
        cx.note(Action::Warning, &format!("{cpath}.livenessProbe"), None, "no liveness probe: ECS will not replace a hung ActiveGate (the daemon's probes still see it)");
        return Ok(());
    };
    let src = format!("{cpath}.livenessProbe");
    let target = format!("{tpath}.healthCheck");
    if cx.s.container_health_check == Some(false) {
        cx.note(Action::Dropped, &src, None, "container_health_check = false in the config: the daemon's HTTPS probes watch the tasks instead");
        return Ok(());
    }
    let command = if let Some(h) = &probe.http_get {
        let port = probe_port(ag, probe);
        let (path, scheme) = probe_target(cx, h, &src, &format!("{target}.command"), "/")?;
        let scheme = scheme.to_ascii_lowercase();
        let timeout = probe.timeout_seconds.unwrap_or(1).max(1);
        let mut cmd = format!(
            "curl -fs{} --max-time {timeout} {scheme}://127.0.0.1:{port}{path}",
            if scheme == "https" { "k" } else { "" }
        );
        if path == "/rest/state" {
            cmd.push_str(" | grep -q RUNNING");
        }
        cmd.push_str(" || exit 1");
        vec!["CMD-SHELL".to_owned(), cmd]
    } else if let Some(exec) = &probe.exec {
        let at = Where::of(&cx.m.source, exec);
        let args: Vec<String> = exec
            .value
            .get("command")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if args.is_empty() {
            cx.note(Action::Dropped, &src, None, "exec probe without a command");
            return Ok(());
        }
        for (i, a) in args.iter().enumerate() {
            cx.gate(
                &at,
                &format!("{src}.exec.command[{i}]"),
                &format!("{target}.command[{}]", i + 1),
                a,
                |f, v| limits::text(f, v, limits::VALUE_MAX_BYTES, true, limits::source::BUDGET),
            )?;
        }
        std::iter::once("CMD".to_owned()).chain(args).collect()
    } else {
        cx.note(
            Action::Dropped,
            &src,
            None,
            "ECS health checks run a command; tcpSocket and grpc probes have no equivalent",
        );
        return Ok(());
    };
    let mut notes = Vec::new();
    let interval = clamp_note(
        "periodSeconds",
        probe.period_seconds.unwrap_or(10),
        5,
        300,
        &mut notes,
    );
    let timeout = clamp_note(
        "timeoutSeconds",
        probe.timeout_seconds.unwrap_or(1),
        2,
        60,
        &mut notes,
    );
    let retries = clamp_note(
        "failureThreshold",
        probe.failure_threshold.unwrap_or(3),
        1,
        10,
        &mut notes,
    );
    let start_period = clamp_note(
        "initialDelaySeconds",
        probe.initial_delay_seconds.unwrap_or(0),
        0,
        300,
        &mut notes,
    );
    let uses_curl = command[0] == "CMD-SHELL";
    let mut detail = format!(
        "`{}` every {interval} s, timeout {timeout} s, {retries} retries, startPeriod {start_period} s",
        command[1..].join(" ")
    );
    if uses_curl {
        detail.push_str("; ECS runs it inside the container, so the image must have curl (set container_health_check = false otherwise)");
    }
    if !notes.is_empty() {
        detail.push_str(&format!("; {}", notes.join(", ")));
    }
    cx.note(Action::Adjusted, &src, Some(&target), detail);
    if start_period < TYPICAL_START_SECONDS {
        cx.note(Action::Warning, &format!("{src}.initialDelaySeconds"), Some(&format!("{target}.startPeriod")), format!(
            "{start_period} s: ActiveGate usually needs about {TYPICAL_START_SECONDS} s to start (the Dynatrace Operator waits {TYPICAL_START_SECONDS} s); a slow start may be killed"));
    }
    c.health_check = Some(HealthCheck {
        command,
        interval,
        timeout,
        retries,
        start_period,
    });
    Ok(())
}

fn readiness(cx: &mut Ctx<'_>, ag: &Container, cpath: &str) -> Result<Readiness, TranslateError> {
    let src = format!("{cpath}.readinessProbe");
    let default = Readiness {
        port: ACTIVEGATE_PORT,
        path: "/rest/health".into(),
        period_seconds: 15,
        failure_threshold: 3,
        timeout_seconds: 2,
        initial_delay_seconds: TYPICAL_START_SECONDS,
    };
    let Some(probe) = &ag.readiness_probe else {
        cx.note(
            Action::Added,
            &src,
            Some("daemon HTTPS probe"),
            format!(
                "GET https://<task IP>:{}{} every {} s (the Dynatrace Operator's readiness probe)",
                default.port, default.path, default.period_seconds
            ),
        );
        return Ok(default);
    };
    let Some(h) = &probe.http_get else {
        cx.note(
            Action::Adjusted,
            &src,
            Some("daemon HTTPS probe"),
            format!(
                "not an httpGet probe; the daemon probes GET https://<task IP>:{}{} instead",
                default.port, default.path
            ),
        );
        return Ok(default);
    };
    let (path, scheme) = probe_target(cx, h, &src, "daemon HTTPS probe.path", &default.path)?;
    let r = Readiness {
        port: probe_port(ag, probe),
        path,
        period_seconds: probe.period_seconds.unwrap_or(10).max(1),
        failure_threshold: probe.failure_threshold.unwrap_or(3).max(1),
        timeout_seconds: probe.timeout_seconds.unwrap_or(1).max(1),
        initial_delay_seconds: probe.initial_delay_seconds.unwrap_or(0),
    };
    cx.note(Action::Mapped, &src, Some("daemon HTTPS probe"), format!(
        "kept for the daemon: GET https://<task IP>:{}{} every {} s, {} failures, timeout {} s{}",
        r.port, r.path, r.period_seconds, r.failure_threshold, r.timeout_seconds,
        if scheme.eq_ignore_ascii_case("https") { String::new() } else { format!(" (scheme {scheme} → HTTPS: ActiveGate serves HTTPS on {})", r.port) }));
    Ok(r)
}

/// node affinity / nodeSelector on architecture and OS → runtimePlatform.
fn map_platform(cx: &mut Ctx<'_>) -> RuntimePlatform {
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

#[cfg(test)]
mod tests;
