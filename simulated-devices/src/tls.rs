//! The device's side of mutual TLS: which certificate it presents (vendor or
//! manufacturer identity) and which CA it trusts for the endpoint.

use crate::creds::{self, CredentialFolder, CredentialsError};
use crate::machine::Identity;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;

/// TLS setup problems. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("{file} holds no usable {what} ({reason}); run `jitpilot init` to rewrite the factory credentials")]
    Pem {
        file: String,
        what: &'static str,
        reason: String,
    },
    #[error("invalid server name {0:?}: give a DNS name or IP address with --server-name")]
    ServerName(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider for every device: aws-lc-rs, chosen explicitly so no
/// process-wide default has to be installed first.
///
/// Tuned like the TLS stacks of small devices: the classical key exchanges
/// (X25519, then P-256) and AES-128-GCM with SHA-256 preferred. The
/// defaults would offer the post-quantum hybrid X25519MLKEM768 first and
/// prefer AES-256-GCM-SHA384, whose SHA-384 has no hardware help on most
/// CPUs; in a 10,000-device fleet run both sides' handshakes are the largest
/// cost. The endpoint still offers everything, and a client's order wins.
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group};
    let mut provider = default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1];
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ];
    Arc::new(provider)
}

/// Trust anchors from `root-ca.pem`.
pub fn root_store(folder: &CredentialFolder) -> Result<RootCertStore, TlsSetupError> {
    let pem = folder.read_required(creds::ROOT_CA)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| pem_error(creds::ROOT_CA, "CA certificate", e))?;
        roots
            .add(cert)
            .map_err(|e| pem_error(creds::ROOT_CA, "CA certificate", e))?;
    }
    if roots.is_empty() {
        return Err(pem_error(creds::ROOT_CA, "CA certificate", "empty"));
    }
    Ok(roots)
}

/// A client config presenting `identity`, trusting `roots`. When
/// `server_name` is given, the server cert is verified against that name
/// instead of the host dialled (e.g. dial an IP, verify `localhost`).
pub fn client_config(
    folder: &CredentialFolder,
    identity: Identity,
    roots: Arc<RootCertStore>,
    server_name: Option<&str>,
    alpn: Option<&str>,
) -> Result<ClientConfig, TlsSetupError> {
    let (cert_file, key_file) = match identity {
        Identity::Vendor => (creds::VENDOR_CERT, creds::VENDOR_KEY),
        Identity::Manufacturer => (creds::MANUFACTURER_CERT, creds::MANUFACTURER_KEY),
    };
    let cert_pem = folder.read_required(cert_file)?;
    let key_pem = folder.read_required(key_file)?;
    // The whole chain is sent (device cert, then the CA): AWS JITP needs the
    // issuing CA in the handshake to find the template.
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_file, "certificate", e))?;
    if chain.is_empty() {
        return Err(pem_error(cert_file, "certificate", "no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| pem_error(key_file, "private key", e))?;

    let provider = provider();
    let identity = certified_key(chain, key, &provider)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match server_name {
        Some(name) => {
            let name = ServerName::try_from(name.to_string())
                .map_err(|_| TlsSetupError::ServerName(name.to_string()))?;
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsSetupError::Rustls(rustls::Error::General(e.to_string())))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FixedNameVerifier { inner, name }))
        }
        None => builder.with_root_certificates(roots),
    };
    let mut config = builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity)));
    if let Some(alpn) = alpn {
        config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    }
    Ok(config)
}

/// The device's certificate chain with its key. rustls checks that the two
/// match by parsing the certificate with webpki, which refuses X.509 v1 —
/// what the AWS sample's Lambda issues (pyOpenSSL's default) and AWS IoT
/// accepts. For a v1 certificate that check is skipped: the firmware already
/// compared the certificate's key with the stored one before keeping it.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsSetupError> {
    let pre_v3 = chain.first().is_some_and(|der| {
        x509_parser::parse_x509_certificate(der)
            .is_ok_and(|(_, cert)| cert.version() != x509_parser::x509::X509Version::V3)
    });
    if pre_v3 {
        let signing_key = provider.key_provider.load_private_key(key)?;
        Ok(CertifiedKey::new(chain, signing_key))
    } else {
        Ok(CertifiedKey::from_der(chain, key, provider)?)
    }
}

fn pem_error(file: &str, what: &'static str, reason: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError::Pem {
        file: file.to_string(),
        what,
        reason: reason.to_string(),
    }
}

/// Full WebPKI verification of the server, against a fixed name rather than
/// the dialled host. Nothing is skipped: chain, validity, name and the
/// handshake signatures are all checked by rustls's own verifier.
#[derive(Debug)]
struct FixedNameVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
