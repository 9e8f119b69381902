//! Consul service mesh. Applications in a mesh with transparent proxy send every outbound
//! connection through their Envoy sidecar, so they cannot reach the ActiveGate (not a mesh
//! service) on 9999. The secure fix is a terminating gateway with the ActiveGate as a mesh
//! *destination*: a `service-defaults` entry naming its addresses and port, the gateway linking
//! it, and intentions allowing the applications. This module renders those entries (as
//! Kubernetes CRDs or Consul's own JSON), the weaker alternative (transparent-proxy exclusions),
//! and keeps the destination true across rollouts through Consul's HTTP API ([`consul`]),
//! checking the gateway's Envoy ([`envoy`]). It knows nothing of ECS: addresses come in.

pub mod consul;
pub mod envoy;

use serde_json::{Map, Value, json};

/// What the config says about one target's mesh.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The ActiveGate's name in Consul.
    pub service: String,
    /// Its Consul namespace (Enterprise), or the CRDs' namespace.
    pub namespace: Option<String>,
    /// The terminating gateway's service name.
    pub gateway: String,
    /// Where the destination points.
    pub addresses: AddressSource,
    /// The destination port.
    pub port: u16,
    /// Meshed services allowed to connect.
    pub sources: Vec<Source>,
    /// Stable CIDRs to exclude instead of the task addresses (`--exclusions`).
    pub exclude_cidrs: Vec<String>,
    /// Consul's HTTP API, for keeping the destination current.
    pub consul: Option<consul::Settings>,
    /// The terminating gateway's Envoy admin endpoint.
    pub envoy_admin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressSource {
    /// A name (Cloud Map, load balancer) or address that survives rollouts.
    Stable(String),
    /// The ActiveGate tasks' own addresses, which change at every rollout.
    Tasks,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Kubernetes custom resources of consul-k8s (`consul.hashicorp.com/v1alpha1`), YAML.
    Crd,
    /// Consul config entries as JSON, for `consul config write` (one file per entry).
    Consul,
}

/// One generated document: a file name it is written to, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub file: String,
    pub text: String,
}

const CRD_API: &str = "consul.hashicorp.com/v1alpha1";

impl Spec {
    /// The `service-defaults` entry with the destination (Consul's JSON form).
    pub fn service_defaults(&self, addresses: &[String]) -> Value {
        let mut e = Map::new();
        e.insert("Kind".into(), json!("service-defaults"));
        e.insert("Name".into(), json!(self.service));
        if let Some(ns) = &self.namespace {
            e.insert("Namespace".into(), json!(ns));
        }
        e.insert("Protocol".into(), json!("tcp"));
        e.insert(
            "Destination".into(),
            json!({ "Addresses": addresses, "Port": self.port }),
        );
        Value::Object(e)
    }

    fn terminating_gateway(&self) -> Value {
        let mut linked = Map::new();
        linked.insert("Name".into(), json!(self.service));
        if let Some(ns) = &self.namespace {
            linked.insert("Namespace".into(), json!(ns));
        }
        json!({ "Kind": "terminating-gateway", "Name": self.gateway, "Services": [linked] })
    }

