//! What the Dynatrace environment sees of its ActiveGates: `GET <environment>/api/v2/activeGates`
//! (token scope `activeGates.read`) lists the ActiveGates connected now or in the last two
//! hours, each with its `networkAddresses`, `version`, `offlineSince`, `networkZone`, `group`
//! and `connectedHosts`.
//!
//! One request answers for a whole target — filtered by network zone and group when those are
//! set; the caller matches the tasks' addresses locally. Bounded: 4 MiB an answer, 10 pages,
//! the probes' timeout per request. A 429 is handed back with its `Retry-After` (capped) for
//! the caller to wait out between its rounds, so a rate-limited environment never holds up the
//! HTTPS probes. The token is a [`Redacted`]: no `Debug`, `Display` or error shows it.
//! Knows nothing of ECS.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, RETRY_AFTER};
use serde_json::Value;

use crate::model::secret::{self, Redacted};

/// The token scope the list needs.
pub const SCOPE: &str = "activeGates.read";
/// Larger answers are refused: about 2,000 ActiveGates, more than any target's filter leaves.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Pages followed (`nextPageKey`) before refusing to read further.
pub const MAX_PAGES: usize = 10;
/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The wait after a 429 without a (readable) `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where the environment is and how to ask it.
#[derive(Debug, Clone)]
pub struct EnvironmentSettings {
    /// `https://abc12345.live.dynatrace.com` (a path such as `/e/<id>` for Managed is kept).
    pub url: String,
    /// An API token with the `activeGates.read` scope.
    pub token: Redacted,
    /// The variable the token came from, for messages.
    pub token_env: String,
    /// Per request: the probes' timeout.
    pub timeout: Duration,
}

/// Which ActiveGates to list; `None` filters nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub network_zone: Option<String>,
    pub group: Option<String>,
    /// Dynatrace matches a part of an address (CONTAINS): match the whole one locally.
    pub network_address: Option<String>,
}

/// One ActiveGate as the environment lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub addresses: Vec<String>,
    /// `1.303.10.20250115-101010`.
    pub version: Option<String>,
    /// Milliseconds since the epoch; `None` while it is connected.
    pub offline_since: Option<i64>,
    pub network_zone: Option<String>,
    pub group: Option<String>,
    /// OneAgents connected to it now.
    pub connected_hosts: Option<u64>,
}

impl Listed {
    pub fn online(&self) -> bool {
        self.offline_since.is_none()
    }

    pub fn has_address(&self, ip: &str) -> bool {
        self.addresses.iter().any(|a| a == ip)
    }
}

/// Why the environment could not be asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvironmentError {
    /// 401 or 403: the token is wrong or lacks the scope. A configuration error.
    #[error(
        "{url}: HTTP {status}: the environment refused the token from `{token_env}`; it needs the `{SCOPE}` scope{detail}"
    )]
    Refused {
        url: String,
        status: u16,
        token_env: String,
        detail: String,
    },
    #[error("{url}: HTTP 429: rate-limited; waiting {} s as asked", retry_after.as_secs())]
    Throttled { url: String, retry_after: Duration },
    #[error("{url}: HTTP {status}{detail}")]
    Http {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{url}: no answer within {:.1} s", timeout.as_secs_f64())]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: cannot reach the environment: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url}: {detail}")]
    Answer { url: String, detail: String },
}

impl EnvironmentError {
    /// A 401 or 403: a person must fix the token or its scopes.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }

    /// How long to wait before asking again, when the environment said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Refused { .. } => "refused",
            Self::Throttled { .. } => "throttled",
            Self::Http { .. } => "http",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Answer { .. } => "answer",
        }
    }
}

/// The environment's ActiveGate list; cheap to clone.
#[derive(Clone)]
pub struct Environment {
    client: reqwest::Client,
    settings: std::sync::Arc<EnvironmentSettings>,
    /// `<url>/api/v2/activeGates`.
    endpoint: reqwest::Url,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("endpoint", &self.endpoint.as_str())
            .field("token", &self.settings.token)
            .finish()
    }
}

