//! Parsing certificates, certificateIds, subjects, signature checks.

use super::subject::from_x509_name;
use super::{KeyAlgorithm, PkiError, PkiResult, Subject};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// What the walkthrough needs to know of a certificate.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    /// certificateId: lowercase hex SHA-256 of the DER.
    pub id: String,
    /// The subject: CN is the serial (= thing name = clientId) for device certs.
    pub subject: Subject,
    /// The issuer's name: the Vendor or Manufacturer CA for device certs.
    pub issuer: Subject,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// basicConstraints CA:TRUE.
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
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// certificateId of the first certificate in a PEM text. The DER is parsed
/// first: an id of something that is not a certificate would be meaningless.
pub fn certificate_id_from_pem(pem: &str) -> PkiResult<String> {
    let der = first_cert(pem)?;
    x509_from_der(&der)?;
    Ok(certificate_id(&der))
}

/// All certificates in a PEM text, as DER, in order.
pub fn pem_certificates(pem: &str) -> PkiResult<Vec<Vec<u8>>> {
    let ders = pem_blocks(pem, &["CERTIFICATE"], "certificate")?;
    if ders.is_empty() {
        return Err(no_block("CERTIFICATE"));
    }
    Ok(ders)
}

/// Parses the first certificate of a PEM text.
pub fn parse_cert(pem: &str) -> PkiResult<CertInfo> {
    let ders = pem_certificates(pem)?;
    let der = ders.first().ok_or_else(|| no_block("CERTIFICATE"))?;
    parse_cert_der(der)
}

/// Parses a certificate from DER.
pub fn parse_cert_der(der: &[u8]) -> PkiResult<CertInfo> {
    let x509 = x509_from_der(der)?;
    Ok(CertInfo {
        id: certificate_id(der),
        subject: from_x509_name(x509.subject())?,
        issuer: from_x509_name(x509.issuer())?,
        not_before: x509.validity().not_before.timestamp(),
        not_after: x509.validity().not_after.timestamp(),
        is_ca: x509.is_ca(),
        key_algorithm: key_algorithm_name(x509.public_key()),
        public_key_der: x509.public_key().raw.to_vec(),
        serial_hex: hex::encode(x509.raw_serial()),
    })
}

/// True when `cert_pem` is signed by `ca_cert_pem`'s key and names it as issuer.
///
/// `Ok(false)` means "not issued by this CA" (wrong issuer name or a
/// signature that does not verify); `Err` means an input could not be read.
pub fn verify_signed_by(cert_pem: &str, ca_cert_pem: &str) -> PkiResult<bool> {
    verify_der_signed_by(&first_cert(cert_pem)?, &first_cert(ca_cert_pem)?)
}

/// [`verify_signed_by`] on DER: `Ok(true)` when `cert_der` names `ca_der`'s
/// subject as issuer and its signature verifies with the CA's key.
pub fn verify_der_signed_by(cert_der: &[u8], ca_der: &[u8]) -> PkiResult<bool> {
    let cert = x509_from_der(cert_der)?;
    let ca = x509_from_der(ca_der)?;
    // Names are compared as encoded first, then by their text form: a CA
    // created elsewhere may encode the same name with other string types.
    let same_name = cert.issuer().as_raw() == ca.subject().as_raw()
        || cert.issuer().to_string() == ca.subject().to_string();
    if !same_name {
        return Ok(false);
    }
    match cert.verify_signature(Some(ca.public_key())) {
        Ok(()) => Ok(true),
        Err(X509Error::SignatureUnsupportedAlgorithm) => Err(PkiError::Signature(
            "the certificate's signature algorithm is not supported; use ECDSA P-256 or RSA with SHA-256"
                .into(),
        )),
        Err(_) => Ok(false),
    }
}

/// True for an X.509 v1 (or v2) certificate: no extensions, the way
/// pyOpenSSL makes one by default (the AWS sample's Lambda) and
/// `openssl x509 -req` without an extensions file. AWS IoT accepts them;
/// webpki does not. `false` for v3 and for what does not parse.
pub fn is_pre_v3(der: &[u8]) -> bool {
    x509_from_der(der)
        .map(|cert| cert.version() != x509_parser::x509::X509Version::V3)
        .unwrap_or(false)
}

