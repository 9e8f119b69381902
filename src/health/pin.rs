//! Certificate pinning: the SHA-256 of the server certificate's public key
//! (SubjectPublicKeyInfo). A task's IP is in no certificate's names, so a pin
//! is how a self-signed ActiveGate certificate can be trusted.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};

/// One DER element: tag, content, the whole element, and what follows it.
type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn tlv(input: &[u8]) -> Option<Element<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first & 0x80 == 0 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = input.get(2..2 + count)?;
        (
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            2 + count,
        )
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    Some((tag, &whole[header..], whole, &input[end..]))
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate.
pub fn spki(cert_der: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _, _) = tlv(cert_der)? else {
        return None;
    };
    let (0x30, tbs, _, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // version [0] is optional
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.3;
    }
    // serial, signature algorithm, issuer, validity, subject
    for _ in 0..5 {
        rest = tlv(rest)?.3;
    }
    let (0x30, _, whole, _) = tlv(rest)? else {
        return None;
    };
    Some(whole)
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo.
pub fn spki_sha256(cert_der: &[u8]) -> Option<[u8; 32]> {
    let d = ring::digest::digest(&ring::digest::SHA256, spki(cert_der)?);
    d.as_ref().try_into().ok()
}

/// Accepts a server whose certificate carries the pinned public key; checks
/// the handshake signatures as usual; ignores names and issuers.
#[derive(Debug)]
pub struct PinVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    pub fn new(pin: [u8; 32], provider: Arc<CryptoProvider>) -> Self {
        Self { pin, provider }
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match spki_sha256(end_entity) {
            Some(h) if h == self.pin => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(Error::General(
                "the certificate's public key does not match the pinned SHA-256".into(),
            )),
            None => Err(Error::General(
                "cannot read the certificate's public key".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spki_of_a_generated_certificate_is_its_public_key() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let spki_der = spki(cert.der()).expect("SPKI");
        assert_eq!(
            spki_der,
            rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        );
        assert!(spki(b"\x30\x03\x02\x01").is_none());
        assert!(spki(&[]).is_none());
    }
}
