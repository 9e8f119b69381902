//! Consul's HTTP API for config entries: `GET /v1/config/:kind/:name` (with its `ModifyIndex`)
//! and `PUT /v1/config?cas=N`, which writes only when the entry's index is still `N` and answers
//! `true` or `false`. The destination is written with check-and-set, so an operator's edit made
//! between our read and our write is never overwritten: we read again and merge.

use std::time::Duration;

use serde_json::{Value, json};

use super::Spec;

/// Writes that found the entry changed under them before giving up for this round.
pub const MAX_CAS_ATTEMPTS: u32 = 5;
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Fields Consul adds to an entry it returns; they are not written back.
const SERVER_FIELDS: &[&str] = &["CreateIndex", "ModifyIndex", "Hash"];

/// Where Consul is and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Its HTTP(S) API, e.g. `https://consul.service.consul:8501`.
    pub address: String,
    /// The environment variable holding the ACL token (never logged).
    pub token_env: String,
    /// The datacenter (`?dc=`), when not the agent's own.
    pub datacenter: Option<String>,
    /// A PEM file (or `env:NAME`) with the CA of Consul's certificate, added to the system's.
    pub ca_bundle: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsulError {
    #[error("{path}: cannot use it as Consul's CA bundle: {detail}")]
    CaBundle { path: String, detail: String },
    #[error("{url}: {detail}")]
    Transport { url: String, detail: String },
    #[error(
        "{url}: HTTP 403: the ACL token (from ${token_env}) may not write this entry; \
         service-defaults needs `service:write` on the ActiveGate's service"
    )]
    Forbidden { url: String, token_env: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: not a config entry answer: {detail}")]
    Malformed { url: String, detail: String },
    #[error(
        "the service-defaults entry changed between our read and our write {attempts} times \
         in a row (check-and-set); nothing was overwritten, the next update tries again"
    )]
    Contended { attempts: u32 },
}

/// What a destination update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The entry already named these addresses and port.
    Unchanged,
    /// The entry did not exist and was created.
    Created,
    /// The destination changed from these addresses.
    Updated { previous: Vec<String> },
}

pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    token: Option<String>,
    namespace: Option<String>,
}

impl Client {
    /// A client for the target's Consul; the token is read from its variable now.
    pub fn new(
        settings: &Settings,
        namespace: Option<&str>,
        timeout: Duration,
    ) -> Result<Client, ConsulError> {
        // No redirects: reqwest drops standard auth headers on a redirect, not X-Consul-Token.
        let mut builder = crate::http_client(timeout).redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &settings.ca_bundle {
            let shown = path.display().to_string();
            let bad = |detail: String| ConsulError::CaBundle {
                path: shown.clone(),
                detail,
            };
            let pem = crate::read_limited(path, 1024 * 1024).map_err(|e| bad(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(crate::error_chain(&e)))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in it".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| ConsulError::Transport {
            url: settings.address.clone(),
            detail: crate::error_chain(&e),
        })?;
        Ok(Client {
            http,
            token: std::env::var(&settings.token_env)
                .ok()
                .filter(|t| !t.is_empty()),
            settings: settings.clone(),
            namespace: namespace.map(str::to_owned),
        })
    }

