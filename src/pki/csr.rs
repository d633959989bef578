//! Certificate signing requests: what a device sends in step 3b
//! (`/cert-rotation/create-man-cert/<serial>/rqst`, `{"csr": PEM}`).

use super::ca::generate_key;
use super::cert::pem_blocks;
use super::subject::{from_x509_name, to_distinguished_name};
use super::{KeyAlgorithm, PkiError, PkiResult, Subject};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

/// A parsed CSR whose self-signature has been verified.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    /// The requested subject; CN must be the device's serial.
    pub subject: Subject,
    /// DER of the SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
}

/// Creates a CSR with a new key. Returns `(csr_pem, key_pem)`.
pub fn create_csr(subject: &Subject, algorithm: KeyAlgorithm) -> PkiResult<(String, String)> {
    let key = generate_key(algorithm)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = to_distinguished_name(subject)?;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| PkiError::Generate(format!("CSR: {e}")))?;
    let csr_pem = csr
        .pem()
        .map_err(|e| PkiError::Generate(format!("CSR PEM: {e}")))?;
    Ok((csr_pem, key.serialize_pem()))
}

/// Parses a CSR and verifies its signature; a bad signature is `PkiError::Signature`.
///
/// The signature check is what proves the requester holds the private key of
/// the public key it asks to be certified.
pub fn parse_csr(csr_pem: &str) -> PkiResult<ParsedCsr> {
    let der = parse_csr_der(csr_pem)?;
    let csr = csr_from_der(&der)?;
    csr.verify_signature().map_err(|e| {
        PkiError::Signature(format!(
            "the CSR's self-signature does not verify ({e}); the CSR was altered or not signed with its own key"
        ))
    })?;
    let info = &csr.certification_request_info;
    Ok(ParsedCsr {
        subject: from_x509_name(&info.subject)?,
        public_key_der: info.subject_pki.raw.to_vec(),
    })
}

/// The DER of the CSR in a PEM text (`CERTIFICATE REQUEST`, or the older
/// `NEW CERTIFICATE REQUEST` label some tools write).
pub(crate) fn parse_csr_der(csr_pem: &str) -> PkiResult<Vec<u8>> {
    pem_blocks(
        csr_pem,
        &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
        "certificate signing request",
    )?
    .into_iter()
    .next()
    .ok_or_else(|| PkiError::Pem {
        expected: "certificate signing request",
        reason: "no `-----BEGIN CERTIFICATE REQUEST-----` block found".into(),
    })
}

/// x509-parser's view of a CSR DER; trailing bytes are refused.
pub(crate) fn csr_from_der(der: &[u8]) -> PkiResult<X509CertificationRequest<'_>> {
    match X509CertificationRequest::from_der(der) {
        Ok(([], csr)) => Ok(csr),
        Ok((rest, _)) => Err(PkiError::Invalid {
            what: "certificate signing request",
            reason: format!("{} unexpected bytes after the CSR", rest.len()),
        }),
        Err(e) => Err(PkiError::Invalid {
            what: "certificate signing request",
            reason: format!("not a DER PKCS#10 request ({e})"),
        }),
    }
}
