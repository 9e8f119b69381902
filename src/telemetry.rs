//! Logging: human-readable on a terminal, one JSON object per line for
//! CloudWatch Logs; filtered like `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line, for CloudWatch Logs.
    Json,
}

/// Why logging could not start. Shown as one line before the process exits 2, so the
/// parser's error is part of the message rather than a `source`.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("RUST_LOG=`{spec}` is not a valid filter: {error}")]
    BadFilter {
        spec: String,
        error: tracing_subscriber::filter::ParseError,
    },
    #[error("cannot start logging: {error}")]
    Install {
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Installs the global subscriber. Logs go to stderr; stdout is for documents.
/// `default` applies when RUST_LOG is not set.
pub fn init(format: LogFormat, default: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => filter,
            Err(error) => return Err(TelemetryError::BadFilter { spec, error }),
        },
        _ => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    result.map_err(|error| TelemetryError::Install { error })
}
