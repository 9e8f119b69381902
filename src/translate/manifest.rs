//! The Kubernetes side: the parts of a StatefulSet/Deployment and a Service
//! that matter for ActiveGate, read from multi-document YAML with the line and
//! column of every value a later error may need to point at.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_saphyr::Spanned;

use super::TranslateError;
use super::quantity::Quantity;

/// Largest manifest accepted: real ones are a few KiB; anything near this is a
/// wrong file, and refusing it early keeps memory bounded.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A place in the input: file name, and line/column (1-based) when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where {
    pub source: String,
    pub line_column: Option<(u64, u64)>,
}

impl Where {
    pub fn file(source: &str) -> Self {
        Self {
            source: source.to_owned(),
            line_column: None,
        }
    }

    pub fn at(source: &str, line: u64, column: u64) -> Self {
        Self {
            source: source.to_owned(),
            line_column: (line > 0).then_some((line, column)),
        }
    }

    pub(crate) fn of<T>(source: &str, spanned: &Spanned<T>) -> Self {
        Self::at(
            source,
            spanned.referenced.line(),
            spanned.referenced.column(),
        )
    }
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_column {
            Some((l, c)) => write!(f, "{}:{l}:{c}", self.source),
            None => f.write_str(&self.source),
        }
    }
}

/// Kinds that carry an ActiveGate pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    StatefulSet,
    Deployment,
}

/// The parsed manifest: one workload, its Services, and what was skipped.
#[derive(Debug)]
pub struct Manifest {
    pub source: String,
    pub workload: Workload,
    pub services: Vec<Service>,
    /// Documents of other kinds, as `Kind/name`, skipped with a report line.
    pub skipped: Vec<String>,
}

#[derive(Debug)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    pub at: Where,
    pub replicas: Option<u32>,
    pub pod: PodSpec,
    /// The document as a generic tree, to find fields that were not mapped.
    pub raw: serde_json::Value,
}

impl Workload {
    /// `StatefulSet/dynatrace-activegate`.
    pub fn id(&self) -> String {
        format!("{:?}/{}", self.kind, self.name)
    }
}

#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub service_type: Option<String>,
    pub ports: Vec<ServicePort>,
    pub raw: serde_json::Value,
}

// ---- the typed subset of the Kubernetes API ------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Document {
    kind: Option<Spanned<String>>,
    metadata: Option<ObjectMeta>,
    spec: Option<Spec>,
}

