//! The latest ActiveGate version according to the Dynatrace environment:
//! `GET <environment>/api/v1/deployment/installer/gateway/unix/latest/metainfo`
//! (a PaaS / InstallerDownload token) → `latestGatewayVersion`.

use super::registry::RegistryError;

pub struct Metainfo {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl std::fmt::Debug for Metainfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metainfo")
            .field("url", &self.url)
            .field("token", &"(hidden)")
            .finish()
    }
}

impl Metainfo {
    pub fn new(environment_url: &str, token: String) -> Result<Metainfo, RegistryError> {
        let client = super::registry::client().map_err(|e| RegistryError::Transport {
            url: environment_url.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(Metainfo::with_client(client, environment_url, token))
    }

    /// [`Metainfo::new`] with a shared client (see `registry::Registry::with_client`).
    pub fn with_client(client: reqwest::Client, environment_url: &str, token: String) -> Metainfo {
        let url = format!(
            "{}/api/v1/deployment/installer/gateway/unix/latest/metainfo",
            environment_url.trim_end_matches('/')
        );
        Metainfo { client, url, token }
    }

    /// The latest gateway version, e.g. `1.301.70.20241127-162512`.
    pub async fn latest(&self) -> Result<String, RegistryError> {
        let url = &self.url;
        let resp = self
            .client
            .get(url)
            .header("authorization", format!("Api-Token {}", self.token))
            .send()
            .await
            .map_err(|e| RegistryError::Transport {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let status = resp.status();
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(RegistryError::Auth {
                url: url.clone(),
                detail: format!(
                    "HTTP {}: the token needs the InstallerDownload (PaaS) scope",
                    status.as_u16()
                ),
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Http {
                url: url.clone(),
                status: status.as_u16(),
                detail: String::new(),
            });
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| RegistryError::Json {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        body["latestGatewayVersion"]
            .as_str()
            .filter(|v| super::Version::parse(v).is_some())
            .map(str::to_owned)
            .ok_or_else(|| RegistryError::Json {
                url: url.clone(),
                detail: "no valid `latestGatewayVersion`".into(),
            })
    }
}
