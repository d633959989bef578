//! TLS for the endpoint: TLS 1.2 and 1.3, client certificate required, and
//! a client-certificate verifier that trusts exactly the CAs *registered*
//! and ACTIVE in the registry right now — AWS IoT's "multi-account"
//! registration model, where registering a CA is what makes its device
//! certificates acceptable.
//!
//! The chain check (signature of the device certificate by the CA's key,
//! validity window, CA constraints) is webpki's, through rustls's
//! `WebPkiClientVerifier` built once per registered CA; the handshake
//! signature checks are rustls's own. What is ours is choosing the trust
//! anchor live: the device certificate's issuer is matched against the
//! registered CAs' subjects, whether or not the device sends the CA in its
//! chain. Registry status of the device certificate itself is enforced
//! after the handshake (`connection.rs`), because JITP must see unknown ones.
//!
//! webpki refuses X.509 v1 certificates, which AWS IoT accepts and the
//! sample's Lambda issues (pyOpenSSL's default). A v1 device certificate is
//! checked here instead: the registered CA as issuer by name and by
//! signature (x509-parser), and the validity window; its handshake signature
//! with its public key and the provider's algorithms.

use crate::model::CertificateStatus;
use crate::store::Store;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    ServerConfig, SignatureScheme,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// ALPN protocol AWS IoT uses for MQTT on port 443 (accepted on any port).
pub const ALPN_AWS_MQTT: &[u8] = b"x-amzn-mqtt-ca";

/// Why the TLS setup failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("the endpoint's server certificate is not usable: {0}. Delete endpoint-ca files in the data dir to regenerate them")]
    ServerIdentity(String),
}

/// A registered CA, parsed once: its subject (to match issuers) and a
/// webpki verifier with it as the only trust anchor.
struct TrustedCa {
    subject_der: Vec<u8>,
    /// The CA certificate, to check v1 device certificates against.
    ca_der: Vec<u8>,
    verifier: Arc<dyn ClientCertVerifier>,
}

/// Accepts client certificates that chain to a registered, ACTIVE CA.
pub struct RegisteredCaVerifier {
    store: Store,
    provider: Arc<CryptoProvider>,
    algorithms: WebPkiSupportedAlgorithms,
    /// By CA certificateId. A CA's certificate never changes under its id
    /// (the id is the hash of its DER), so entries never go stale; the CA's
    /// *status* is read live from the store on every handshake.
    cache: Mutex<HashMap<String, Arc<TrustedCa>>>,
}

impl std::fmt::Debug for RegisteredCaVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredCaVerifier")
            .finish_non_exhaustive()
    }
}

/// A plain error for `CertificateError::Other`.
#[derive(Debug)]
struct Refusal(String);
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refusal {}

fn refusal(why: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal(why)))))
}