    fn service_intentions(&self) -> Option<Value> {
        if self.sources.is_empty() {
            return None;
        }
        let sources: Vec<Value> = self
            .sources
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("Name".into(), json!(s.name));
                if let Some(ns) = &s.namespace {
                    m.insert("Namespace".into(), json!(ns));
                }
                m.insert("Action".into(), json!("allow"));
                Value::Object(m)
            })
            .collect();
        let mut e = Map::new();
        e.insert("Kind".into(), json!("service-intentions"));
        e.insert("Name".into(), json!(self.service));
        if let Some(ns) = &self.namespace {
            e.insert("Namespace".into(), json!(ns));
        }
        e.insert("Sources".into(), Value::Array(sources));
        Some(Value::Object(e))
    }

    /// The three entries (two without sources) in the format asked for.
    pub fn render(&self, addresses: &[String], format: Format) -> Vec<Document> {
        let mut entries = vec![self.service_defaults(addresses), self.terminating_gateway()];
        entries.extend(self.service_intentions());
        entries
            .iter()
            .map(|e| {
                let kind = e["Kind"].as_str().unwrap_or_default().to_owned();
                match format {
                    Format::Consul => Document {
                        file: format!("{kind}.json"),
                        text: format!("{}\n", pretty(e)),
                    },
                    Format::Crd => Document {
                        file: format!("{kind}.yaml"),
                        text: yaml(&crd(e)),
                    },
                }
            })
            .collect()
    }

    /// The weaker alternative: transparent-proxy exclusions for the applications' pods (CRD
    /// format: Kubernetes annotations) or tasks (Consul format: the consul-ecs config's
    /// `transparentProxy`). Returns the text and the warnings to show.
    pub fn exclusions(&self, task_addresses: &[String], format: Format) -> (String, Vec<String>) {
        let mut warnings = Vec::new();
        let cidrs: Vec<String> = if !self.exclude_cidrs.is_empty() {
            self.exclude_cidrs.clone()
        } else {
            let host_bits = |a: &str| if a.contains(':') { 128 } else { 32 };
            let cidrs: Vec<String> = task_addresses
                .iter()
                .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
                .map(|a| format!("{a}/{}", host_bits(a)))
                .collect();
            if !cidrs.is_empty() {
                warnings.push(format!(
                    "the excluded CIDRs are the ActiveGate tasks' current addresses ({}); they \
                     change at every rollout and task replacement: set mesh.exclude_cidrs to the \
                     ActiveGate subnets, or rely on the port exclusion alone",
                    cidrs.join(", ")
                ));
            }
            cidrs
        };
        let drawback = "traffic excluded here leaves the pod (or task) around its sidecar: no \
                        mTLS, no intentions, no mesh telemetry, and anything in it may open such \
                        connections. Prefer the terminating gateway (`activegate-lifecycle mesh` \
                        without --exclusions).";
        let text = match format {
            Format::Crd => {
                let mut annotations = Map::new();
                annotations.insert(
                    "consul.hashicorp.com/transparent-proxy-exclude-outbound-ports".into(),
                    json!(self.port.to_string()),
                );
                if !cidrs.is_empty() {
                    annotations.insert(
                        "consul.hashicorp.com/transparent-proxy-exclude-outbound-cidrs".into(),
                        json!(cidrs.join(",")),
                    );
                }
                let doc = json!({ "metadata": { "annotations": annotations } });
                let comment = format!(
                    "Pod template annotations for the meshed applications that report to the \
                     ActiveGate `{}`. SECURITY: {drawback}",
                    self.service
                );
                format!("{}{}", comment_lines(&comment), yaml(&doc))
            }
            Format::Consul => {
                let mut tp = Map::new();
                tp.insert("enabled".into(), json!(true));
                tp.insert("excludeOutboundPorts".into(), json!([self.port]));
                if !cidrs.is_empty() {
                    tp.insert("excludeOutboundCIDRs".into(), json!(cidrs));
                }
                // JSON has no comments (and consul-ecs refuses unknown keys): the drawback
                // goes with the warnings.
                warnings.insert(0, format!("SECURITY: {drawback}"));
                format!("{}\n", pretty(&json!({ "transparentProxy": tp })))
            }
        };
        (text, warnings)
    }
}

/// A Consul-form entry as its consul-k8s custom resource.
fn crd(entry: &Value) -> Value {
    let kind = entry["Kind"].as_str().unwrap_or_default();
    let name = entry["Name"].clone();
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.clone());
    if let Some(ns) = entry.get("Namespace") {
        metadata.insert("namespace".into(), ns.clone());
    }
    let named = |v: &Value, extra: &[(&str, &str)]| {
        let mut m = Map::new();
        m.insert("name".into(), v["Name"].clone());
        if let Some(ns) = v.get("Namespace") {
            m.insert("namespace".into(), ns.clone());
        }
        for (k, from) in extra {
            if let Some(x) = v.get(*from) {
                m.insert((*k).into(), x.clone());
            }
        }
        Value::Object(m)
    };
    let (crd_kind, spec) = match kind {
        "service-defaults" => (
            "ServiceDefaults",
            json!({
                "protocol": entry["Protocol"],
                "destination": {
                    "addresses": entry["Destination"]["Addresses"],
                    "port": entry["Destination"]["Port"],
                },
            }),
        ),
        "terminating-gateway" => (
            "TerminatingGateway",
            json!({
                "services": entry["Services"]
                    .as_array()
                    .map(|s| s.iter().map(|v| named(v, &[])).collect::<Vec<_>>())
                    .unwrap_or_default(),
            }),
        ),
        _ => (
            "ServiceIntentions",
            json!({
                "destination": named(entry, &[]),
                "sources": entry["Sources"]
                    .as_array()
                    .map(|s| s.iter().map(|v| named(v, &[("action", "Action")])).collect::<Vec<_>>())
                    .unwrap_or_default(),
            }),
        ),
    };
    json!({ "apiVersion": CRD_API, "kind": crd_kind, "metadata": metadata, "spec": spec })
}

/// Text as `# ` comment lines of at most about 90 characters.
fn comment_lines(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 88 {
            out.push_str(&format!("# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("# {line}\n"));
    }
    out
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|_| pretty(v))
}

/// Every document of [`Spec::render`] in one stream: YAML documents separated by `---`, JSON
/// entries separated by a blank line (write them to files with `--out-dir` for `consul config
/// write`, which takes one entry per file).
pub fn join(documents: &[Document], format: Format, header: &str) -> String {
    let mut out = String::new();
    if format == Format::Crd {
        out.push_str(&comment_lines(header));
    }
    for (i, d) in documents.iter().enumerate() {
        match format {
            Format::Crd => {
                out.push_str("---\n");
                out.push_str(&d.text);
            }
            Format::Consul => {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&d.text);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