/// The union of the `spec` members of the kinds we read. The kinds share no
/// member name with different types among these, so one struct serves all.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Spec {
    replicas: Option<u32>,
    template: Option<PodTemplate>,
    ports: Vec<ServicePort>,
    #[serde(rename = "type")]
    service_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PodTemplate {
    spec: Option<PodSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    pub image_pull_secrets: Vec<NameRef>,
    pub affinity: Option<Affinity>,
    pub node_selector: BTreeMap<String, String>,
    pub security_context: Option<PodSecurityContext>,
    pub termination_grace_period_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NameRef {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: Spanned<String>,
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    #[serde(default)]
    pub command: Vec<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<Spanned<String>>,
    #[serde(default)]
    pub working_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default)]
    pub liveness_probe: Option<Probe>,
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    #[serde(default)]
    pub startup_probe: Option<Probe>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub name: Option<String>,
    /// Kept with its place: ECS refuses port 0, which the type allows.
    pub container_port: Spanned<u16>,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: Spanned<String>,
    #[serde(default)]
    pub value: Option<Spanned<String>>,
    #[serde(default)]
    pub value_from: Option<EnvVarSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVarSource {
    pub secret_key_ref: Option<KeyRef>,
    pub config_map_key_ref: Option<KeyRef>,
    pub field_ref: Option<serde_json::Value>,
    pub resource_field_ref: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: Spanned<String>,
    pub mount_path: Spanned<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub sub_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: Spanned<String>,
    #[serde(default)]
    pub empty_dir: Option<EmptyDir>,
    #[serde(default)]
    pub secret: Option<SecretVolume>,
    #[serde(default)]
    pub config_map: Option<serde_json::Value>,
    #[serde(default)]
    pub host_path: Option<serde_json::Value>,
    #[serde(default)]
    pub persistent_volume_claim: Option<serde_json::Value>,
    #[serde(default)]
    pub projected: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmptyDir {
    pub medium: Option<String>,
    pub size_limit: Option<Quantity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretVolume {
    pub secret_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Probe {
    pub http_get: Option<HttpGet>,
    pub exec: Option<Spanned<serde_json::Value>>,
    pub tcp_socket: Option<serde_json::Value>,
    pub grpc: Option<serde_json::Value>,
    pub initial_delay_seconds: Option<u32>,
    pub period_seconds: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub failure_threshold: Option<u32>,
    pub success_threshold: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpGet {
    pub path: Option<Spanned<String>>,
    pub port: Option<IntOrString>,
    pub scheme: Option<Spanned<String>>,
}

/// A port given by number or by the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    Int(u16),
    Name(String),
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(n) => write!(f, "{n}"),
            Self::Name(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number (1-65535) or a port name")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                u16::try_from(v)
                    .ok()
                    .filter(|&p| p > 0)
                    .map(IntOrString::Int)
                    .ok_or_else(|| E::custom(format!("port {v} is outside 1-65535")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("port {v} is outside 1-65535"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                match v.parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Ok(IntOrString::Name(v.to_owned())),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resources {
    pub requests: Option<ResourceList>,
    pub limits: Option<ResourceList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceList {
    pub cpu: Option<Spanned<Quantity>>,
    pub memory: Option<Spanned<Quantity>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityContext {
    pub allow_privilege_escalation: Option<bool>,
    pub capabilities: Option<Capabilities>,
    pub privileged: Option<bool>,
    pub read_only_root_filesystem: Option<bool>,
    pub run_as_non_root: Option<bool>,
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub seccomp_profile: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSecurityContext {
    pub run_as_non_root: Option<bool>,
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub fs_group: Option<u32>,
    pub seccomp_profile: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Capabilities {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Affinity {
    pub node_affinity: Option<NodeAffinity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeAffinity {
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSelector {
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<MatchExpression>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MatchExpression {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    pub port: u16,
    #[serde(default)]
    pub target_port: Option<IntOrString>,
}

// ---- parsing ---------------------------------------------------------------------------

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // YAML 1.1 would read `name: ON` or `value: no` as booleans.
    options.strict_booleans = true;
    options
}

/// Turns a YAML error into ours, with the location as a separate field.
fn yaml_error(source: &str, err: &serde_saphyr::Error) -> TranslateError {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let mut message = err.without_snippet().to_string();
    let suffix = format!(" at line {line}, column {column}");
    if let Some(stripped) = message.strip_suffix(&suffix) {
        message = stripped.to_owned();
    }
    TranslateError::Yaml {
        at: Where::at(source, line, column),
        // A parser's message may quote the value it could not read.
        message: crate::model::secret::scrub(&message).into_owned(),
    }
}

/// Parses a manifest from raw bytes. `source` names the input in errors.
pub fn parse(source: &str, bytes: &[u8]) -> Result<Manifest, TranslateError> {
    let text = decode(source, bytes)?;
    let docs: Vec<Document> = serde_saphyr::from_multiple_with_options(text, yaml_options())
        .map_err(|e| yaml_error(source, &e))?;
    let raws: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(text, yaml_options())
            .map_err(|e| yaml_error(source, &e))?;
    if docs.is_empty() {
        return Err(TranslateError::Empty {
            at: Where::file(source),
        });
    }
    let mut sorted = sort_documents(source, docs, raws)?;
    let workload = one_workload(source, &mut sorted)?;
    Ok(Manifest {
        source: source.to_owned(),
        workload,
        services: sorted.services,
        skipped: sorted.skipped,
    })
}

/// The bytes as text: within the size limit, UTF-8 (the first bad byte's line
/// and column named), without a byte-order mark.
fn decode<'b>(source: &str, bytes: &'b [u8]) -> Result<&'b str, TranslateError> {
    let size = bytes.len() as u64;
    if size > MAX_MANIFEST_BYTES {
        return Err(TranslateError::TooLarge {
            at: Where::file(source),
            size,
            limit: MAX_MANIFEST_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let before = &bytes[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count() as u64
            + 1;
        TranslateError::NotUtf8 {
            at: Where::at(source, line, column),
            offset,
        }
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The documents of a file by kind.
struct Sorted {
    workloads: Vec<Workload>,
    services: Vec<Service>,
    /// `Kind/name` of the documents of other kinds.
    skipped: Vec<String>,
}

fn sort_documents(
    source: &str,
    docs: Vec<Document>,
    raws: Vec<serde_json::Value>,
) -> Result<Sorted, TranslateError> {
    let mut sorted = Sorted {
        workloads: Vec::new(),
        services: Vec::new(),
        skipped: Vec::new(),
    };
    for (doc, raw) in docs.into_iter().zip(raws) {
        let name = doc
            .metadata
            .as_ref()
            .and_then(|m| m.name.clone())
            .unwrap_or_default();
        let Some(kind) = doc.kind else {
            sorted.skipped.push(format!("(no kind)/{name}"));
            continue;
        };
        let at = Where::of(source, &kind);
        let spec = doc.spec.unwrap_or_default();
        let kind_name = kind.value.clone();
        let kind = match kind_name.as_str() {
            "StatefulSet" => WorkloadKind::StatefulSet,
            "Deployment" => WorkloadKind::Deployment,
            "Service" => {
                sorted.services.push(Service {
                    name,
                    service_type: spec.service_type,
                    ports: spec.ports,
                    raw,
                });
                continue;
            }
            other => {
                sorted.skipped.push(format!("{other}/{name}"));
                continue;
            }
        };
        let pod =
            spec.template
                .and_then(|t| t.spec)
                .ok_or_else(|| TranslateError::Unsupported {
                    at: at.clone(),
                    message: crate::model::secret::scrub(&format!(
                        "{kind_name}/{name} has no spec.template.spec (the pod template)"
                    ))
                    .into_owned(),
                })?;
        sorted.workloads.push(Workload {
            kind,
            name,
            at,
            replicas: spec.replicas,
            pod,
            raw,
        });
    }
    Ok(sorted)
}

/// The one workload of the file; none or several are refused, naming what was found.
fn one_workload(source: &str, sorted: &mut Sorted) -> Result<Workload, TranslateError> {
    let workloads = &mut sorted.workloads;
    match workloads.len() {
        1 => Ok(workloads.pop().expect("length checked")),
        0 => Err(TranslateError::NoWorkload {
            at: Where::file(source),
            found: if sorted.skipped.is_empty() && sorted.services.is_empty() {
                String::new()
            } else {
                let mut kinds: Vec<String> = sorted
                    .services
                    .iter()
                    .map(|s| format!("Service/{}", s.name))
                    .collect();
                kinds.extend(sorted.skipped.iter().cloned());
                let found = format!(" (found {})", kinds.join(", "));
                crate::model::secret::scrub(&found).into_owned()
            },
        }),
        _ => {
            let names: Vec<String> = workloads
                .iter()
                .map(|w| format!("{} at {}", w.id(), w.at))
                .collect();
            Err(TranslateError::Unsupported {
                at: workloads[1].at.clone(),
                message: crate::model::secret::scrub(&format!(
                    "one ActiveGate workload per manifest, found {}: {}",
                    workloads.len(),
                    names.join(", ")
                ))
                .into_owned(),
            })
        }
    }
}