    fn url(&self, path: &str, cas: Option<u64>) -> String {
        let mut query = Vec::new();
        if let Some(dc) = &self.settings.datacenter {
            query.push(format!("dc={dc}"));
        }
        if let Some(ns) = &self.namespace {
            query.push(format!("ns={ns}"));
        }
        if let Some(c) = cas {
            query.push(format!("cas={c}"));
        }
        let base = self.settings.address.trim_end_matches('/');
        if query.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{}", query.join("&"))
        }
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(u16, Vec<u8>), ConsulError> {
        let req = match &self.token {
            Some(t) => req.header("X-Consul-Token", t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| ConsulError::Transport {
            url: url.to_owned(),
            detail: crate::error_chain(&e),
        })?;
        let status = resp.status().as_u16();
        let body = crate::body_limited(resp, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| ConsulError::Transport {
                url: url.to_owned(),
                detail: e.to_string(),
            })?;
        if status == 403 {
            return Err(ConsulError::Forbidden {
                url: url.to_owned(),
                token_env: self.settings.token_env.clone(),
            });
        }
        Ok((status, body))
    }

    fn status_error(url: &str, status: u16, body: &[u8]) -> ConsulError {
        let text = String::from_utf8_lossy(body);
        ConsulError::Status {
            url: url.to_owned(),
            status,
            body: text.trim().chars().take(200).collect(),
        }
    }

    /// The entry, or `None` when Consul has none by that kind and name.
    pub async fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, ConsulError> {
        let url = self.url(&format!("/v1/config/{kind}/{name}"), None);
        let (status, body) = self.send(self.http.get(&url), &url).await?;
        match status {
            404 => Ok(None),
            200 => {
                let v: Value =
                    serde_json::from_slice(&body).map_err(|e| ConsulError::Malformed {
                        url: url.clone(),
                        detail: e.to_string(),
                    })?;
                if !v.is_object() || v["ModifyIndex"].as_u64().is_none() {
                    return Err(ConsulError::Malformed {
                        url,
                        detail: "no object with a ModifyIndex".into(),
                    });
                }
                Ok(Some(v))
            }
            s => Err(Self::status_error(&url, s, &body)),
        }
    }

    /// Writes the entry if its index is still `cas` (0: only if it does not exist);
    /// `false` when someone else wrote in between.
    pub async fn put(&self, entry: &Value, cas: u64) -> Result<bool, ConsulError> {
        let url = self.url("/v1/config", Some(cas));
        let (status, body) = self.send(self.http.put(&url).json(entry), &url).await?;
        if status != 200 {
            return Err(Self::status_error(&url, status, &body));
        }
        match String::from_utf8_lossy(&body).trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(ConsulError::Malformed {
                url,
                detail: format!(
                    "expected `true` or `false`, found `{}`",
                    other.chars().take(80).collect::<String>()
                ),
            }),
        }
    }

    /// Makes the ActiveGate's `service-defaults` destination name these addresses and the
    /// spec's port, keeping every other field an operator set on the entry.
    pub async fn write_destination(
        &self,
        spec: &Spec,
        addresses: &[String],
    ) -> Result<Written, ConsulError> {
        let mut wanted: Vec<String> = addresses.to_vec();
        wanted.sort();
        wanted.dedup();
        for attempt in 1..=MAX_CAS_ATTEMPTS {
            let current = self.get("service-defaults", &spec.service).await?;
            let Some(current) = current else {
                if self.put(&spec.service_defaults(&wanted), 0).await? {
                    return Ok(Written::Created);
                }
                tracing::info!(attempt, service = %spec.service, "the entry was created by someone else meanwhile; reading it");
                continue;
            };
            let index = current["ModifyIndex"].as_u64().unwrap_or(0);
            let mut previous: Vec<String> = current["Destination"]["Addresses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            previous.sort();
            let port_same = current["Destination"]["Port"].as_u64() == Some(u64::from(spec.port));
            if previous == wanted && port_same && current["Protocol"] == "tcp" {
                return Ok(Written::Unchanged);
            }
            let mut entry = current.clone();
            if let Some(m) = entry.as_object_mut() {
                for f in SERVER_FIELDS {
                    m.remove(*f);
                }
                m.insert("Protocol".into(), json!("tcp"));
                let destination = m
                    .entry("Destination")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|d| {
                        d.insert("Addresses".into(), json!(wanted));
                        d.insert("Port".into(), json!(spec.port));
                    });
                if destination.is_none() {
                    m.insert(
                        "Destination".into(),
                        json!({ "Addresses": wanted, "Port": spec.port }),
                    );
                }
            }
            if self.put(&entry, index).await? {
                return Ok(Written::Updated { previous });
            }
            tracing::info!(attempt, service = %spec.service, "the entry changed between read and write; reading it again");
        }
        Err(ConsulError::Contended {
            attempts: MAX_CAS_ATTEMPTS,
        })
    }
}
