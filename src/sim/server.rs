//! The simulator's HTTP endpoint: AWS JSON 1.1 routed by `X-Amz-Target`, STS's
//! form-encoded calls, the callers' keys checked and ECS's buckets drawn from when the
//! options ask for it, faults applied per operation, and the control API.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::api::{self, ApiError};
use super::state::{Fault, WRITE_CALLS_KEPT, WriteCall};
use super::sts::{self, Signer};
use super::{Shared, control, ecs, logs};

/// Largest request body accepted (AWS's own limits are far lower).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Returned to hyper to close a connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((socket, _)) = accepted else { continue };
        let shared = shared.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(socket);
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { handle(&shared, req).await }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

fn json_response(status: StatusCode, body: &Value, request_id: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", request_id)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a JSON response is valid")
}

fn error_response(e: &ApiError, request_id: &str) -> Response<Full<Bytes>> {
    let mut r = json_response(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        &e.body(),
        request_id,
    );
    if let Ok(v) = e.code.parse() {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// What the routing needs of a request, read before its body is consumed.
struct Head {
    /// `X-Amz-Target`: present on every AWS JSON 1.1 call.
    target: Option<String>,
    method: hyper::Method,
    path: String,
    query: String,
    host: String,
    authorization: Option<String>,
    /// `x-amz-security-token`: the session token of temporary credentials. Never logged.
    security_token: Option<String>,
    content_type: Option<String>,
    /// `x-amz-user-agent` (the AWS SDKs send it with their app name), else `User-Agent`.
    user_agent: Option<String>,
}

impl Head {
    fn of(req: &Request<Incoming>) -> Self {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            target: header("x-amz-target"),
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().unwrap_or("").to_owned(),
            host: header("host").unwrap_or_else(|| "127.0.0.1".to_owned()),
            authorization: header("authorization"),
            security_token: header("x-amz-security-token"),
            content_type: header("content-type"),
            user_agent: header("x-amz-user-agent").or_else(|| header("user-agent")),
        }
    }

    /// A Dynatrace API token is present (the simulator accepts any non-empty one).
    fn has_api_token(&self) -> bool {
        self.authorization
            .as_deref()
            .is_some_and(|v| v.starts_with("Api-Token ") && v.len() > "Api-Token ".len())
    }

    /// An awsQuery call (STS): a form-encoded POST to `/` without `X-Amz-Target`. The control
    /// API's and Dynatrace's paths are not (a client may send their JSON as a form's type).
    fn is_query_call(&self) -> bool {
        self.method == hyper::Method::POST
            && self.path == "/"
            && self
                .content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    }

    fn signer(&self) -> Option<Signer> {
        Signer::parse(self.authorization.as_deref())
    }
}

/// Wall-clock seconds since the epoch: what credential expiry is measured in.
fn now_real() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The access key a call is counted under: its signature's, or `unsigned`.
fn key_of(signer: Option<&Signer>) -> &str {
    signer.map_or("unsigned", |s| s.access_key.as_str())
}

/// Counts a call under the access key that signed it.
fn count_key(st: &mut super::state::State, signer: Option<&Signer>) {
    *st.calls_by_key
        .entry(key_of(signer).to_owned())
        .or_default() += 1;
}

/// Counts a call answered ThrottlingException, per operation and per signing key.
fn count_throttled(st: &mut super::state::State, op: &str, key: &str) {
    *st.throttled.entry(op.to_owned()).or_default() += 1;
    *st.throttled_by_key.entry(key.to_owned()).or_default() += 1;
}

/// An STS call (awsQuery): counted under its `Action`, answered in XML.
fn sts_call(shared: &Shared, head: &Head, body: &Bytes) -> Response<Full<Bytes>> {
    let form = sts::parse_form(body);
    let signer = head.signer();
    let (status, xml) = {
        let mut st = shared.lock();
        let action = form.get("Action").cloned().unwrap_or_default();
        *st.calls.entry(action).or_default() += 1;
        count_key(&mut st, signer.as_ref());
        let id = st.new_id();
        sts::handle(
            &mut st,
            &shared.options,
            signer.as_ref(),
            &form,
            now_real(),
            &id,
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(xml)))
        .expect("an XML response is valid")
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let head = Head::of(&req);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = ApiError::serialization("the request body is too large or was cut off");
            return Ok(error_response(&e, "0"));
        }
    };
    match &head.target {
        Some(target) => aws_call(shared, target, &head, &body).await,
        None if head.is_query_call() => Ok(sts_call(shared, &head, &body)),
        None => Ok(http_call(shared, &head, &body).await),
    }
}

