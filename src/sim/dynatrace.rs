//! Dynatrace's ActiveGate list as the simulator plays it: `GET /api/v2/activeGates` (an
//! `Api-Token` wanted) lists one ActiveGate per task whose fake ActiveGate came up: online
//! while it is up, then `offlineSince` the moment it failed or began to stop, for as long as
//! the simulator remembers the task (a simulated hour; Dynatrace lists two). Its address is
//! the task's IP, its version the image tag's, its network zone and group the task
//! definition's `DT_NETWORK_ZONE` (else `default`) and `DT_GROUP`. Filters `networkZone`,
//! `group` (both case-insensitive) and `networkAddress` (a part of one), as Dynatrace's.
//!
//! Per image, a [`Registration`] overrides what the environment sees (an ActiveGate that never
//! registers, another version, zone or group); an [`ApiFault`] makes the API itself answer
//! 401, 403, 429 with `Retry-After`, 500, or slowly. Calls are counted as the operation
//! `DynatraceActiveGates`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Shared;
use super::state::{Mode, State, Task, TaskDefinition, TaskStatus};

/// The operation name the calls are counted under.
pub const OPERATION: &str = "DynatraceActiveGates";

/// How the environment sees the ActiveGates of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// `false`: its ActiveGates never connect (a wrong tenant token, blocked egress, a proxy).
    #[serde(default = "yes")]
    pub registers: bool,
    /// The version they report instead of the image tag's.
    #[serde(default)]
    pub version: Option<String>,
    /// The network zone they report instead of the task definition's.
    #[serde(default)]
    pub network_zone: Option<String>,
    /// The group they report instead of the task definition's.
    #[serde(default)]
    pub group: Option<String>,
    /// OneAgents connected to each; default one more per simulated minute online, up to 5.
    #[serde(default)]
    pub connected_hosts: Option<u64>,
}

fn yes() -> bool {
    true
}

impl Default for Registration {
    fn default() -> Self {
        Self {
            registers: true,
            version: None,
            network_zone: None,
            group: None,
            connected_hosts: None,
        }
    }
}

impl Registration {
    /// ActiveGates that never show up in the environment.
    pub fn never() -> Self {
        Self {
            registers: false,
            ..Self::default()
        }
    }
}

/// How the ActiveGate list API itself answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFault {
    /// Answer with this status instead (401, 403, 429, 500, …).
    #[serde(default)]
    pub status: Option<u16>,
    /// With a 429: the `Retry-After` header, in (real) seconds.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Real milliseconds before answering.
    #[serde(default)]
    pub latency_ms: u64,
    /// Only while a RUNNING task of this image (tag or digest) exists.
    #[serde(default)]
    pub image: Option<String>,
    /// The number of calls it applies to, then it is gone; unset: until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// What is set for an image: by exact reference, then by digest, then without the digest.
fn for_image<'a, T>(map: &'a std::collections::BTreeMap<String, T>, image: &str) -> Option<&'a T> {
    let by_digest = image.split_once('@').map(|(_, d)| d);
    let without_digest = image.split_once('@').map(|(r, _)| r);
    map.get(image)
        .or_else(|| by_digest.and_then(|d| map.get(d)))
        .or_else(|| without_digest.and_then(|r| map.get(r)))
}

fn matches_image(image: &str, wanted: &str) -> bool {
    image == wanted
        || image
            .split_once('@')
            .is_some_and(|(r, d)| r == wanted || d == wanted)
}

/// The version an image's ActiveGate reports: its tag (`repo:TAG[@digest]`) without `-fips`.
fn version_of(image: &str) -> String {
    let reference = image.split('@').next().unwrap_or(image);
    let name_end = reference.rfind('/').map_or(0, |i| i + 1);
    let tag = reference[name_end..]
        .rsplit_once(':')
        .map_or("latest", |(_, t)| t);
    tag.trim_end_matches("-fips").to_owned()
}

fn env_of(td: Option<&TaskDefinition>, name: &str) -> Option<String> {
    td?.main_container()?
        .get("environment")?
        .as_array()?
        .iter()
        .find(|kv| kv.get("name").and_then(Value::as_str) == Some(name))?
        .get("value")?
        .as_str()
        .map(str::to_owned)
}

/// When a task's fake ActiveGate came up and when it went away (simulated seconds).
fn online_span(t: &Task, default_start: f64) -> Option<(f64, Option<f64>)> {
    let started = t.started_at?;
    let b = t.behaviour;
    if matches!(b.mode, Mode::NeverHealthy | Mode::Hangs | Mode::PullFails) {
        return None;
    }
    let up = started + b.start_seconds.unwrap_or(default_start);
    let failed = (b.mode == Mode::FailsAfter)
        .then(|| started + b.after_seconds.unwrap_or(f64::INFINITY))
        .filter(|f| f.is_finite());
    let gone = [failed, t.stopping_at, t.stopped_at]
        .into_iter()
        .flatten()
        .reduce(f64::min);
    match gone {
        Some(g) if g <= up => None,
        _ => Some((up, gone)),
    }
}

