//! AWS errors, classified once: whether to retry lives here and nowhere else.

use aws_sdk_ecs::config::http::HttpResponse;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};

/// An AWS call that failed.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// AWS answered with an error.
    #[error("{op}: {code}: {message}")]
    Service {
        op: &'static str,
        code: String,
        message: String,
        status: u16,
    },
    /// No answer: connection refused or dropped, timeout, TLS failure.
    #[error("{op}: AWS did not answer: {detail}")]
    Transport { op: &'static str, detail: String },
    /// Our own request could not be built (a bug or a bad document).
    #[error("{op}: cannot build the request: {detail}")]
    Request { op: &'static str, detail: String },
    /// AWS answered without something it always sends.
    #[error("{op}: the answer has no {what}")]
    Incomplete {
        op: &'static str,
        what: &'static str,
    },
}

/// Error codes AWS uses for "slow down" and "try again".
const RETRIABLE_CODES: [&str; 7] = [
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServerException",
    "ServiceUnavailableException",
    "InternalFailure",
];

impl EcsError {
    /// Throttling, 5xx, timeouts and dropped connections are worth another try;
    /// anything the request itself got wrong is not.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Service { code, status, .. } => {
                RETRIABLE_CODES.contains(&code.as_str()) || *status >= 500 || *status == 429
            }
            Self::Transport { .. } => true,
            Self::Request { .. } | Self::Incomplete { .. } => false,
        }
    }

    pub fn is_throttling(&self) -> bool {
        matches!(self, Self::Service { code, status, .. } if code.contains("Throttl") || code == "RequestLimitExceeded" || *status == 429)
    }

    /// The AWS error code, if AWS answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Service { .. } if self.is_throttling() => "throttled",
            Self::Service { .. } if self.is_retriable() => "server",
            Self::Service { .. } => "client",
            Self::Transport { .. } => "transport",
            Self::Request { .. } => "request",
            Self::Incomplete { .. } => "incomplete",
        }
    }

    pub fn operation(&self) -> &'static str {
        match self {
            Self::Service { op, .. }
            | Self::Transport { op, .. }
            | Self::Request { op, .. }
            | Self::Incomplete { op, .. } => op,
        }
    }
}

/// Turns an SDK error (ECS or CloudWatch Logs) into ours.
pub fn classify<E>(op: &'static str, e: SdkError<E, HttpResponse>) -> EcsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let err = se.err();
            EcsError::Service {
                op,
                code: err.code().unwrap_or("Unknown").to_owned(),
                message: err.message().unwrap_or("").to_owned(),
                status,
            }
        }
        SdkError::ConstructionFailure(c) => EcsError::Request {
            op,
            detail: format!("{c:?}"),
        },
        other => EcsError::Transport {
            op,
            detail: crate::error_chain(&other),
        },
    }
}