/// A request without `X-Amz-Target`: the Dynatrace APIs, the registry, the control API.
async fn http_call(shared: &Shared, head: &Head, body: &Bytes) -> Response<Full<Bytes>> {
    let (path, method) = (head.path.as_str(), &head.method);
    let authorized = head.has_api_token();
    if path == "/api/v2/events/ingest" && method == hyper::Method::POST {
        return ingest_event(shared, authorized, body);
    }
    if path == "/api/v2/activeGates" && method == hyper::Method::GET {
        return super::dynatrace::active_gates(shared, authorized, &head.query).await;
    }
    if path == "/api/v1/deployment/installer/gateway/unix/latest/metainfo" {
        return latest_gateway_version(shared, authorized);
    }
    if path == "/token" {
        return super::registry::token();
    }
    if path.starts_with("/v2/") {
        return registry_call(shared, head);
    }
    if path.starts_with("/sim/v1/") {
        let (status, v) = control::handle(shared, method, path, body);
        return Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .expect("a JSON response is valid");
    }
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .body(Full::new(Bytes::from_static(b"not found")))
        .expect("a static response is valid")
}

/// Dynatrace's installer metainfo: the latest ActiveGate version published.
fn latest_gateway_version(shared: &Shared, authorized: bool) -> Response<Full<Bytes>> {
    let latest = shared.lock().latest_gateway_version.clone();
    let (status, body) = match (authorized, latest) {
        (false, _) => (
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": {"code": 401, "message": "Missing authorization parameter."}}),
        ),
        (true, None) => (
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {"code": 404, "message": "No version published"}}),
        ),
        (true, Some(v)) => (
            StatusCode::OK,
            serde_json::json!({"latestGatewayVersion": v}),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a JSON response is valid")
}

/// The OCI registry, after the faults injected under the operation name `Registry`.
fn registry_call(shared: &Shared, head: &Head) -> Response<Full<Bytes>> {
    // Faults under the operation name `Registry`: 429 with Retry-After, as registries rate-limit.
    let throttled = {
        let mut st = shared.lock();
        *st.calls.entry("Registry".into()).or_default() += 1;
        st.faults
            .get("Registry")
            .is_some_and(|f| f.throttle > 0.0 && fastrand::f64() < f.throttle)
    };
    if throttled {
        return Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header("retry-after", "1")
            .body(Full::new(Bytes::from_static(
                b"{\"errors\":[{\"code\":\"TOOMANYREQUESTS\"}]}",
            )))
            .expect("a static response is valid");
    }
    let req = super::registry::RegistryRequest {
        method: &head.method,
        path: &head.path,
        query: &head.query,
        authorization: head.authorization.as_deref(),
        host: &head.host,
    };
    super::registry::handle(&shared.lock(), &req)
}

/// What happens to an AWS JSON 1.1 call before it reaches the state: refused for its
/// signer, throttled by ECS's buckets, or let through to the injected faults.
enum Admission {
    Refused(ApiError),
    Throttled,
    Admitted(Option<Fault>),
}

/// An AWS JSON 1.1 call (`X-Amz-Target: <service>.<operation>`): counted, its signer
/// checked, ECS's bucket drawn from, faults applied, then run against the state.
async fn aws_call(
    shared: &Shared,
    target: &str,
    head: &Head,
    body: &Bytes,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (service, op) = target.split_once('.').unwrap_or((target, ""));
    let signer = head.signer();
    let write = (service == ECS && is_write(op)).then(|| WriteCall {
        time: shared.clock.now(),
        operation: op.to_owned(),
        resource: resource_of(body),
        user_agent: head.user_agent.clone().unwrap_or_default(),
        access_key: signer
            .as_ref()
            .map(|s| s.access_key.clone())
            .unwrap_or_default(),
    });
    let (admission, request_id) = {
        let mut st = shared.lock();
        *st.calls.entry(op.to_owned()).or_default() += 1;
        count_key(&mut st, signer.as_ref());
        if let Some(w) = write {
            if st.write_calls.len() >= WRITE_CALLS_KEPT {
                st.write_calls.pop_front();
            }
            st.write_calls.push_back(w);
        }
        // AWS authenticates before it throttles: a refused caller takes no token.
        let checked = sts::check_caller(
            &st,
            &shared.options,
            signer.as_ref(),
            head.security_token.as_deref(),
            now_real(),
        );
        let admission = match checked {
            Err(e) => Admission::Refused(e),
            Ok(()) if service == ECS && !shared.take_token(op) => {
                count_throttled(&mut st, op, key_of(signer.as_ref()));
                Admission::Throttled
            }
            Ok(()) => {
                Admission::Admitted(st.faults.get(op).or_else(|| st.faults.get("*")).cloned())
            }
        };
        let id = st.new_id();
        (
            admission,
            format!(
                "{}-{}-{}-{}-{}",
                &id[..8],
                &id[8..12],
                &id[12..16],
                &id[16..20],
                &id[20..32]
            ),
        )
    };
    match admission {
        Admission::Refused(e) => return Ok(error_response(&e, &request_id)),
        Admission::Throttled => return Ok(error_response(&throttling(), &request_id)),
        Admission::Admitted(Some(f)) => {
            let key = key_of(signer.as_ref());
            if let Some(refused) = inject(shared, &f, (service, op, key), &request_id).await? {
                return Ok(refused);
            }
        }
        Admission::Admitted(None) => {}
    }
    let request = match api::Request::parse(body) {
        Ok(r) => r,
        Err(e) => return Ok(error_response(&e, &request_id)),
    };
    let result = {
        let mut st = shared.lock();
        let now = shared.clock.now();
        match service {
            ECS => ecs::handle(op, request, &mut st, now),
            "Logs_20140328" => logs::handle(op, request, &mut st, shared.clock.now_millis()),
            _ => Err(ApiError::unknown_operation(target)),
        }
    };
    Ok(match result {
        Ok(v) => json_response(StatusCode::OK, &v, &request_id),
        Err(e) => error_response(&e, &request_id),
    })
}

