//! Fixtures the rotation function's tests share — in this crate (the pure
//! decisions) and in `jitpilot` (the executor over the local store): the
//! sample's serial, two CAs and one device's factory credentials made once
//! per test binary, CSRs with new or reused keys, and a tampered CSR.
//! Not part of the API.

use crate::model::{now_millis, Certificate, CertificateStatus};
use crate::pki::{self, Issued, KeyAlgorithm, Subject};
use std::sync::OnceLock;

/// The sample's serial.
pub const SERIAL: &str = crate::fleet::SAMPLE_SERIAL;

/// Two CAs and one device's factory credentials, made once per test binary
/// (key generation is the slow part).
pub struct Pki {
    pub vendor_ca: Issued,
    pub manufacturer_ca: Issued,
    pub vendor: Issued,
}

/// A subject with CN `cn` and organization "Example".
pub fn subject(cn: &str) -> Subject {
    Subject {
        common_name: Some(cn.into()),
        organization: Some("Example".into()),
        ..Subject::default()
    }
}

/// The shared [`Pki`], made on first use.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let vendor_ca =
            pki::create_ca(&subject("Vendor CA"), KeyAlgorithm::EcdsaP256, 365).expect("vendor CA");
        let manufacturer_ca =
            pki::create_ca(&subject("Manufacturer CA"), KeyAlgorithm::EcdsaP256, 365)
                .expect("manufacturer CA");
        let vendor = issue_vendor(&vendor_ca, SERIAL);
        Pki {
            vendor_ca,
            manufacturer_ca,
            vendor,
        }
    })
}

/// A factory certificate for `serial`, signed by the Vendor CA.
pub fn issue_vendor(vendor_ca: &Issued, serial: &str) -> Issued {
    pki::issue_device_cert(
        &vendor_ca.cert_pem,
        &vendor_ca.key_pem,
        &subject(serial),
        KeyAlgorithm::EcdsaP256,
        365,
    )
    .expect("vendor cert")
}

/// The registry record of an issued certificate.
pub fn record(issued: &Issued, ca: &Issued, status: CertificateStatus) -> Certificate {
    Certificate {
        id: issued.id.clone(),
        ca_id: Some(ca.id.clone()),
        pem: issued.cert_pem.clone(),
        status,
        created_at: now_millis(),
    }
}

/// A CSR for `cn` with a new EC key: `(csr_pem, key_pem)`.
pub fn new_csr(cn: &str) -> (String, String) {
    pki::create_csr(&subject(cn), KeyAlgorithm::EcdsaP256).expect("csr")
}

/// A CSR for `cn` signed with an existing key (the sample's key reuse).
pub fn csr_with_key(cn: &str, key_pem: &str) -> String {
    let key = rcgen::KeyPair::from_pem(key_pem).expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem")
}

/// The CSR with `from` replaced by `to` inside its signed DER: what an
/// attacker rewriting a captured CSR produces.
pub fn tamper(csr_pem: &str, from: &[u8], to: &[u8]) -> String {
    use base64::Engine;
    let b64: String = csr_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let engine = base64::engine::general_purpose::STANDARD;
    let mut der = engine.decode(b64).expect("base64");
    let at = der
        .windows(from.len())
        .position(|w| w == from)
        .expect("found in the DER");
    der[at..at + to.len()].copy_from_slice(to);
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        engine.encode(der)
    )
}
