//! CAs, the verification certificate, device certificates, CSR signing.

use super::cert::{first_cert, load_key_pair, x509_from_der};
use super::csr::{csr_from_der, parse_csr_der};
use super::subject::{from_x509_name, to_distinguished_name};
use super::{Issued, KeyAlgorithm, PkiError, PkiResult, Subject};
use crate::pki::certificate_id;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// How far back `notBefore` is set: a device whose clock is a little behind
/// the cloud's must still accept a certificate issued just now.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Validity of the registration-code verification certificate: it is used
/// once, when the CA is registered.
const VERIFICATION_CERT_DAYS: u32 = 1;

/// A self-signed CA (the Vendor or Manufacturer CA), valid `validity_days`.
pub fn create_ca(
    subject: &Subject,
    algorithm: KeyAlgorithm,
    validity_days: u32,
) -> PkiResult<Issued> {
    let key = generate_key(algorithm)?;
    let mut params = base_params(subject, validity_days)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| PkiError::Generate(format!("CA certificate: {e}")))?;
    Ok(issued(cert, &key))
}

/// The registration-code proof: a certificate with CN = `registration_code`,
/// a new key, signed by the CA (`RegisterCACertificate --verification-cert`).
pub fn create_verification_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    registration_code: &str,
) -> PkiResult<Issued> {
    let issuer = load_issuer(ca_cert_pem, ca_key_pem)?;
    let key = generate_key(KeyAlgorithm::EcdsaP256)?;
    let subject = Subject {
        common_name: Some(registration_code.to_string()),
        ..Subject::default()
    };
    let mut params = base_params(&subject, VERIFICATION_CERT_DAYS)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| PkiError::Generate(format!("verification certificate: {e}")))?;
    Ok(issued(cert, &key))
}

/// A device ("factory") certificate and key signed by the CA.
pub fn issue_device_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    subject: &Subject,
    algorithm: KeyAlgorithm,
    validity_days: u32,
) -> PkiResult<Issued> {
    CaSigner::load(ca_cert_pem, ca_key_pem)?.issue_device_cert(subject, algorithm, validity_days)
}

/// A CA with its key, loaded and checked once to sign many certificates:
/// `init` issues a whole fleet's factory certificates with one.
pub struct CaSigner {
    issuer: Issuer<'static, KeyPair>,
}

impl CaSigner {
    /// Loads the CA: its certificate must be a CA's and the key its own.
    pub fn load(ca_cert_pem: &str, ca_key_pem: &str) -> PkiResult<CaSigner> {
        Ok(CaSigner {
            issuer: load_issuer(ca_cert_pem, ca_key_pem)?,
        })
    }

    /// A device ("factory") certificate and a new key, signed by this CA.
    pub fn issue_device_cert(
        &self,
        subject: &Subject,
        algorithm: KeyAlgorithm,
        validity_days: u32,
    ) -> PkiResult<Issued> {
        let key = generate_key(algorithm)?;
        let params = device_params(subject, validity_days)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| PkiError::Generate(format!("device certificate: {e}")))?;
        Ok(issued(cert, &key))
    }
}

/// Signs a CSR with the CA: subject and public key from the CSR (whose
/// signature is checked first), validity `validity_days`. Returns the PEM.
///
/// Extensions the CSR requests are ignored on purpose: the CA decides what a
/// device certificate may do (CA:FALSE, clientAuth), never the requester.
pub fn sign_csr(
    csr_pem: &str,
    ca_cert_pem: &str,
    ca_key_pem: &str,
    validity_days: u32,
) -> PkiResult<String> {
    let der = parse_csr_der(csr_pem)?;
    let csr = csr_from_der(&der)?;
    csr.verify_signature().map_err(|e| {
        PkiError::Signature(format!(
            "the CSR's self-signature does not verify ({e}); refusing to sign it"
        ))
    })?;
    let info = &csr.certification_request_info;
    let subject = from_x509_name(&info.subject)?;
    let public_key = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw).map_err(|e| {
        PkiError::Invalid {
            what: "CSR public key",
            reason: format!("{e}; use an ECDSA P-256 or RSA key"),
        }
    })?;
    let issuer = load_issuer(ca_cert_pem, ca_key_pem)?;
    let params = device_params(&subject, validity_days)?;
    let cert = params
        .signed_by(&public_key, &issuer)
        .map_err(|e| PkiError::Generate(format!("certificate from CSR: {e}")))?;
    Ok(cert.pem())
}

// ---- helpers ----------------------------------------------------------------

/// A new key pair of the requested type.
pub(crate) fn generate_key(algorithm: KeyAlgorithm) -> PkiResult<KeyPair> {
    let alg = match algorithm {
        KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
    };
    KeyPair::generate_for(alg).map_err(|e| PkiError::Generate(format!("key pair: {e}")))
}

/// Subject, validity and a random serial: what every certificate has.
fn base_params(subject: &Subject, validity_days: u32) -> PkiResult<CertificateParams> {
    if validity_days == 0 {
        return Err(PkiError::Invalid {
            what: "validity",
            reason: "validity_days must be at least 1".into(),
        });
    }
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = to_distinguished_name(subject)?;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + Duration::days(i64::from(validity_days));
    params.serial_number = Some(random_serial());
    Ok(params)
}

/// A device certificate's profile: CA:FALSE, TLS client authentication.
fn device_params(subject: &Subject, validity_days: u32) -> PkiResult<CertificateParams> {
    let mut params = base_params(subject, validity_days)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// 128 random bits, positive and of fixed length (RFC 5280 allows ≤ 20 octets).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Clear the sign bit and set the next one: a positive INTEGER that DER
    // encodes in exactly 16 octets.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// The CA as an rcgen issuer, after checking that the key belongs to the
/// certificate (a mismatch would issue certificates nobody can verify).
fn load_issuer(ca_cert_pem: &str, ca_key_pem: &str) -> PkiResult<Issuer<'static, KeyPair>> {
    use rcgen::PublicKeyData;
    let ca_der = first_cert(ca_cert_pem)?;
    let ca = x509_from_der(&ca_der)?;
    let key = load_key_pair(ca_key_pem)?;
    if key.subject_public_key_info() != ca.public_key().raw {
        return Err(PkiError::Invalid {
            what: "CA key",
            reason: "the private key does not belong to the CA certificate; pass the CA's own key"
                .into(),
        });
    }
    if !ca.is_ca() {
        return Err(PkiError::Invalid {
            what: "CA certificate",
            reason: "it is not a CA (basicConstraints CA:TRUE missing)".into(),
        });
    }
    Issuer::from_ca_cert_der(
        &rustls_pki_types::CertificateDer::from(ca_der.as_slice()),
        key,
    )
    .map_err(|e| PkiError::Invalid {
        what: "CA certificate",
        reason: format!("{e}"),
    })
}

fn issued(cert: rcgen::Certificate, key: &KeyPair) -> Issued {
    Issued {
        id: certificate_id(cert.der()),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}