/// The ECS service's prefix in `X-Amz-Target`.
const ECS: &str = "AmazonEC2ContainerServiceV20141113";

/// ECS operations that only read (Describe*, List*) are not writes; every other one is.
fn is_write(op: &str) -> bool {
    !(op.starts_with("Describe") || op.starts_with("List"))
}

/// The resource an ECS request names, most specific member first (a task set before
/// its service, a service before its cluster); empty when it names none or is no JSON.
fn resource_of(body: &[u8]) -> String {
    const MEMBERS: &[&str] = &[
        "resourceArn",
        "taskSet",
        "primaryTaskSet",
        "task",
        "service",
        "serviceName",
        "serviceDeploymentArn",
        "taskDefinition",
        "family",
        "clusterName",
        "cluster",
    ];
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    MEMBERS
        .iter()
        .find_map(|m| v.get(m).and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned()
}

/// ECS's answer to a call its bucket has no token for.
fn throttling() -> ApiError {
    ApiError::new(400, "ThrottlingException", "Rate exceeded")
}

/// Applies an injected fault: the latency, then by chance a dropped connection, a
/// throttling error (counted as throttled) or a 5xx; `None` lets the call through.
async fn inject(
    shared: &Shared,
    f: &Fault,
    (service, op, key): (&str, &str, &str),
    request_id: &str,
) -> Result<Option<Response<Full<Bytes>>>, Dropped> {
    if f.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
    }
    if f.drop > 0.0 && fastrand::f64() < f.drop {
        return Err(Dropped);
    }
    if f.throttle > 0.0 && fastrand::f64() < f.throttle {
        count_throttled(&mut shared.lock(), op, key);
        return Ok(Some(error_response(&throttling(), request_id)));
    }
    if f.error > 0.0 && fastrand::f64() < f.error {
        let code = if service.starts_with("Logs") {
            "ServiceUnavailableException"
        } else {
            "ServerException"
        };
        return Ok(Some(error_response(
            &ApiError::new(500, code, "Service unavailable. Please try again later."),
            request_id,
        )));
    }
    Ok(None)
}

/// Dynatrace's events API: an event needs `eventType` and `title`; the answer
/// carries a status per event, as Dynatrace's does.
fn ingest_event(shared: &Shared, authorized: bool, body: &Bytes) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, v: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .expect("a JSON response is valid")
    };
    if !authorized {
        return reply(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": {"code": 401, "message": "Missing authorization parameter."}}),
        );
    }
    let Ok(event) = serde_json::from_slice::<Value>(body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": {"code": 400, "message": "Could not map JSON"}}),
        );
    };
    let ok = event["eventType"].is_string() && event["title"].is_string();
    let status = if ok { "OK" } else { "INVALID_METADATA" };
    let now = shared.clock.now();
    let mut st = shared.lock();
    if ok {
        st.events.push(event);
    }
    st.record(now, "dynatrace-event", "events", status);
    reply(
        StatusCode::CREATED,
        serde_json::json!({"reportCount": 1, "eventIngestResults": [{"correlationId": format!("{:016x}", st.next_id), "status": status}]}),
    )
}
