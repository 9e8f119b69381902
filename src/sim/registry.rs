//! A small OCI registry (distribution API v2, read-only): tags published
//! through the control API, listed at `/v2/<name>/tags/list` with `n`/`last`
//! pagination and `Link` headers, resolved to a digest at
//! `/v2/<name>/manifests/<reference>`; optionally behind the anonymous
//! bearer-token flow (`/token`), as public registries are.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::state::State;

/// One published tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryTag {
    pub tag: String,
    pub digest: String,
    /// Simulated seconds since the epoch.
    pub pushed_at: u64,
}

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The manifest body served for a tag; its SHA-256 is the tag's digest.
pub fn manifest_body(repository: &str, tag: &str) -> String {
    json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [],
        "annotations": {
            "org.opencontainers.image.ref.name": tag,
            "org.opencontainers.image.source": repository,
        },
    })
    .to_string()
}

pub fn digest_of(body: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Publishes (or moves) a tag; returns its digest.
pub fn publish(
    st: &mut State,
    repository: &str,
    tag: &str,
    digest: Option<&str>,
    now: f64,
) -> String {
    let digest = digest.map_or_else(|| digest_of(&manifest_body(repository, tag)), str::to_owned);
    let tags = st.registry.entry(repository.to_owned()).or_default();
    tags.retain(|t| t.tag != tag);
    tags.push(RegistryTag {
        tag: tag.to_owned(),
        digest: digest.clone(),
        pushed_at: now as u64,
    });
    st.record(
        now,
        "registry-tag",
        &format!("{repository}:{tag}"),
        digest.clone(),
    );
    digest
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "errors": [{ "code": code, "message": message, "detail": {} }] });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a JSON response is valid")
}

/// The token `/token` hands out.
pub const TOKEN: &str = "sim-registry-token";

/// Answers `GET /token`.
pub fn token() -> Response<Full<Bytes>> {
    let body = json!({ "token": TOKEN, "access_token": TOKEN, "expires_in": 300 });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a JSON response is valid")
}

/// A request to the registry: what `handle` needs of it.
pub struct RegistryRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub authorization: Option<&'a str>,
    /// `host:port` the client used, for the token realm.
    pub host: &'a str,
}

/// Answers a `/v2/...` request.
pub fn handle(st: &State, req: &RegistryRequest<'_>) -> Response<Full<Bytes>> {
    let Some(rest) = req.path.strip_prefix("/v2/") else {
        return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "not a registry path");
    };
    if st.registry_auth && req.authorization != Some(&format!("Bearer {TOKEN}")) {
        return challenge(req, rest);
    }
    if rest.is_empty() {
        return Response::builder()
            .status(StatusCode::OK)
            .header("docker-distribution-api-version", "registry/2.0")
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("a static response is valid");
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return tags_list(st, req, name);
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return manifest(st, req, name, reference);
    }
    error(
        StatusCode::NOT_FOUND,
        "UNSUPPORTED",
        "not supported by the simulator's registry",
    )
}

/// 401 with the bearer challenge that names the token endpoint and the repository
/// (`rest` is the path after `/v2/`).
fn challenge(req: &RegistryRequest<'_>, rest: &str) -> Response<Full<Bytes>> {
    let name = rest
        .split("/tags/")
        .next()
        .unwrap_or(rest)
        .split("/manifests/")
        .next()
        .unwrap_or(rest);
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    let challenge = format!(
        "Bearer realm=\"http://{}/token\",service=\"sim-registry\",scope=\"repository:{name}:pull\"",
        req.host
    );
    if let Ok(v) = challenge.parse() {
        r.headers_mut().insert("www-authenticate", v);
    }
    r
}

/// `GET /v2/<name>/tags/list`, paged by `n` and `last` with a `Link` to the next page.
fn tags_list(st: &State, req: &RegistryRequest<'_>, name: &str) -> Response<Full<Bytes>> {
    let Some(tags) = st.registry.get(name) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
    };
    let param = |k: &str| {
        req.query
            .split('&')
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
    };
    let n: usize = param("n")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(usize::MAX);
    let start = param("last").map_or(0, |last| {
        tags.iter()
            .position(|t| t.tag == last)
            .map_or(tags.len(), |i| i + 1)
    });
    let page: Vec<&String> = tags.iter().skip(start).take(n).map(|t| &t.tag).collect();
    let body = json!({ "name": name, "tags": page });
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json");
    if start + page.len() < tags.len()
        && let Some(last) = page.last()
    {
        builder = builder.header(
            "link",
            format!("</v2/{name}/tags/list?n={n}&last={last}>; rel=\"next\""),
        );
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a JSON response is valid")
}

/// `HEAD`/`GET /v2/<name>/manifests/<tag or digest>` with `Docker-Content-Digest`.
fn manifest(
    st: &State,
    req: &RegistryRequest<'_>,
    name: &str,
    reference: &str,
) -> Response<Full<Bytes>> {
    let found = st.registry.get(name).and_then(|tags| {
        tags.iter()
            .find(|t| t.tag == reference || t.digest == reference)
    });
    let Some(t) = found else {
        return error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        );
    };
    let body = manifest_body(name, &t.tag);
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", INDEX_MEDIA_TYPE)
        .header("docker-content-digest", &t.digest)
        .header("content-length", body.len());
    let body = if req.method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    builder
        .body(Full::new(body))
        .expect("a manifest response is valid")
}
