//! The control API under `/sim/v1/` (JSON): set how an image behaves, inject
//! and clear faults, read the timeline, the call counters, the ECS write calls
//! with their callers (`/sim/v1/calls/writes`), the throttled calls, the calls per
//! access key and the keys STS issued. Used by the demo and by tests that drive a
//! standalone simulator.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::state::{Behaviour, Fault, Mode};

/// `POST /sim/v1/images` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageRequest {
    image: String,
    mode: Mode,
    #[serde(default)]
    start_seconds: Option<f64>,
    #[serde(default)]
    after_seconds: Option<f64>,
    #[serde(default)]
    exit_code: Option<i32>,
}

/// `POST /sim/v1/registry/tags` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagRequest {
    repository: String,
    tag: String,
    #[serde(default)]
    digest: Option<String>,
}

/// `POST /sim/v1/dynatrace/activegates` body: what Dynatrace sees of an image's ActiveGates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrationRequest {
    image: String,
    #[serde(flatten)]
    registration: super::dynatrace::Registration,
}

/// `POST /sim/v1/faults` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    /// An operation name such as `UpdateService`, or `*` for every operation.
    operation: String,
    #[serde(flatten)]
    fault: Fault,
}

fn bad(message: impl Into<String>) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({ "message": message.into() }),
    )
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, (StatusCode, Value)> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))
}

/// A control answer: a JSON body, or (status, JSON body) of a refusal.
type Reply = Result<Value, (StatusCode, Value)>;

/// Answers one control request: (status, JSON body).
pub fn handle(shared: &Shared, method: &Method, path: &str, body: &Bytes) -> (StatusCode, Value) {
    let result = match (method, path.trim_end_matches('/')) {
        (&Method::GET, "/sim/v1/health") => Ok(json!({ "status": "ok" })),
        (&Method::GET, "/sim/v1/info") => Ok(json!({
            "speed": shared.clock.speed(),
            "now": shared.clock.now(),
            "region": shared.options.region,
            "account": shared.options.account,
            "ca_pem": shared.ca.pem(),
            "ecs_rate_limits": shared.options.ecs_rate_limits,
            "require_assumed_role": shared.options.require_assumed_role,
            "check_region": shared.options.check_region,
        })),
        (&Method::POST, "/sim/v1/images") => set_image(shared, body),
        (&Method::GET, "/sim/v1/images") => Ok(json!(shared.lock().images)),
        (&Method::POST, "/sim/v1/faults") => set_fault(shared, body),
        (&Method::POST, "/sim/v1/registry/tags") => publish_tag(shared, body),
        (&Method::GET, "/sim/v1/registry") => Ok(json!(shared.lock().registry)),
        (&Method::POST, "/sim/v1/dynatrace/latest") => set_latest_version(shared, body),
        (&Method::POST, "/sim/v1/dynatrace/activegates") => set_registration(shared, body),
        (&Method::GET, "/sim/v1/dynatrace/activegates") => Ok(json!(shared.lock().registrations)),
        (&Method::POST, "/sim/v1/dynatrace/fault") => set_dynatrace_fault(shared, body),
        (&Method::DELETE, "/sim/v1/dynatrace/fault") => {
            shared.set_dynatrace_fault(None);
            Ok(json!({}))
        }
        (&Method::POST, "/sim/v1/registry/auth") => set_registry_auth(shared, body),
        (&Method::GET, "/sim/v1/faults") => Ok(json!(shared.lock().faults)),
        (&Method::DELETE, "/sim/v1/faults") => {
            shared.lock().faults.clear();
            Ok(json!({}))
        }
        (&Method::GET, "/sim/v1/timeline") => Ok(json!(shared.lock().timeline)),
        (&Method::GET, "/sim/v1/calls") => Ok(json!(shared.lock().calls)),
        (&Method::GET, "/sim/v1/calls/writes") => Ok(json!(shared.lock().write_calls)),
        (&Method::GET, "/sim/v1/calls/keys") => Ok(json!(shared.lock().calls_by_key)),
        (&Method::GET, "/sim/v1/throttled") => {
            let st = shared.lock();
            Ok(json!({ "by_operation": st.throttled, "by_key": st.throttled_by_key }))
        }
        (&Method::GET, "/sim/v1/keys") => Ok(json!(shared.lock().issued_keys)),
        (&Method::POST, "/sim/v1/buckets/refill") => {
            shared.refill_buckets();
            Ok(json!({}))
        }
        (&Method::GET, "/sim/v1/events") => Ok(json!(shared.lock().events)),
        _ => Err((
            StatusCode::NOT_FOUND,
            json!({ "message": format!("no control endpoint {method} {path}") }),
        )),
    };
    match result {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => e,
    }
}

