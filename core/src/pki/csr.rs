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
    // Before the signature: a small RSA key is the real reason, and its
    // signature may not verify (some verifiers refuse RSA-1024 outright).
    check_key_size(&csr)?;
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

/// Smallest RSA modulus accepted, in bits (AWS IoT: RSA 2048 or larger).
pub const MIN_RSA_BITS: usize = 2048;

/// Refuses an RSA key shorter than [`MIN_RSA_BITS`] as "key too small".
fn check_key_size(csr: &X509CertificationRequest<'_>) -> PkiResult<()> {
    if let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) =
        csr.certification_request_info.subject_pki.parsed()
    {
        let bits = rsa.key_size();
        if bits < MIN_RSA_BITS {
            return Err(PkiError::Invalid {
                what: "certificate signing request",
                reason: format!(
                    "key too small: RSA-{bits}; use RSA with at least {MIN_RSA_BITS} bits or ECDSA P-256/P-384"
                ),
            });
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl req -new -newkey rsa:1024 -nodes -subj /CN=SER1`: a valid,
    /// correctly self-signed CSR with a key AWS would refuse.
    const RSA_1024_CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIIBTjCBuAIBADAPMQ0wCwYDVQQDDARTRVIxMIGfMA0GCSqGSIb3DQEBAQUAA4GN
ADCBiQKBgQDCCHz+pIOHhtXWNHSH3teNdaqeGicUxPzNLFNKXvBJ9V7icZ83SFjC
03/bHNQH9LhDdAZA9C/vlWPiJAuq29q4mFDXsmJps/eKZyleKbz88eyy8LZptHC6
6PHen2qp5iFiWbWT7c+v8ic1ksgjfB3B75G8EjtwCPVEz8EkY3I5GQIDAQABoAAw
DQYJKoZIhvcNAQELBQADgYEAG5WT1lxpX0rK6MPvZIR0joFYZBNr+ifosG2t2thq
JwvyLPZOoUHQhiXvJZNr4X5i/695ZMfTuoYMmO1gYQPoMttY1F+de6ubKkgbQgrR
TgLvJhJDxBGkNqTjLmFdlYNtJls3QLcR4nOfNU+T2RpX6Lwm7UwsFgf7qaE487os
C8U=
-----END CERTIFICATE REQUEST-----
";

    #[test]
    fn an_rsa_1024_csr_is_refused_as_key_too_small() {
        let err = parse_csr(RSA_1024_CSR).unwrap_err().to_string();
        assert!(err.contains("key too small: RSA-1024"), "{err}");
        // A CSR of today's kind passes.
        let subject = Subject {
            common_name: Some("SER1".into()),
            ..Subject::default()
        };
        let (csr, _) = create_csr(&subject, KeyAlgorithm::EcdsaP256).unwrap();
        assert_eq!(
            parse_csr(&csr).unwrap().subject.common_name.as_deref(),
            Some("SER1")
        );
    }
}
