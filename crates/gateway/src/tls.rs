//! The gateway's TLS: its server certificate (given, or made from a gateway CA on first
//! start) and a client certificate check that asks for a certificate and its proof of
//! the private key, leaving the decision to the registry, as AWS IoT Core does: a device
//! certificate is trusted because it is registered and ACTIVE, not because of its chain.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::GatewayError;

/// A CA and its key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub certificate_pem: String,
    pub key_pem: String,
}

/// Makes the gateway CA devices are told to trust (`mqtt-ca.pem`).
pub fn make_authority() -> Result<Authority, GatewayError> {
    let key = rcgen::KeyPair::generate().map_err(tls_error)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Palisade gateway CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    let cert = params.self_signed(&key).map_err(tls_error)?;
    Ok(Authority {
        certificate_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a server certificate under `authority` for `hosts` (DNS names or IP
/// addresses). The chain returned is the server certificate then the CA.
pub fn issue_server_certificate(
    authority: &Authority,
    hosts: &[String],
) -> Result<(String, String), GatewayError> {
    let ca_key = rcgen::KeyPair::from_pem(&authority.key_pem).map_err(tls_error)?;
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&authority.certificate_pem, ca_key).map_err(tls_error)?;
    let key = rcgen::KeyPair::generate().map_err(tls_error)?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(tls_error)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Palisade gateway");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).map_err(tls_error)?;
    Ok((
        format!("{}{}", cert.pem(), authority.certificate_pem),
        key.serialize_pem(),
    ))
}

/// The TLS server configuration: `chain_pem` (server certificate first) and its key.
pub fn server_config(chain_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, GatewayError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| GatewayError::Tls(format!("the server certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(GatewayError::Tls(
            "the server certificate PEM holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| GatewayError::Tls(format!("the server key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(RegisteredCertificates {
        provider: provider.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls_error)?;
    // AWS IoT Core supports no session tickets; resumption would skip the client
    // certificate check of a certificate deactivated since.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

fn tls_error(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Tls(e.to_string())
}

/// Requires a client certificate and its proof of possession of the key; whether the
/// certificate may connect is the registry's answer, asked after the handshake.
#[derive(Debug)]
struct RegisteredCertificates {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for RegisteredCertificates {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