/// `POST /sim/v1/images`: how an image behaves from now on.
fn set_image(shared: &Shared, body: &Bytes) -> Reply {
    let r = parse::<ImageRequest>(body)?;
    if r.image.is_empty() {
        return Err(bad("`image` must not be empty"));
    }
    for (name, v) in [
        ("start_seconds", r.start_seconds),
        ("after_seconds", r.after_seconds),
    ] {
        if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(bad(format!(
                "`{name}` must be a non-negative number of seconds"
            )));
        }
    }
    let b = Behaviour {
        mode: r.mode,
        start_seconds: r.start_seconds,
        after_seconds: r.after_seconds,
        exit_code: r.exit_code,
    };
    shared.set_image(&r.image, b);
    Ok(json!({ "image": r.image, "behaviour": b }))
}

/// `POST /sim/v1/faults`: a fault for one operation (or `*`).
fn set_fault(shared: &Shared, body: &Bytes) -> Reply {
    let r = parse::<FaultRequest>(body)?;
    let f = &r.fault;
    if [f.throttle, f.error, f.drop]
        .iter()
        .any(|p| !(0.0..=1.0).contains(p))
    {
        return Err(bad(
            "`throttle`, `error` and `drop` are fractions between 0 and 1",
        ));
    }
    shared
        .lock()
        .faults
        .insert(r.operation.clone(), r.fault.clone());
    Ok(json!({ "operation": r.operation, "fault": r.fault }))
}

/// `POST /sim/v1/registry/tags`: publishes a tag (with a digest of its own unless given).
fn publish_tag(shared: &Shared, body: &Bytes) -> Reply {
    let r = parse::<TagRequest>(body)?;
    let name_ok = !r.repository.is_empty()
        && r.repository.split('/').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    let tag_ok = !r.tag.is_empty()
        && r.tag.len() <= 128
        && r.tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let digest_ok = r.digest.as_deref().is_none_or(|d| {
        d.strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !name_ok || !tag_ok || !digest_ok {
        return Err(bad(
            "expected a repository such as `dynatrace/dynatrace-activegate`, a tag such as `1.301.70.20241127-162512` and an optional `sha256:<64 hex>` digest",
        ));
    }
    let now = shared.clock.now();
    let digest = super::registry::publish(
        &mut shared.lock(),
        &r.repository,
        &r.tag,
        r.digest.as_deref(),
        now,
    );
    Ok(json!({ "repository": r.repository, "tag": r.tag, "digest": digest }))
}

/// `POST /sim/v1/dynatrace/latest`: the version the installer metainfo names.
fn set_latest_version(shared: &Shared, body: &Bytes) -> Reply {
    let v = parse::<Value>(body)?;
    let version = v["version"]
        .as_str()
        .filter(|s| crate::versions::Version::parse(s).is_some())
        .ok_or_else(|| bad("expected {\"version\": \"1.301.70.20241127-162512\"}"))?;
    shared.lock().latest_gateway_version = Some(version.to_owned());
    Ok(json!({ "version": version }))
}

/// `POST /sim/v1/dynatrace/activegates`: what Dynatrace sees of an image's ActiveGates.
fn set_registration(shared: &Shared, body: &Bytes) -> Reply {
    let r = parse::<RegistrationRequest>(body)?;
    if r.image.is_empty() {
        return Err(bad("`image` must not be empty"));
    }
    let version_ok = r
        .registration
        .version
        .as_deref()
        .is_none_or(|v| crate::versions::Version::parse(v).is_some());
    if !version_ok {
        return Err(bad(
            "`version` must be an ActiveGate version such as `1.301.70.20241127-162512`",
        ));
    }
    let reply = json!({ "image": r.image, "registration": r.registration });
    shared.set_registration(&r.image, r.registration);
    Ok(reply)
}

/// `POST /sim/v1/dynatrace/fault`: how the Dynatrace APIs fail.
fn set_dynatrace_fault(shared: &Shared, body: &Bytes) -> Reply {
    let f = parse::<super::dynatrace::ApiFault>(body)?;
    if f.status.is_some_and(|s| !(400..=599).contains(&s)) {
        return Err(bad("`status` must be an HTTP error status (400 to 599)"));
    }
    if f.times == Some(0) {
        return Err(bad(
            "`times` must be at least 1 (leave it out for: until cleared)",
        ));
    }
    let reply = json!({ "fault": f });
    shared.set_dynatrace_fault(Some(f));
    Ok(reply)
}

/// `POST /sim/v1/registry/auth`: whether the registry asks for a bearer token.
fn set_registry_auth(shared: &Shared, body: &Bytes) -> Reply {
    let v = parse::<Value>(body)?;
    let required = v["required"]
        .as_bool()
        .ok_or_else(|| bad("expected {\"required\": true|false}"))?;
    shared.lock().registry_auth = required;
    Ok(json!({ "required": required }))
}
