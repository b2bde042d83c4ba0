//! Device and CA certificates and the registration code.

use palisade_engine::{Engine, Scope};
use palisade_model::Request;

use super::{encode, encode_empty, Handled};

pub(super) async fn dispatch(engine: &Engine, scope: &Scope, request: Request) -> Handled {
    Ok(match request {
        Request::GetRegistrationCode(i) => encode(engine.get_registration_code(scope, i).await),
        Request::RegisterCACertificate(i) => encode(engine.register_ca_certificate(scope, i).await),
        Request::DescribeCACertificate(i) => encode(engine.describe_ca_certificate(scope, i).await),
        Request::ListCACertificates(i) => encode(engine.list_ca_certificates(scope, i).await),
        Request::UpdateCACertificate(i) => {
            encode_empty(engine.update_ca_certificate(scope, i).await)
        }
        Request::DeleteCACertificate(i) => encode(engine.delete_ca_certificate(scope, i).await),
        Request::RegisterCertificate(i) => encode(engine.register_certificate(scope, i).await),
        Request::RegisterCertificateWithoutCA(i) => {
            encode(engine.register_certificate_without_ca(scope, i).await)
        }
        Request::CreateKeysAndCertificate(i) => {
            encode(engine.create_keys_and_certificate(scope, i).await)
        }
        Request::CreateCertificateFromCsr(i) => {
            encode(engine.create_certificate_from_csr(scope, i).await)
        }
        Request::DescribeCertificate(i) => encode(engine.describe_certificate(scope, i).await),
        Request::ListCertificates(i) => encode(engine.list_certificates(scope, i).await),
        Request::ListCertificatesByCA(i) => encode(engine.list_certificates_by_ca(scope, i).await),
        Request::UpdateCertificate(i) => encode_empty(engine.update_certificate(scope, i).await),
        Request::DeleteCertificate(i) => encode_empty(engine.delete_certificate(scope, i).await),
        other => return Err(other),
    })
}
