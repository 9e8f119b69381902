//! A small OCI distribution (v2) client: list tags (following `Link`
//! pagination) and resolve a tag to its digest, with the anonymous bearer-token
//! flow or basic credentials, honouring `Retry-After` on 429. Bounded: at most
//! `MAX_TAGS` tags, `MAX_PAGES` pages, five redirects, 20 s per request.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

/// More tags than any real ActiveGate repository holds.
pub const MAX_TAGS: usize = 20_000;
pub const MAX_PAGES: usize = 200;
/// 429 answers honoured (with their Retry-After, capped) before giving up.
const MAX_RATE_LIMITED: u32 = 3;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Manifest media types a multi-architecture ActiveGate image may have.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{url}: HTTP {status}{detail}")]
    Http {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url}: the answer is not the JSON expected: {detail}")]
    Json { url: String, detail: String },
    #[error("{url}: authentication failed: {detail}")]
    Auth { url: String, detail: String },
    #[error("{url}: more than {limit} tags or {pages} pages; refusing to read further")]
    TooMany {
        url: String,
        limit: usize,
        pages: usize,
    },
    #[error("{url}: no valid Docker-Content-Digest header in the answer")]
    NoDigest { url: String },
    #[error("{url}: still rate-limited after {tries} answers of 429")]
    RateLimited { url: String, tries: u32 },
}

impl RegistryError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Transport { .. } => "transport",
            Self::Json { .. } => "json",
            Self::Auth { .. } => "auth",
            Self::TooMany { .. } => "too-many",
            Self::NoDigest { .. } => "no-digest",
            Self::RateLimited { .. } => "rate-limited",
        }
    }
}

/// One repository in one registry.
pub struct Registry {
    client: reqwest::Client,
    /// `https://public.ecr.aws`
    base: String,
    /// `dynatrace/dynatrace-activegate`
    name: String,
    basic: Option<(String, String)>,
    token: Mutex<Option<String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `https://host` and the repository name for an image repository such as
/// `public.ecr.aws/dynatrace/dynatrace-activegate` (Docker Hub names go to registry-1.docker.io).
pub fn split_repository(repository: &str) -> Option<(String, String)> {
    let (host, name) = repository.split_once('/')?;
    if !(host.contains('.') || host.contains(':') || host == "localhost") {
        return Some(("https://registry-1.docker.io".into(), repository.to_owned()));
    }
    let host = if host == "docker.io" {
        "registry-1.docker.io"
    } else {
        host
    };
    (!name.is_empty()).then(|| (format!("https://{host}"), name.to_owned()))
}

/// `realm`, `service` and `scope` of a `WWW-Authenticate: Bearer …` header.
fn bearer_challenge(headers: &HeaderMap) -> Option<(String, Vec<(String, String)>)> {
    let v = headers.get(WWW_AUTHENTICATE)?.to_str().ok()?;
    let rest = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    let mut realm = None;
    let mut params = Vec::new();
    for part in rest.split(',') {
        let (k, val) = part.trim().split_once('=')?;
        let val = val.trim().trim_matches('"').to_owned();
        if k == "realm" {
            realm = Some(val);
        } else {
            params.push((k.to_owned(), val));
        }
    }
    Some((realm?, params))
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(LINK)?.to_str().ok()?;
    v.split(',')
        .find(|l| l.contains("rel=\"next\""))
        .and_then(|l| {
            let start = l.find('<')? + 1;
            let end = l.find('>')?;
            l.get(start..end).map(str::to_owned)
        })
}

/// The HTTP client version discovery reads registries and Dynatrace's API with.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    crate::http_client(Duration::from_secs(20)).build()
}

