//! activegate-lifecycle: keeps Dynatrace ActiveGate running on AWS ECS Fargate,
//! current and healthy.
//!
//! The module plan and which module may use which are in the project's design
//! notes; in short: `model` (types, no I/O) ← `translate` (pure) ← `config`.

pub mod config;
pub mod daemon;
pub mod ecs;
pub mod health;
pub mod mesh;
pub mod model;
pub mod rollout;
pub mod sim;
pub mod status;
pub mod translate;
pub mod versions;

use std::io::Read;
use std::path::Path;

/// Installs rustls's ring provider as the process default, once. reqwest is
/// built without a provider of its own (one TLS stack: rustls + ring), and
/// panics when building a client before one is installed; every client the
/// library builds calls this first.
pub fn ensure_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client builder with the project's TLS stack installed, a timeout
/// and at most five redirects: the one place the library makes HTTP clients.
pub fn http_client(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    ensure_tls_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(5))
}

/// Why [`body_limited`] returned no body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection failed while the body was read. The message is the whole chain on one
    /// line (callers put it into a one-line detail), so the error is not also a `source`.
    #[error("{}", error_chain(.error))]
    Read { error: reqwest::Error },
    /// The body went past the limit; reading stopped there.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// A response body, refused past `limit` bytes without reading more than one chunk beyond it
/// (a hostile or broken server cannot make the daemon buffer gigabytes).
pub async fn body_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|error| BodyError::Read { error })?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its sources, one line: `outer: inner: innermost`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("it is larger than allowed ({0} bytes or more)")]
    TooLarge(u64),
}

/// The prefix that makes a "path" name an environment variable instead of a file:
/// `--config env:ACTIVEGATE_LIFECYCLE_CONFIG` or `manifest = "env:ACTIVEGATE_MANIFEST"`.
/// On Fargate, ECS fills such variables from SSM Parameter Store (the task definition's
/// `secrets`), so the daemon's image needs no config baked in and no S3. A file whose
/// name really starts with `env:` is reached as `./env:…`.
pub const ENV_PREFIX: &str = "env:";

/// Reads a whole file (or, for `env:NAME`, the variable `NAME`), refusing one larger than
/// `limit` bytes without reading more than `limit + 1` of it (a 50 MB file costs no 50 MB
/// of memory).
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    if let Some(name) = path.to_str().and_then(|p| p.strip_prefix(ENV_PREFIX)) {
        let value = std::env::var_os(name).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the environment variable {name} is not set"),
            )
        })?;
        let bytes = value.into_encoded_bytes();
        if bytes.len() as u64 > limit {
            return Err(ReadError::TooLarge(bytes.len() as u64));
        }
        return Ok(bytes);
    }
    let file = std::fs::File::open(path)?;
    let size_hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size_hint > limit {
        return Err(ReadError::TooLarge(size_hint));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size_hint).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}
