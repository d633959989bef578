//! The observer's identity: the certificate, key and trusted roots `init`
//! writes to `<data-dir>/aws/observer/`, checked and turned into the TLS
//! configuration of its connection.

use super::{ObserverError, CERT_FILE, KEY_FILE, ROOT_CA_FILE};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The observer's certificate, key and trusted roots, read from its folder.
pub struct ObserverIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: RootCertStore,
}

impl ObserverIdentity {
    /// Reads `cert.pem`, `key.pem` and `root-ca.pem` from `dir`.
    pub fn load(dir: &Path) -> Result<ObserverIdentity, ObserverError> {
        let read = |file: &str| {
            let path = dir.join(file);
            match std::fs::read(&path) {
                Ok(bytes) => Ok((path, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(ObserverError::MissingIdentity { path })
                }
                Err(source) => Err(ObserverError::Read { path, source }),
            }
        };
        let bad = |path: &Path, what: &'static str, reason: String| ObserverError::BadIdentity {
            path: path.to_path_buf(),
            what,
            reason,
        };
        let (cert_path, cert_pem) = read(CERT_FILE)?;
        let (key_path, key_pem) = read(KEY_FILE)?;
        let (roots_path, roots_pem) = read(ROOT_CA_FILE)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&cert_path, "certificate", e.to_string()))?;
        if chain.is_empty() {
            return Err(bad(
                &cert_path,
                "certificate",
                "no CERTIFICATE block".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| bad(&key_path, "private key", e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&roots_pem) {
            let cert = cert.map_err(|e| bad(&roots_path, "CA certificate", e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| bad(&roots_path, "CA certificate", e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad(&roots_path, "CA certificate", "empty".into()));
        }
        Ok(ObserverIdentity { chain, key, roots })
    }

    /// Mutual TLS with this identity: the server is verified against
    /// `root-ca.pem` and the host dialled (AWS: the `iot:Data-ATS` name).
    pub fn client_config(self) -> Result<ClientConfig, ObserverError> {
        // aws-lc-rs, chosen explicitly like the device agent's: no
        // process-wide default provider has to be installed first.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots)
            .with_client_auth_cert(self.chain, self.key)?;
        Ok(config)
    }
}
