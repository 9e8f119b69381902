//! The simulator's certificate authority and the certificates of its fake
//! ActiveGates: one per task IP, signed by the CA (or, for the
//! "wrong certificate" behaviour, by a CA nobody trusts).

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a certificate")]
    Rcgen(#[from] rcgen::Error),
    #[error("cannot build a TLS configuration")]
    Rustls(#[from] rustls::Error),
}

/// A certificate authority that signs leaf certificates for task IPs.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    /// One key for every leaf certificate: like a real ActiveGate fleet with one
    /// custom certificate, so that a public-key pin holds for all tasks.
    leaf_key: KeyPair,
}

impl Authority {
    pub fn new(name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "activegate-lifecycle simulator");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        let pem = cert.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            pem,
            leaf_key: KeyPair::generate()?,
        })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// SHA-256 of the leaf certificates' public key (their SubjectPublicKeyInfo).
    pub fn leaf_pin(&self) -> [u8; 32] {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&self.leaf_key),
        );
        d.as_ref().try_into().expect("SHA-256 is 32 bytes")
    }

    /// A rustls server configuration for a fake ActiveGate at `ip`.
    pub fn server_config(&self, ip: IpAddr) -> Result<Arc<ServerConfig>, TlsError> {
        let key = &self.leaf_key;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, ip.to_string());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::IpAddress(ip)];
        let cert = params.signed_by(key, &self.issuer)?;
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(chain, key)?;
        Ok(Arc::new(config))
    }
}