/// One listed ActiveGate per task whose ActiveGate came up by `now`.
fn listing(st: &State, now: f64, default_start: f64) -> Vec<Value> {
    let mut out = Vec::new();
    for t in st.tasks.values() {
        let Some((up, gone)) = online_span(t, default_start) else {
            continue;
        };
        if now < up {
            continue;
        }
        let reg = for_image(&st.registrations, &t.image)
            .cloned()
            .unwrap_or_default();
        if !reg.registers {
            continue;
        }
        let td = st.find_task_definition(&t.task_definition);
        let offline = gone.filter(|g| *g <= now);
        let connected = match offline {
            Some(_) => 0,
            None => reg
                .connected_hosts
                .unwrap_or_else(|| (((now - up) / 60.0) as u64).min(5)),
        };
        let ip = t.ip.to_string();
        out.push(json!({
            "id": format!("0x{}", &t.id[..16.min(t.id.len())]),
            "networkAddresses": [ip.clone()],
            "hostname": format!("ip-{}", ip.replace('.', "-")),
            "osType": "LINUX",
            "type": "ENVIRONMENT",
            "containerized": true,
            "autoUpdateStatus": "INCOMPATIBLE",
            "offlineSince": offline.map(|g| (g * 1000.0) as i64),
            "version": reg.version.clone().unwrap_or_else(|| version_of(&t.image)),
            "networkZone": reg.network_zone.clone()
                .or_else(|| env_of(td, "DT_NETWORK_ZONE"))
                .unwrap_or_else(|| "default".into()),
            "group": reg.group.clone().or_else(|| env_of(td, "DT_GROUP")),
            "modules": [{"type": "NETWORK_ROUTING", "enabled": true, "misconfigured": false}],
            "connectedHosts": {"number": connected},
        }));
    }
    out
}

fn filtered(gates: Vec<Value>, query: &str) -> Vec<Value> {
    let params: Vec<(String, String)> = reqwest::Url::parse(&format!("http://sim/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let same = |v: &Value, wanted: Option<&str>| {
        wanted.is_none_or(|w| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(w)))
    };
    gates
        .into_iter()
        .filter(|g| same(&g["networkZone"], get("networkZone")))
        .filter(|g| same(&g["group"], get("group")))
        .filter(|g| {
            get("networkAddress").is_none_or(|a| {
                g["networkAddresses"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x.as_str().is_some_and(|x| x.contains(a))))
            })
        })
        .collect()
}

fn reply(status: StatusCode, body: &Value, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(s) = retry_after {
        b = b.header("retry-after", s.to_string());
    }
    b.body(Full::new(Bytes::from(body.to_string())))
        .expect("a JSON response is valid")
}

/// Answers `GET /api/v2/activeGates`.
pub async fn active_gates(shared: &Shared, authorized: bool, query: &str) -> Response<Full<Bytes>> {
    let fault = {
        let mut st = shared.lock();
        *st.calls.entry(OPERATION.into()).or_default() += 1;
        let applies = st.dynatrace_fault.as_ref().is_some_and(|f| {
            f.image.as_deref().is_none_or(|image| {
                st.tasks.values().any(|t| {
                    t.status == TaskStatus::Running
                        && t.desired_running
                        && matches_image(&t.image, image)
                })
            })
        });
        if applies {
            let f = st.dynatrace_fault.clone();
            if let Some(left) = st.dynatrace_fault.as_mut().and_then(|f| f.times.as_mut()) {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    st.dynatrace_fault = None;
                }
            }
            f
        } else {
            None
        }
    };
    if let Some(ms) = fault.as_ref().map(|f| f.latency_ms).filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let now = shared.clock.now();
    let answer = match fault.as_ref().and_then(|f| f.status) {
        Some(s) => {
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = match s {
                401 => "Missing authorization parameter.",
                403 => {
                    "Token is missing required scope. Use one of: activeGates.read (Read ActiveGates)"
                }
                429 => "Too Many Requests",
                _ => "Internal Server Error",
            };
            let retry = (s == 429).then(|| fault.as_ref().and_then(|f| f.retry_after).unwrap_or(1));
            (
                status,
                json!({"error": {"code": s, "message": message}}),
                retry,
            )
        }
        None if !authorized => (
            StatusCode::UNAUTHORIZED,
            json!({"error": {"code": 401, "message": "Missing authorization parameter."}}),
            None,
        ),
        None => {
            let st = shared.lock();
            let gates = filtered(
                listing(&st, now, shared.options.delays.activegate_start),
                query,
            );
            (StatusCode::OK, json!({ "activeGates": gates }), None)
        }
    };
    let (status, body, retry) = answer;
    let listed = body["activeGates"].as_array().map_or(0, Vec::len);
    shared.lock().record(
        now,
        "dynatrace-activegates",
        "activeGates",
        format!("{} {listed} listed", status.as_u16()),
    );
    reply(status, &body, retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_image_tag() {
        assert_eq!(
            version_of(
                "public.ecr.aws/dynatrace/dynatrace-activegate:1.303.10.20250115-101010@sha256:ab"
            ),
            "1.303.10.20250115-101010"
        );
        assert_eq!(version_of("localhost:5000/ag:1.301.70-fips"), "1.301.70");
        assert_eq!(version_of("localhost:5000/ag"), "latest");
    }

    #[test]
    fn filters_are_case_insensitive_and_addresses_partial() {
        let gates = vec![
            json!({"networkZone": "aws.eu-central-1", "group": "ecs", "networkAddresses": ["127.20.1.7"]}),
            json!({"networkZone": "default", "group": null, "networkAddresses": ["127.20.1.70"]}),
        ];
        assert_eq!(
            filtered(gates.clone(), "networkZone=AWS.eu-central-1").len(),
            1
        );
        assert_eq!(
            filtered(gates.clone(), "group=ecs&networkZone=default").len(),
            0
        );
        assert_eq!(
            filtered(gates.clone(), "networkAddress=127.20.1.7").len(),
            2
        );
        assert_eq!(filtered(gates, "").len(), 2);
    }
}
