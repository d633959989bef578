//! Certificate signing requests.

#[allow(unused_imports)]
use super::{KeyAlgorithm, PkiError, PkiResult, Subject};

/// A parsed CSR whose self-signature has been verified.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    pub subject: Subject,
    /// DER of the SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
}

/// Creates a CSR with a new key. Returns `(csr_pem, key_pem)`.
#[allow(unused_variables)]
pub fn create_csr(subject: &Subject, algorithm: KeyAlgorithm) -> PkiResult<(String, String)> {
    todo!()
}

/// Parses a CSR and verifies its signature; a bad signature is `PkiError::Signature`.
#[allow(unused_variables)]
pub fn parse_csr(csr_pem: &str) -> PkiResult<ParsedCsr> {
    todo!()
}
