//! The terminating gateway's Envoy admin API. `GET /clusters?format=json` lists one cluster per
//! destination address, named `destination.<address, with . and : as ->.<service>.<namespace>.
//! <datacenter>.internal.<trust domain>.consul`, with the health of its hosts. A destination
//! address is reachable through the gateway when its cluster has a HEALTHY host.

use std::time::Duration;

use serde_json::Value;

const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Why the gateway's admin API could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// The HTTP client could not be built (its TLS setup).
    #[error("{detail}")]
    Client { detail: String },
    /// No answer, or an answer cut off or over the size budget.
    #[error("{url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: not JSON: {detail}")]
    NotJson { url: String, detail: String },
}

/// What the gateway sees of the destination's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct GatewayView {
    /// Addresses whose cluster has a HEALTHY host.
    pub healthy: Vec<String>,
    /// Addresses with no cluster yet, or no healthy host, and why.
    pub not_healthy: Vec<(String, String)>,
}

impl GatewayView {
    pub fn all_healthy(&self) -> bool {
        self.not_healthy.is_empty() && !self.healthy.is_empty()
    }

    /// `2/2 HEALTHY` or `1/2 HEALTHY; 10.0.1.7: no cluster`.
    pub fn summary(&self) -> String {
        let total = self.healthy.len() + self.not_healthy.len();
        let mut s = format!("{}/{total} HEALTHY", self.healthy.len());
        for (a, why) in &self.not_healthy {
            s.push_str(&format!("; {a}: {why}"));
        }
        s
    }
}

fn dashed(address: &str) -> String {
    address.replace(['.', ':'], "-")
}

/// Reads the view out of a `/clusters?format=json` answer.
pub fn view(clusters: &Value, service: &str, addresses: &[String]) -> GatewayView {
    let empty = Vec::new();
    let statuses = clusters["cluster_statuses"].as_array().unwrap_or(&empty);
    let mut out = GatewayView::default();
    for address in addresses {
        let prefix = format!("destination.{}.{service}.", dashed(address));
        let Some(cluster) = statuses
            .iter()
            .find(|c| c["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        else {
            out.not_healthy
                .push((address.clone(), "no cluster on the gateway".into()));
            continue;
        };
        let hosts = cluster["host_statuses"].as_array().unwrap_or(&empty);
        let healthy = hosts.iter().any(|h| {
            let hs = &h["health_status"];
            hs["eds_health_status"] == "HEALTHY"
                && hs["failed_active_health_check"] != true
                && hs["failed_outlier_check"] != true
        });
        if healthy {
            out.healthy.push(address.clone());
        } else if hosts.is_empty() {
            out.not_healthy
                .push((address.clone(), "the cluster has no host".into()));
        } else {
            let states: Vec<&str> = hosts
                .iter()
                .filter_map(|h| h["health_status"]["eds_health_status"].as_str())
                .collect();
            out.not_healthy
                .push((address.clone(), format!("hosts {}", states.join(", "))));
        }
    }
    out
}

/// One look at the gateway.
pub async fn check(
    http: &reqwest::Client,
    admin: &str,
    service: &str,
    addresses: &[String],
) -> Result<GatewayView, EnvoyError> {
    let url = format!("{}/clusters?format=json", admin.trim_end_matches('/'));
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| EnvoyError::Transport {
            url: url.clone(),
            detail: crate::error_chain(&e),
        })?;
    let status = resp.status();
    let body = crate::body_limited(resp, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| EnvoyError::Transport {
            url: url.clone(),
            detail: e.to_string(),
        })?;
    if !status.is_success() {
        return Err(EnvoyError::Status {
            url,
            status: status.as_u16(),
        });
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| EnvoyError::NotJson {
        url,
        detail: e.to_string(),
    })?;
    Ok(view(&v, service, addresses))
}

/// Looks until every address is HEALTHY on the gateway or `timeout` passed (Consul takes a
/// moment to push a changed destination to Envoy); the last view either way.
pub async fn wait_healthy(
    admin: &str,
    service: &str,
    addresses: &[String],
    timeout: Duration,
) -> Result<GatewayView, EnvoyError> {
    let http = crate::http_client(Duration::from_secs(5))
        .build()
        .map_err(|e| EnvoyError::Client {
            detail: crate::error_chain(&e),
        })?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = check(&http, admin, service, addresses).await;
        let done = matches!(&seen, Ok(v) if v.all_healthy());
        if done || tokio::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
