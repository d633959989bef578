//! What careful firmware checks and computes, without any IO: a fresh key
//! pair and CSR for the manufacturer cert, and the checks a returned cert
//! must pass before the device trusts its future to it.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a key, CSR or returned certificate is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareError {
    #[error("could not create a key pair or CSR: {0}")]
    KeyGeneration(String),
    #[error("the stored manufacturer key is unreadable ({0}); delete manufacturer.key.pem to start 3b over with a new key")]
    BadStoredKey(String),
    #[error("the certificate is not valid PEM/X.509: {0}")]
    BadCertificate(String),
    #[error("the Manufacturer CA certificate (manufacturer-ca.pem) is unreadable: {0}; run `jitpilot init` to rewrite it")]
    BadCa(String),
    #[error("the certificate's public key is not this device's new key: refusing to use it")]
    KeyMismatch,
    #[error("the certificate is not signed by the Manufacturer CA: refusing to use it")]
    NotSignedByManufacturerCa,
    #[error("cert_id {given} is not the certificate's id {actual} (hex SHA-256 of its DER)")]
    WrongCertId { given: String, actual: String },
    #[error("the certificate's CN is {found:?}, expected the serial {expected}")]
    WrongSubject { expected: String, found: String },
}

/// A new manufacturer key and its CSR, both PEM.
#[derive(Debug, Clone)]
pub struct KeyAndCsr {
    /// PKCS#8 private key, PEM. Never leaves the credential folder.
    pub key_pem: String,
    /// PKCS#10 request with CN = serial, PEM.
    pub csr_pem: String,
}

/// Generates a NEW EC P-256 key pair (never the vendor key: the cloud refuses
/// a CSR that reuses it) and a CSR with CN = serial.
pub fn new_key_and_csr(serial: &str) -> Result<KeyAndCsr, FirmwareError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| FirmwareError::KeyGeneration(e.to_string()))?;
    let csr_pem = csr_for_key(serial, &key)?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_pem,
    })
}

/// A CSR for an existing key: used when a crash left the key on disk but not
/// its CSR, so the resent request still carries the key that was saved.
pub fn csr_for_stored_key(serial: &str, key_pem: &str) -> Result<String, FirmwareError> {
    let key = KeyPair::from_pem(key_pem).map_err(|e| FirmwareError::BadStoredKey(e.to_string()))?;
    csr_for_key(serial, &key)
}

fn csr_for_key(serial: &str, key: &KeyPair) -> Result<String, FirmwareError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, serial);
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(key)
        .map_err(|e| FirmwareError::KeyGeneration(e.to_string()))?;
    csr.pem()
        .map_err(|e| FirmwareError::KeyGeneration(e.to_string()))
}

/// certificateId as AWS IoT computes it: lowercase hex SHA-256 of the DER.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The DER of the first certificate in a PEM text.
pub fn first_cert_der(pem: &str) -> Result<Vec<u8>, FirmwareError> {
    use rustls_pki_types::pem::PemObject;
    let mut certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes());
    match certs.next() {
        Some(Ok(der)) => Ok(der.to_vec()),
        Some(Err(e)) => Err(FirmwareError::BadCertificate(e.to_string())),
        None => Err(FirmwareError::BadCertificate(
            "no CERTIFICATE block found".into(),
        )),
    }
}

/// The CN of a certificate (used by `sim-device` to default the serial).
pub fn common_name(cert_pem: &str) -> Result<String, FirmwareError> {
    let der = first_cert_der(cert_pem)?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| FirmwareError::BadCertificate(e.to_string()))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    cn.ok_or_else(|| FirmwareError::BadCertificate("the certificate has no CN".into()))
}

/// The checks before a returned manufacturer cert is used: it parses, its
/// public key is the device's new key, it is signed by the Manufacturer CA,
/// its CN is the serial, and `cert_id` is its real certificateId.
/// Returns the certificateId.
pub fn verify_manufacturer_cert(
    serial: &str,
    cert_pem: &str,
    cert_id: Option<&str>,
    key_pem: &str,
    manufacturer_ca_pem: &str,
) -> Result<String, FirmwareError> {
    let der = first_cert_der(cert_pem)?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| FirmwareError::BadCertificate(e.to_string()))?;

    let key = KeyPair::from_pem(key_pem).map_err(|e| FirmwareError::BadStoredKey(e.to_string()))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(FirmwareError::KeyMismatch);
    }

    let ca_der =
        first_cert_der(manufacturer_ca_pem).map_err(|e| FirmwareError::BadCa(e.to_string()))?;
    let (_, ca) =
        X509Certificate::from_der(&ca_der).map_err(|e| FirmwareError::BadCa(e.to_string()))?;
    // The issuer name must be the CA's subject AND the signature must verify
    // with the CA's key: the name alone is trivially forged.
    if cert.issuer() != ca.subject() || cert.verify_signature(Some(ca.public_key())).is_err() {
        return Err(FirmwareError::NotSignedByManufacturerCa);
    }

    let found = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    if found != serial {
        return Err(FirmwareError::WrongSubject {
            expected: serial.to_string(),
            found,
        });
    }

    let actual = certificate_id(&der);
    if let Some(given) = cert_id {
        if given != actual {
            return Err(FirmwareError::WrongCertId {
                given: given.to_string(),
                actual,
            });
        }
    }
    Ok(actual)
}