impl Registry {
    pub fn new(
        base: &str,
        name: &str,
        basic: Option<(String, String)>,
    ) -> Result<Registry, RegistryError> {
        let client = client().map_err(|e| RegistryError::Transport {
            url: base.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(Registry::with_client(client, base, name, basic))
    }

    /// A registry read through `client` (one of [`client`], shared: each client loads and
    /// keeps the system's root certificates, ~100 KiB, which 1,000 targets need only once).
    pub fn with_client(
        client: reqwest::Client,
        base: &str,
        name: &str,
        basic: Option<(String, String)>,
    ) -> Registry {
        Registry {
            client,
            base: base.trim_end_matches('/').to_owned(),
            name: name.to_owned(),
            basic,
            token: Mutex::new(None),
        }
    }

    fn token(&self) -> Option<String> {
        self.token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sends a request; handles the token challenge once and 429 a few times.
    async fn send(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let transport = |e: reqwest::Error| RegistryError::Transport {
            url: url.to_owned(),
            detail: crate::error_chain(&e),
        };
        let mut challenged = false;
        let mut limited = 0;
        loop {
            let mut req = self.client.request(method.clone(), url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(t) = self.token() {
                req = req.header(AUTHORIZATION, format!("Bearer {t}"));
            } else if let Some((u, p)) = &self.basic {
                req = req.basic_auth(u, Some(p));
            }
            let resp = req.send().await.map_err(transport)?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    let Some((realm, params)) = bearer_challenge(resp.headers()) else {
                        return Err(RegistryError::Auth {
                            url: url.to_owned(),
                            detail: "401 without a Bearer challenge".into(),
                        });
                    };
                    self.fetch_token(&realm, &params).await?;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(RegistryError::Auth {
                        url: url.to_owned(),
                        detail: "the registry refused the token".into(),
                    });
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    limited += 1;
                    if limited > MAX_RATE_LIMITED {
                        return Err(RegistryError::RateLimited {
                            url: url.to_owned(),
                            tries: limited - 1,
                        });
                    }
                    let wait = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map_or(Duration::from_secs(1), Duration::from_secs)
                        .min(MAX_RETRY_AFTER);
                    tracing::warn!(
                        url,
                        wait_s = wait.as_secs(),
                        "the registry is rate-limiting; waiting as asked"
                    );
                    tokio::time::sleep(wait).await;
                }
                s if !s.is_success() => {
                    let body: String = resp
                        .text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect();
                    return Err(RegistryError::Http {
                        url: url.to_owned(),
                        status: s.as_u16(),
                        detail: if body.is_empty() {
                            String::new()
                        } else {
                            format!(": {body}")
                        },
                    });
                }
                _ => return Ok(resp),
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        params: &[(String, String)],
    ) -> Result<(), RegistryError> {
        let auth_err = |detail: String| RegistryError::Auth {
            url: realm.to_owned(),
            detail,
        };
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let sep = if realm.contains('?') { '&' } else { '?' };
        let mut req = self.client.get(format!("{realm}{sep}{}", query.join("&")));
        if let Some((u, p)) = &self.basic {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| auth_err(crate::error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(auth_err(format!(
                "the token endpoint answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| auth_err(format!("the token answer is not JSON: {e}")))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|t| !t.is_empty());
        let token = token.ok_or_else(|| auth_err("the token answer holds no token".into()))?;
        *self
            .token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token.to_owned());
        Ok(())
    }

    /// Every tag of the repository, following `Link` pagination.
    pub async fn tags(&self) -> Result<Vec<String>, RegistryError> {
        let mut url = format!("{}/v2/{}/tags/list?n=1000", self.base, self.name);
        let mut tags = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self.send(Method::GET, &url, None).await?;
            let next = next_link(resp.headers());
            let bytes = resp.bytes().await.map_err(|e| RegistryError::Transport {
                url: url.clone(),
                detail: crate::error_chain(&e),
            })?;
            let page: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Json {
                    url: url.clone(),
                    detail: e.to_string(),
                })?;
            let page_tags = page["tags"].as_array().ok_or_else(|| RegistryError::Json {
                url: url.clone(),
                detail: "no `tags` list".into(),
            })?;
            tags.extend(
                page_tags
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned)),
            );
            if tags.len() > MAX_TAGS {
                return Err(RegistryError::TooMany {
                    url,
                    limit: MAX_TAGS,
                    pages: MAX_PAGES,
                });
            }
            match next {
                None => return Ok(tags),
                Some(n) if n.starts_with("http://") || n.starts_with("https://") => url = n,
                Some(n) => url = format!("{}{}", self.base, n),
            }
        }
        Err(RegistryError::TooMany {
            url,
            limit: MAX_TAGS,
            pages: MAX_PAGES,
        })
    }

    /// The digest of a tag, from `HEAD /v2/<name>/manifests/<tag>`.
    pub async fn digest(&self, tag: &str) -> Result<String, RegistryError> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.name);
        let resp = self.send(Method::HEAD, &url, Some(MANIFEST_TYPES)).await?;
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match digest {
            Some(d)
                if d.strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())) =>
            {
                Ok(d)
            }
            _ => Err(RegistryError::NoDigest { url }),
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_split_into_registry_and_name() {
        assert_eq!(
            split_repository("public.ecr.aws/dynatrace/dynatrace-activegate"),
            Some((
                "https://public.ecr.aws".into(),
                "dynatrace/dynatrace-activegate".into()
            ))
        );
        assert_eq!(
            split_repository("docker.io/dynatrace/dynatrace-activegate"),
            Some((
                "https://registry-1.docker.io".into(),
                "dynatrace/dynatrace-activegate".into()
            ))
        );
        assert_eq!(
            split_repository("dynatrace/dynatrace-activegate"),
            Some((
                "https://registry-1.docker.io".into(),
                "dynatrace/dynatrace-activegate".into()
            ))
        );
        assert_eq!(
            split_repository("abc12345.live.dynatrace.com/linux/activegate").map(|r| r.1),
            Some("linux/activegate".into())
        );
        assert_eq!(split_repository("nothing"), None);
    }

    #[test]
    fn challenges_and_links_are_read() {
        let mut h = HeaderMap::new();
        h.insert(WWW_AUTHENTICATE, "Bearer realm=\"https://public.ecr.aws/token/\",service=\"public.ecr.aws\",scope=\"aws\"".parse().expect("header"));
        h.insert(
            LINK,
            "</v2/x/tags/list?n=2&last=b>; rel=\"next\""
                .parse()
                .expect("header"),
        );
        let (realm, params) = bearer_challenge(&h).expect("challenge");
        assert_eq!(realm, "https://public.ecr.aws/token/");
        assert_eq!(
            params,
            [
                ("service".to_owned(), "public.ecr.aws".to_owned()),
                ("scope".to_owned(), "aws".to_owned())
            ]
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/x/tags/list?n=2&last=b"));
    }
}