/// An error's detail from a Dynatrace error body (`{"error": {"message": …}}`), bounded and
/// scrubbed of anything token-looking (an answer may echo what it was sent).
fn detail_of(body: &[u8]) -> String {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let message: String = message.trim().chars().take(200).collect();
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({})", secret::scrub(&message))
    }
}

/// The seconds of a `Retry-After` header (the HTTP-date form is rare for APIs: the default
/// wait then), capped.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
        .min(MAX_RETRY_AFTER)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// One ActiveGate of an answer. `connectedHosts` is an object with `number` in the API's
/// model; a bare number is read too.
fn listed(v: &Value) -> Listed {
    let hosts = &v["connectedHosts"];
    Listed {
        id: text(&v["id"]).unwrap_or_default(),
        addresses: strings(&v["networkAddresses"]),
        version: text(&v["version"]),
        offline_since: v["offlineSince"].as_i64(),
        network_zone: text(&v["networkZone"]),
        group: text(&v["group"]),
        connected_hosts: hosts["number"].as_u64().or_else(|| hosts.as_u64()),
    }
}

impl Environment {
    pub fn new(settings: EnvironmentSettings) -> Result<Environment, EnvironmentError> {
        let base = settings.url.trim_end_matches('/');
        let answer = |detail: String| EnvironmentError::Answer {
            url: base.to_owned(),
            detail,
        };
        let endpoint = reqwest::Url::parse(&format!("{base}/api/v2/activeGates"))
            .map_err(|e| answer(format!("not a URL: {e}")))?;
        let client = crate::http_client(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| answer(format!("cannot build the HTTPS client: {e}")))?;
        Ok(Environment {
            client,
            settings: std::sync::Arc::new(settings),
            endpoint,
        })
    }

