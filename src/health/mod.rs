//! HTTPS probes of ActiveGate tasks: `GET https://<task IP>:<port><path>`,
//! trusting a CA bundle, a pinned public key, or (only when asked) anything.
//! Knows nothing of ECS. [`environment`] asks the Dynatrace environment which ActiveGates
//! it sees connected.

pub mod environment;
pub mod load;
pub mod pin;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;

/// Whom a probe trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// CA certificates (PEM); the task's certificate must name its IP.
    CaBundle(Vec<u8>),
    /// SHA-256 of the certificate's public key.
    Pin([u8; 32]),
    /// Any certificate: only when configured explicitly.
    Insecure,
}

#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub port: u16,
    pub path: String,
    pub timeout: Duration,
    /// A 2xx answer must also contain this text, when set.
    pub body_match: Option<String>,
    pub trust: Trust,
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("the CA bundle holds no PEM certificate")]
    EmptyBundle,
    #[error("cannot build the HTTPS client")]
    Client(#[source] reqwest::Error),
    #[error("cannot build the TLS configuration")]
    Tls(#[source] rustls::Error),
}

/// Why one probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    Timeout,
    Connect(String),
    Tls(String),
    Status(u16),
    Body(String),
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Connect(e) => write!(f, "connection failed: {e}"),
            Self::Tls(e) => write!(f, "TLS failed: {e}"),
            Self::Status(s) => write!(f, "HTTP {s}"),
            Self::Body(b) => write!(f, "unexpected body: {b}"),
        }
    }
}

/// The outcome of one probe, with its latency.
#[derive(Debug, Clone)]
pub struct Probe {
    pub result: Result<(), ProbeFailure>,
    pub latency: Duration,
}

/// Probes tasks; cheap to clone.
#[derive(Clone)]
pub struct Prober {
    client: reqwest::Client,
    settings: Arc<ProbeSettings>,
    /// The run's probe slots and event-loop lateness (a load of its own until the daemon
    /// hands it the run's: [`Prober::with_load`]).
    load: Arc<load::Load>,
}

/// TLS sessions a prober keeps for resumption: more than a target's tasks during a rollout.
const SESSIONS_KEPT: usize = 16;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

impl Prober {
    /// The same prober, counting its probes against the run's `load`.
    pub fn with_load(mut self, load: Arc<load::Load>) -> Prober {
        self.load = load;
        self
    }

    /// The load this prober counts against.
    pub fn load(&self) -> &load::Load {
        &self.load
    }

    /// A slot for one probe of this run (waits while the run's maximum are out).
    pub async fn slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.load.probe_slot().await
    }

    pub fn new(settings: ProbeSettings) -> Result<Prober, HealthError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(HealthError::Tls)?;
        let tls = match &settings.trust {
            Trust::CaBundle(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = pem_certificates(pem);
                if certs.is_empty() {
                    return Err(HealthError::EmptyBundle);
                }
                for c in certs {
                    roots.add(c).map_err(HealthError::Tls)?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Pin(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pin::PinVerifier::new(*pin, provider())))
                .with_no_client_auth(),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAll(provider())))
                .with_no_client_auth(),
        };
        let mut tls = tls;
        // A target has a few tasks: rustls's default session cache (256 servers, allocated
        // up front) is 14 KiB per prober, a tenth of a 1,000-target daemon's heap.
        tls.resumption = rustls::client::Resumption::in_memory_sessions(SESSIONS_KEPT);
        let client = crate::http_client(settings.timeout)
            .use_preconfigured_tls(tls)
            .connect_timeout(settings.timeout)
            .pool_max_idle_per_host(0)
            .build()
            .map_err(HealthError::Client)?;
        Ok(Prober {
            client,
            settings: Arc::new(settings),
            load: Arc::default(),
        })
    }

    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// One `GET` of the health path on `ip`.
    pub async fn probe(&self, ip: &str) -> Probe {
        let s = &self.settings;
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        };
        let url = format!("https://{host}:{}{}", s.port, s.path);
        let started = Instant::now();
        let result = match self.client.get(&url).send().await {
            Err(e) => Err(classify(&e)),
            Ok(r) if !r.status().is_success() => Err(ProbeFailure::Status(r.status().as_u16())),
            Ok(r) => match &s.body_match {
                None => Ok(()),
                Some(m) => match r.text().await {
                    Ok(body) if body.contains(m.as_str()) => Ok(()),
                    Ok(body) => Err(ProbeFailure::Body(body.chars().take(80).collect())),
                    Err(e) => Err(classify(&e)),
                },
            },
        };
        Probe {
            result,
            latency: started.elapsed(),
        }
    }
}

fn classify(e: &reqwest::Error) -> ProbeFailure {
    if e.is_timeout() {
        return ProbeFailure::Timeout;
    }
    let chain = crate::error_chain(e);
    let mut tls = false;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        tls |= s.downcast_ref::<rustls::Error>().is_some()
            || text.contains("certificate")
            || text.contains("tls");
        source = s.source();
    }
    if tls {
        ProbeFailure::Tls(chain)
    } else {
        ProbeFailure::Connect(chain)
    }
}

/// Accepts every certificate (still checking handshake signatures).
#[derive(Debug)]
struct AcceptAll(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
