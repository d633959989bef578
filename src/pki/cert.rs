//! Parsing certificates, certificateIds, subjects, signature checks.

#[allow(unused_imports)]
use super::{PkiError, PkiResult, Subject};

/// What the walkthrough needs to know of a certificate.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    /// certificateId: lowercase hex SHA-256 of the DER.
    pub id: String,
    pub subject: Subject,
    pub issuer: Subject,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    pub is_ca: bool,
    /// `EC P-256`, `RSA 2048`, ...
    pub key_algorithm: String,
    /// DER of the SubjectPublicKeyInfo.
    #[serde(skip)]
    pub public_key_der: Vec<u8>,
    /// Serial number, lowercase hex.
    pub serial_hex: String,
}

/// AWS IoT's certificateId: lowercase hex SHA-256 of the certificate DER.
#[allow(unused_variables)]
pub fn certificate_id(der: &[u8]) -> String {
    todo!()
}

/// certificateId of the first certificate in a PEM text.
#[allow(unused_variables)]
pub fn certificate_id_from_pem(pem: &str) -> PkiResult<String> {
    todo!()
}

/// All certificates in a PEM text, as DER, in order.
#[allow(unused_variables)]
pub fn pem_certificates(pem: &str) -> PkiResult<Vec<Vec<u8>>> {
    todo!()
}

/// Parses the first certificate of a PEM text.
#[allow(unused_variables)]
pub fn parse_cert(pem: &str) -> PkiResult<CertInfo> {
    todo!()
}

/// Parses a certificate from DER.
#[allow(unused_variables)]
pub fn parse_cert_der(der: &[u8]) -> PkiResult<CertInfo> {
    todo!()
}

/// True when `cert_pem` is signed by `ca_cert_pem`'s key and names it as issuer.
#[allow(unused_variables)]
pub fn verify_signed_by(cert_pem: &str, ca_cert_pem: &str) -> PkiResult<bool> {
    todo!()
}

/// DER SubjectPublicKeyInfo of a PKCS#8 private key PEM.
#[allow(unused_variables)]
pub fn public_key_der_of_key(key_pem: &str) -> PkiResult<Vec<u8>> {
    todo!()
}