    /// `https://abc12345.live.dynatrace.com/api/v2/activeGates`, for messages.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    pub fn token_env(&self) -> &str {
        &self.settings.token_env
    }

    /// The ActiveGates `filter` selects: one request, more only when the environment pages
    /// its answer (at most [`MAX_PAGES`]).
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Listed>, EnvironmentError> {
        let shown = self.endpoint.as_str().to_owned();
        let mut out = Vec::new();
        let mut page_key: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.endpoint.clone();
            {
                let mut q = url.query_pairs_mut();
                match &page_key {
                    // Dynatrace wants nothing but the key on later pages.
                    Some(k) => {
                        q.append_pair("nextPageKey", k);
                    }
                    None => {
                        for (k, v) in [
                            ("networkZone", &filter.network_zone),
                            ("group", &filter.group),
                            ("networkAddress", &filter.network_address),
                        ] {
                            if let Some(v) = v {
                                q.append_pair(k, v);
                            }
                        }
                    }
                }
            }
            if url.query() == Some("") {
                url.set_query(None);
            }
            let body = self.get(url, &shown).await?;
            let v: Value = serde_json::from_slice(&body).map_err(|e| EnvironmentError::Answer {
                url: shown.clone(),
                detail: format!("the answer is not the JSON expected: {e}"),
            })?;
            let Some(gates) = v["activeGates"].as_array() else {
                return Err(EnvironmentError::Answer {
                    url: shown,
                    detail: "the answer has no `activeGates` list".into(),
                });
            };
            out.extend(gates.iter().map(listed));
            match v["nextPageKey"].as_str().filter(|k| !k.is_empty()) {
                Some(k) => page_key = Some(k.to_owned()),
                None => return Ok(out),
            }
        }
        Err(EnvironmentError::Answer {
            url: shown,
            detail: format!("more than {MAX_PAGES} pages; refusing to read further"),
        })
    }

    /// One GET, its answer bounded; the status classified.
    async fn get(&self, url: reqwest::Url, shown: &str) -> Result<Vec<u8>, EnvironmentError> {
        let timeout = self.settings.timeout;
        let mut authorization =
            reqwest::header::HeaderValue::from_str(&format!("Api-Token {}", self.settings.token.0))
                .map_err(|_| EnvironmentError::Answer {
                    url: shown.to_owned(),
                    detail: format!(
                        "the token in `{}` is not valid in an HTTP header (a line break or a control character?)",
                        self.settings.token_env
                    ),
                })?;
        // Never logged by the HTTP stack, never indexed by HTTP/2 header compression.
        authorization.set_sensitive(true);
        let resp = self
            .client
            .get(url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    EnvironmentError::Timeout {
                        url: shown.to_owned(),
                        timeout,
                    }
                } else {
                    EnvironmentError::Transport {
                        url: shown.to_owned(),
                        detail: secret::scrub(&crate::error_chain(&e)).into_owned(),
                    }
                }
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = crate::body_limited(resp, MAX_BODY)
            .await
            .map_err(|e| match e {
                crate::BodyError::TooLarge { .. } => EnvironmentError::Answer {
                    url: shown.to_owned(),
                    detail: e.to_string(),
                },
                crate::BodyError::Read { .. } => EnvironmentError::Transport {
                    url: shown.to_owned(),
                    detail: secret::scrub(&e.to_string()).into_owned(),
                },
            })?;
        match status {
            s if s.is_success() => Ok(body),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(EnvironmentError::Refused {
                url: shown.to_owned(),
                status: status.as_u16(),
                token_env: self.settings.token_env.clone(),
                detail: detail_of(&body),
            }),
            StatusCode::TOO_MANY_REQUESTS => Err(EnvironmentError::Throttled {
                url: shown.to_owned(),
                retry_after: retry_after(&headers),
            }),
            _ => Err(EnvironmentError::Http {
                url: shown.to_owned(),
                status: status.as_u16(),
                detail: detail_of(&body),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_activegate_is_read_from_the_api_model() {
        let v: Value = serde_json::from_str(
            r#"{"id": "0x1a2b", "networkAddresses": ["10.0.1.7", "ip-10-0-1-7"], "version": "1.303.10.20250115-101010",
                "offlineSince": null, "networkZone": "aws.eu-central-1", "group": "ecs", "connectedHosts": {"number": 12}}"#,
        )
        .expect("JSON");
        let l = listed(&v);
        assert!(l.online() && l.has_address("10.0.1.7") && !l.has_address("10.0.1.70"));
        assert_eq!(l.version.as_deref(), Some("1.303.10.20250115-101010"));
        assert_eq!(l.network_zone.as_deref(), Some("aws.eu-central-1"));
        assert_eq!(l.group.as_deref(), Some("ecs"));
        assert_eq!(l.connected_hosts, Some(12));
        let offline = listed(
            &serde_json::json!({"offlineSince": 1_700_000_000_000_i64, "connectedHosts": 3}),
        );
        assert!(!offline.online());
        assert_eq!(offline.connected_hosts, Some(3));
    }

    #[test]
    fn error_details_are_bounded_and_never_repeat_a_token() {
        let body = br#"{"error": {"code": 401, "message": "Token dt0c01.ABCDEFGHIJKLMNOPQRSTUVWX.ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEF is invalid"}}"#;
        let d = detail_of(body);
        assert!(!d.contains("ABCDEFGHIJKLMNOP"), "{d}");
        assert!(d.contains("redacted"), "{d}");
        assert!(detail_of(&[b'x'; 5000]).chars().count() < 210);
        assert_eq!(detail_of(b""), "");
    }

    #[test]
    fn retry_after_is_read_and_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), DEFAULT_RETRY_AFTER);
        h.insert(RETRY_AFTER, "2".parse().expect("header"));
        assert_eq!(retry_after(&h), Duration::from_secs(2));
        h.insert(RETRY_AFTER, "86400".parse().expect("header"));
        assert_eq!(retry_after(&h), MAX_RETRY_AFTER);
    }

    #[test]
    fn the_token_is_never_shown() {
        let env = Environment::new(EnvironmentSettings {
            url: "https://abc12345.live.dynatrace.com/".into(),
            token: Redacted("canary-token-value-4711".into()),
            token_env: "DT_API_TOKEN".into(),
            timeout: Duration::from_secs(2),
        })
        .expect("client");
        let shown = format!("{env:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert_eq!(
            env.endpoint(),
            "https://abc12345.live.dynatrace.com/api/v2/activeGates"
        );
    }
}
