//! X.509 for the walkthrough: the Vendor and Manufacturer CAs, the
//! registration-code verification certificate, device certificates, CSRs,
//! and AWS IoT's certificateId.
//!
//! Creation uses rcgen; parsing and signature checks use x509-parser.
//! Layout: `ca.rs` (CAs, verification cert, device certs, CSR signing),
//! `csr.rs` (CSR create/parse/verify), `cert.rs` (parsing, ids, signature
//! checks), `subject.rs` (distinguished names both ways).

mod ca;
mod cert;
mod csr;
mod subject;
#[cfg(test)]
mod tests;

pub use ca::*;
pub use cert::*;
pub use csr::*;

use serde::{Deserialize, Serialize};

/// What can go wrong in PKI work. Messages name the input that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("not a PEM {expected}: {reason}")]
    Pem {
        expected: &'static str,
        reason: String,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("signature check failed: {0}")]
    Signature(String),
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

/// Result alias for PKI operations.
pub type PkiResult<T> = Result<T, PkiError>;

/// Key type for a CA or a device key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (the default: fast handshakes).
    #[default]
    #[serde(rename = "EC_P256", alias = "ecdsa-p256", alias = "EC")]
    EcdsaP256,
    /// RSA 2048 with SHA-256 (what the sample uses).
    #[serde(rename = "RSA_2048", alias = "rsa-2048", alias = "RSA")]
    Rsa2048,
}

/// A distinguished name with the fields the sample's `ca_list.json` uses.
/// Serialized with X.509's short names (`CN`, `C`, `O`, `OU`, `ST`, `L`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Subject {
    #[serde(rename = "CN", default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(rename = "C", default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(rename = "O", default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(rename = "OU", default, skip_serializing_if = "Option::is_none")]
    pub organizational_unit: Option<String>,
    #[serde(rename = "ST", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(rename = "L", default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(
        rename = "serialNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub serial_number: Option<String>,
}

/// A freshly issued certificate and its private key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// certificateId of `cert_pem`.
    pub id: String,
    pub cert_pem: String,
    /// PKCS#8 PEM. Handle with care: goes only to the parameter store
    /// (sealed) or a device's own credential folder.
    pub key_pem: String,
}
