//! The local MQTT endpoint's own CA — the stand-in for Amazon's root CA that
//! devices trust for `iot:Data-ATS` (the sample's `root-ca.pem`).
//!
//! Created once per data dir: its key is sealed in the parameter store as a
//! SecureString, its certificate kept as a String parameter. Each start of the
//! endpoint gets a fresh server certificate from it, so the server key never
//! touches the disk.

use crate::cloud::{CloudError, CloudResult};
use crate::model::ParameterType;
use crate::pki::{self, Issued, KeyAlgorithm, PkiError, PkiResult, Subject};
use crate::store::{Store, StoreError};
use std::path::Path;

/// Parameter holding the endpoint CA's private key (SecureString).
pub const KEY_PARAMETER: &str = "/jitpilot/endpoint-ca-key";
/// Parameter holding the endpoint CA's certificate (String).
pub const CERT_PARAMETER: &str = "/jitpilot/endpoint-ca-cert";
/// The name devices verify in the server certificate (and send as SNI).
pub const SERVER_NAME: &str = "localhost";

/// Validity of the endpoint CA.
const CA_VALIDITY_DAYS: u32 = 3650;
/// Validity of a server certificate (a new one is made at every start).
const SERVER_VALIDITY_DAYS: i64 = 397;

/// The endpoint's CA.
#[derive(Clone)]
pub struct EndpointCa {
    /// The CA certificate, PEM: what devices trust.
    pub cert_pem: String,
    /// The CA's PKCS#8 key, PEM (held in memory only; sealed at rest).
    pub key_pem: String,
}

impl std::fmt::Debug for EndpointCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointCa").finish_non_exhaustive()
    }
}

/// The endpoint CA of this store, created on first use.
pub fn ensure(store: &Store) -> CloudResult<EndpointCa> {
    let cert = store.get_parameter(CERT_PARAMETER, false)?;
    let key = store.get_parameter(KEY_PARAMETER, true)?;
    if let (Some(cert), Some(key)) = (cert, key) {
        return Ok(EndpointCa {
            cert_pem: cert.value,
            key_pem: key.value,
        });
    }
    let subject = Subject {
        common_name: Some("jitpilot local endpoint CA".into()),
        organization: Some("jitpilot".into()),
        ..Subject::default()
    };
    let ca = pki::create_ca(&subject, KeyAlgorithm::EcdsaP256, CA_VALIDITY_DAYS)?;
    // Key first: a crash between the two leaves no certificate without its
    // key, and the next run simply makes a new pair (overwrite).
    store.put_parameter(
        KEY_PARAMETER,
        &ca.key_pem,
        ParameterType::SecureString,
        true,
    )?;
    match store.put_parameter(CERT_PARAMETER, &ca.cert_pem, ParameterType::String, false) {
        Ok(_) => {}
        Err(StoreError::AlreadyExists { .. }) => {
            store.put_parameter(CERT_PARAMETER, &ca.cert_pem, ParameterType::String, true)?;
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(id = %ca.id, "created the local endpoint CA");
    Ok(EndpointCa {
        cert_pem: ca.cert_pem,
        key_pem: ca.key_pem,
    })
}

impl EndpointCa {
    /// A fresh server certificate and key for the endpoint: SAN `localhost`,
    /// `127.0.0.1` and `::1`, signed by this CA. The certificate PEM is
    /// followed by the CA certificate (the chain the server presents).
    pub fn server_identity(&self) -> PkiResult<Issued> {
        let generate = |e: rcgen::Error| PkiError::Generate(e.to_string());
        let ca_key = rcgen::KeyPair::from_pem(&self.key_pem).map_err(|e| PkiError::Invalid {
            what: "endpoint CA key",
            reason: e.to_string(),
        })?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.cert_pem, ca_key).map_err(|e| {
            PkiError::Invalid {
                what: "endpoint CA certificate",
                reason: e.to_string(),
            }
        })?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
        let mut params = rcgen::CertificateParams::new(vec![
            SERVER_NAME.to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(generate)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, SERVER_NAME);
        let now = time::OffsetDateTime::now_utc();
        // Backdated a day: a device whose clock lags a little still accepts it.
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(SERVER_VALIDITY_DAYS);
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer).map_err(generate)?;
        Ok(Issued {
            id: pki::certificate_id(cert.der()),
            cert_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes the CA certificate where devices look for it
    /// (`<data-dir>/endpoint-ca.pem`, or a device's `root-ca.pem`).
    pub fn write_pem(&self, path: &Path) -> CloudResult<()> {
        crate::datadir::write_atomically(path, self.cert_pem.as_bytes(), false)
            .map_err(|e| CloudError::Other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_ca_is_created_once_and_signs_a_localhost_server_cert() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = ensure(&store).unwrap();
        let again = ensure(&store).unwrap();
        assert_eq!(first.cert_pem, again.cert_pem);
        assert_eq!(first.key_pem, again.key_pem);
        assert_eq!(
            store
                .get_parameter(KEY_PARAMETER, false)
                .unwrap()
                .unwrap()
                .kind,
            ParameterType::SecureString
        );
        let server = first.server_identity().unwrap();
        assert!(pki::verify_signed_by(&server.cert_pem, &first.cert_pem).unwrap());
        assert_eq!(pki::pem_certificates(&server.cert_pem).unwrap().len(), 2);
        let info = pki::parse_cert(&server.cert_pem).unwrap();
        assert!(!info.is_ca);
        assert_eq!(info.subject.common_name.as_deref(), Some("localhost"));
        // The SANs, as a TLS client checks them.
        let der = &pki::pem_certificates(&server.cert_pem).unwrap()[0];
        let (_, x509) = x509_parser::parse_x509_certificate(der).unwrap();
        let san = x509.subject_alternative_name().unwrap().unwrap();
        use x509_parser::extensions::GeneralName;
        let names = &san.value.general_names;
        assert!(names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName("localhost"))));
        assert!(names
            .iter()
            .any(|n| matches!(n, GeneralName::IPAddress(ip) if *ip == [127, 0, 0, 1])));
        assert!(names.iter().any(
            |n| matches!(n, GeneralName::IPAddress(ip) if *ip == std::net::Ipv6Addr::LOCALHOST.octets())
        ));
        assert_eq!(names.len(), 3, "{names:?}");
    }
}