impl RegisteredCaVerifier {
    /// A verifier reading registered CAs from `store`.
    pub fn new(store: Store, provider: Arc<CryptoProvider>) -> RegisteredCaVerifier {
        RegisteredCaVerifier {
            store,
            algorithms: provider.signature_verification_algorithms,
            provider,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The certificateId of the registered ACTIVE CA that issued `end_entity`
    /// (checked: signature, validity at `now`, CA constraints), or why none did.
    pub fn issuing_ca(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<String, rustls::Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let issuer = cert.issuer().as_raw().to_vec();
        let pre_v3 = crate::pki::is_pre_v3(end_entity);
        let cas = self
            .store
            .list_cas()
            .map_err(|e| rustls::Error::General(format!("registry unavailable: {e}")))?;
        let mut last_error = None;
        let mut inactive = None;
        for ca in cas {
            let Some(trusted) = self.trusted(&ca.id, &ca.pem) else {
                continue;
            };
            if trusted.subject_der != issuer {
                continue;
            }
            if ca.status != CertificateStatus::Active {
                inactive = Some((ca.id, ca.status));
                continue;
            }
            let verified = if pre_v3 {
                pre_v3_issued_by(&cert, end_entity, &trusted.ca_der, now)
            } else {
                trusted
                    .verifier
                    .verify_client_cert(end_entity, intermediates, now)
                    .map(|_| ())
            };
            match verified {
                Ok(()) => return Ok(ca.id),
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(e) = last_error {
            return Err(e);
        }
        if let Some((id, status)) = inactive {
            return Err(refusal(format!(
                "the issuing CA {id} is {status}; only ACTIVE registered CAs are trusted"
            )));
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn trusted(&self, id: &str, pem: &str) -> Option<Arc<TrustedCa>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cache.get(id) {
            return Some(t.clone());
        }
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
        let subject_der = {
            let (_, parsed) = x509_parser::parse_x509_certificate(&der).ok()?;
            parsed.subject().as_raw().to_vec()
        };
        let ca_der = der.to_vec();
        let mut roots = RootCertStore::empty();
        if let Err(e) = roots.add(der) {
            tracing::warn!(ca = id, error = %e, "registered CA is not usable as a trust anchor");
            return None;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .clear_root_hint_subjects()
                .build()
                .ok()?;
        let trusted = Arc::new(TrustedCa {
            subject_der,
            ca_der,
            verifier,
        });
        cache.insert(id.to_string(), trusted.clone());
        Some(trusted)
    }
}

/// A v1/v2 device certificate checked as webpki checks a v3 one it accepts:
/// signed by the CA (name and signature) and valid at `now`.
fn pre_v3_issued_by(
    cert: &x509_parser::certificate::X509Certificate<'_>,
    der: &[u8],
    ca_der: &[u8],
    now: UnixTime,
) -> Result<(), rustls::Error> {
    match crate::pki::verify_der_signed_by(der, ca_der) {
        Ok(true) => {}
        Ok(false) => return Err(CertificateError::BadSignature.into()),
        Err(e) => return Err(refusal(e.to_string())),
    }
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now_secs < validity.not_before.timestamp() {
        return Err(CertificateError::NotValidYet.into());
    }
    if now_secs > validity.not_after.timestamp() {
        return Err(CertificateError::Expired.into());
    }
    Ok(())
}

/// A handshake signature made with a v1 certificate's key (which webpki will
/// not parse), checked with the provider's algorithms for its scheme.
fn verify_with_public_key(
    message: &[u8],
    public_key: &[u8],
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let candidates = algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, algs)| *algs)
        .ok_or(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ))?;
    if candidates.iter().any(|alg| {
        alg.verify_signature(public_key, message, dss.signature())
            .is_ok()
    }) {
        Ok(HandshakeSignatureValid::assertion())
    } else {
        Err(CertificateError::BadSignature.into())
    }
}

impl ClientCertVerifier for RegisteredCaVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: the registered CAs change at runtime and devices send
        // their one certificate regardless (AWS sends none either).
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.issuing_ca(end_entity, intermediates, now)
            .map(|_| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match crate::pki::pre_v3_public_key(cert) {
            Some(key) => verify_with_public_key(message, &key, dss, &self.algorithms),
            None => rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match crate::pki::pre_v3_public_key(cert) {
            Some(key) => verify_with_public_key(message, &key, dss, &self.algorithms),
            None => rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The endpoint's rustls configuration: TLS 1.2 + 1.3 on aws-lc-rs, client
/// certificates verified by `verifier`, ALPN `x-amzn-mqtt-ca` (or none).
pub fn server_config(
    verifier: Arc<RegisteredCaVerifier>,
    provider: Arc<CryptoProvider>,
    server_cert_chain_pem: &str,
    server_key_pem: &str,
) -> Result<ServerConfig, TlsSetupError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(server_cert_chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsSetupError::ServerIdentity(format!("certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(TlsSetupError::ServerIdentity(
            "no certificate in the chain PEM".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes())
        .map_err(|e| TlsSetupError::ServerIdentity(format!("private key PEM: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| TlsSetupError::ServerIdentity(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::ServerIdentity(e.to_string()))?;
    config.alpn_protocols = vec![ALPN_AWS_MQTT.to_vec(), b"mqtt".to_vec()];
    // No resumption: a resumed session would skip the client-certificate
    // check, and a CA deactivated since must be refused on the next connect.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}
