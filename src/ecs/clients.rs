//! Building the SDK clients: region, endpoint, credentials, timeouts, one rustls stack.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::tls;

use super::Aws;

/// How the AWS clients are built and how hard calls are retried.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub region: String,
    /// An explicit endpoint (the simulator, a VPC endpoint); otherwise the SDK's
    /// resolution applies, including `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff; doubled per attempt, with jitter, capped at `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Per-attempt timeout.
    pub attempt_timeout: Duration,
    /// Fixed credentials instead of the default chain: for the simulator (the
    /// `demo` command and tests), never read from a config file.
    pub static_credentials: Option<(String, String)>,
}

impl ClientSettings {
    pub fn new(region: &str) -> Self {
        Self {
            region: region.to_owned(),
            endpoint_url: None,
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(20),
            static_credentials: None,
        }
    }
}

impl Aws {
    /// Builds the clients: region and endpoint from the settings, credentials from the
    /// default chain (environment, profile, ECS task role, instance role), one rustls stack.
    ///
    /// The SDK configuration (HTTP client with its connection pool and TLS roots, credentials
    /// with their cache) is built once per runtime and settings and shared: a daemon with 1,000
    /// targets otherwise held 1,000 copies of the system's root certificates and fetched its
    /// credentials 1,000 times. Call counts stay per `Aws`.
    pub async fn connect(settings: ClientSettings) -> Aws {
        type Key = (
            Option<tokio::runtime::Id>,
            String,
            Option<String>,
            Option<(String, String)>,
            Duration,
        );
        static SHARED: Mutex<Vec<(Key, aws_config::SdkConfig)>> = Mutex::new(Vec::new());
        let key: Key = (
            tokio::runtime::Handle::try_current().ok().map(|h| h.id()),
            settings.region.clone(),
            settings.endpoint_url.clone(),
            settings.static_credentials.clone(),
            settings.attempt_timeout,
        );
        let cached = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| c.clone());
        let config = match cached {
            Some(c) => c,
            None => {
                let c = Self::sdk_config(&settings).await;
                SHARED
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((key, c.clone()));
                c
            }
        };
        Aws {
            ecs: aws_sdk_ecs::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            settings,
            counts: Arc::default(),
        }
    }

    async fn sdk_config(settings: &ClientSettings) -> aws_config::SdkConfig {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .http_client(http)
            // Retries happen in `call`, where they are counted.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(settings.attempt_timeout)
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            );
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_ecs::config::Credentials::new(
                id, secret, None, None, "static",
            ));
        }
        loader.load().await
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }
}