/// The public key (the SubjectPublicKeyInfo's BIT STRING) of a v1/v2
/// certificate, to check a TLS handshake signature made with it; `None` for
/// a v3 certificate or what does not parse.
pub fn pre_v3_public_key(der: &[u8]) -> Option<Vec<u8>> {
    let cert = x509_from_der(der).ok()?;
    (cert.version() != x509_parser::x509::X509Version::V3)
        .then(|| cert.public_key().subject_public_key.data.to_vec())
}

/// DER SubjectPublicKeyInfo of a PKCS#8 private key PEM.
pub fn public_key_der_of_key(key_pem: &str) -> PkiResult<Vec<u8>> {
    use rcgen::PublicKeyData;
    let key = load_key_pair(key_pem)?;
    Ok(key.subject_public_key_info())
}

/// The [`KeyAlgorithm`] of a DER SubjectPublicKeyInfo, when it is one that
/// jitpilot issues (EC P-256, RSA 2048); `None` for any other key.
pub fn key_algorithm_of_spki(spki_der: &[u8]) -> Option<KeyAlgorithm> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).ok()?;
    match key_algorithm_name(&spki).as_str() {
        "EC P-256" => Some(KeyAlgorithm::EcdsaP256),
        "RSA 2048" => Some(KeyAlgorithm::Rsa2048),
        _ => None,
    }
}

// ---- crate-internal helpers shared by ca.rs and csr.rs ----------------------

/// Loads a private key PEM (PKCS#8, or SEC1/PKCS#1) into rcgen.
pub(crate) fn load_key_pair(key_pem: &str) -> PkiResult<rcgen::KeyPair> {
    if !key_pem.contains("PRIVATE KEY-----") {
        return Err(PkiError::Pem {
            expected: "private key",
            reason: "no `-----BEGIN PRIVATE KEY-----` block found".into(),
        });
    }
    rcgen::KeyPair::from_pem(key_pem).map_err(|e| PkiError::Invalid {
        what: "private key",
        reason: format!("{e}; expected an ECDSA P-256 or RSA key in PKCS#8 PEM"),
    })
}

/// The first certificate of a PEM text, as DER.
pub(crate) fn first_cert(pem: &str) -> PkiResult<Vec<u8>> {
    pem_certificates(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| no_block("CERTIFICATE"))
}

/// Parses DER into x509-parser's view; trailing bytes are refused.
pub(crate) fn x509_from_der(der: &[u8]) -> PkiResult<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(PkiError::Invalid {
            what: "certificate",
            reason: format!("{} unexpected bytes after the certificate", rest.len()),
        }),
        Err(e) => Err(PkiError::Invalid {
            what: "certificate",
            reason: format!("not a DER X.509 certificate ({e})"),
        }),
    }
}

/// The PEM blocks whose label is one of `labels`, decoded. Blocks with other
/// labels (a key next to a certificate) are skipped; a damaged block is an error.
pub(crate) fn pem_blocks(
    text: &str,
    labels: &[&str],
    expected: &'static str,
) -> PkiResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(text.as_bytes()) {
        let block = block.map_err(|e| PkiError::Pem {
            expected,
            reason: format!("{e}; check that the PEM text was copied whole"),
        })?;
        if labels.contains(&block.label.as_str()) {
            out.push(block.contents);
        }
    }
    Ok(out)
}

/// `EC P-256`, `RSA 2048`, ... for the TUI and `status`.
pub(crate) fn key_algorithm_name(spki: &SubjectPublicKeyInfo<'_>) -> String {
    match spki.parsed() {
        Ok(PublicKey::EC(_)) => {
            use x509_parser::oid_registry::{OID_EC_P256, OID_NIST_EC_P384, OID_NIST_EC_P521};
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(oid) if oid == OID_EC_P256 => "EC P-256".into(),
                Some(oid) if oid == OID_NIST_EC_P384 => "EC P-384".into(),
                Some(oid) if oid == OID_NIST_EC_P521 => "EC P-521".into(),
                Some(oid) => format!("EC {oid}"),
                None => "EC (unnamed curve)".into(),
            }
        }
        // x509-parser's RSA key_size is 0 without a leading zero byte:
        // count the modulus bytes ourselves.
        Ok(PublicKey::RSA(rsa)) => {
            let modulus = rsa.modulus;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            format!("RSA {}", significant * 8)
        }
        Ok(other) => format!("{} bits", other.key_size()),
        Err(_) => format!("unknown ({})", spki.algorithm.algorithm),
    }
}

fn no_block(label: &str) -> PkiError {
    PkiError::Pem {
        expected: "certificate",
        reason: format!("no `-----BEGIN {label}-----` block found"),
    }
}
