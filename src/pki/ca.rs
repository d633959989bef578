//! CAs, the verification certificate, device certificates, CSR signing.

#[allow(unused_imports)]
use super::{Issued, KeyAlgorithm, PkiError, PkiResult, Subject};

/// A self-signed CA (the Vendor or Manufacturer CA), valid `validity_days`.
#[allow(unused_variables)]
pub fn create_ca(
    subject: &Subject,
    algorithm: KeyAlgorithm,
    validity_days: u32,
) -> PkiResult<Issued> {
    todo!()
}

/// The registration-code proof: a certificate with CN = `registration_code`,
/// a new key, signed by the CA (`RegisterCACertificate --verification-cert`).
#[allow(unused_variables)]
pub fn create_verification_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    registration_code: &str,
) -> PkiResult<Issued> {
    todo!()
}

/// A device ("factory") certificate and key signed by the CA.
#[allow(unused_variables)]
pub fn issue_device_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    subject: &Subject,
    algorithm: KeyAlgorithm,
    validity_days: u32,
) -> PkiResult<Issued> {
    todo!()
}

/// Signs a CSR with the CA: subject and public key from the CSR (whose
/// signature is checked first), validity `validity_days`. Returns the PEM.
#[allow(unused_variables)]
pub fn sign_csr(
    csr_pem: &str,
    ca_cert_pem: &str,
    ca_key_pem: &str,
    validity_days: u32,
) -> PkiResult<String> {
    todo!()
}
