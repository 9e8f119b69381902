//! Rollout outcomes as Dynatrace events (`POST /api/v2/events/ingest`): a
//! `CUSTOM_DEPLOYMENT` for a verified version, an `ERROR_EVENT` for a
//! roll-back. Sent after the outcome is settled, with a 5 s timeout: a failing
//! event sink never blocks or fails a rollout.

use std::time::Duration;

use serde_json::{Value, json};

use crate::rollout::Outcome;

/// Where events go. The token is read from the environment, never from the config.
#[derive(Clone)]
pub struct Sink {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("url", &self.url)
            .field("token", &"(hidden)")
            .finish()
    }
}

impl Sink {
    pub fn new(environment_url: &str, token: String) -> Option<Sink> {
        let client = crate::http_client(Duration::from_secs(5)).build().ok()?;
        Some(Sink {
            url: format!(
                "{}/api/v2/events/ingest",
                environment_url.trim_end_matches('/')
            ),
            token,
            client,
        })
    }

    /// The event for an outcome; `None` for outcomes that change nothing.
    pub fn event(
        target: &str,
        cluster: &str,
        service: &str,
        outcome: &Outcome,
        image: Option<&str>,
    ) -> Option<Value> {
        let common = json!({
            "activegate-lifecycle.target": target,
            "activegate-lifecycle.cluster": cluster,
            "activegate-lifecycle.service": service,
        });
        let mut e = match outcome {
            Outcome::Verified { to, .. } => json!({
                "eventType": "CUSTOM_DEPLOYMENT",
                "title": format!("ActiveGate {target}: new version verified"),
                "properties": {
                    "dt.event.deployment.name": format!("activegate-lifecycle {target}"),
                    "dt.event.deployment.version": image.unwrap_or(to),
                    "dt.event.deployment.project": "activegate-lifecycle",
                    "activegate-lifecycle.revision": to,
                },
            }),
            Outcome::RolledBack {
                failed,
                restored,
                reasons,
                ..
            } => json!({
                "eventType": "ERROR_EVENT",
                "title": format!("ActiveGate {target}: rolled back"),
                "properties": {
                    "activegate-lifecycle.failed-revision": failed,
                    "activegate-lifecycle.restored-revision": restored,
                    "activegate-lifecycle.reasons": reasons.join("; ").chars().take(1000).collect::<String>(),
                },
            }),
            Outcome::Inconclusive {
                revision,
                serving,
                reasons,
            } => json!({
                "eventType": "CUSTOM_INFO",
                "title": format!("ActiveGate {target}: new version could not be judged; removed, to be tried again"),
                "properties": {
                    "activegate-lifecycle.revision": revision,
                    "activegate-lifecycle.serving-revision": serving,
                    "activegate-lifecycle.reasons": reasons.join("; ").chars().take(1000).collect::<String>(),
                },
            }),
            _ => return None,
        };
        if let (Some(props), Some(extra)) = (e["properties"].as_object_mut(), common.as_object()) {
            props.extend(extra.clone());
        }
        Some(e)
    }

    /// Sends one event; logs what Dynatrace answered, never fails.
    pub async fn send(&self, event: Value) {
        let sink = self;
        {
            let answer = sink
                .client
                .post(&sink.url)
                .header("authorization", format!("Api-Token {}", sink.token))
                .json(&event)
                .send()
                .await;
            match answer {
                Err(e) => tracing::warn!(error = %e, "cannot send the Dynatrace event"),
                Ok(r) if r.status().as_u16() != 201 => {
                    tracing::warn!(status = r.status().as_u16(), "Dynatrace refused the event")
                }
                Ok(r) => {
                    let body: Value = r.json().await.unwrap_or_default();
                    let statuses: Vec<String> = body["eventIngestResults"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x["status"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    if statuses.iter().all(|s| s == "OK") && !statuses.is_empty() {
                        tracing::info!("Dynatrace event sent");
                    } else {
                        tracing::warn!(
                            ?statuses,
                            "Dynatrace accepted the request but not every event"
                        );
                    }
                }
            }
        }
    }
}
