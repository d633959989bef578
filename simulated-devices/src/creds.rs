//! A device's credential folder (DESIGN §2.3): what the factory wrote and
//! what rotation adds, read at start and written atomically as the device
//! progresses, so a device killed at any instant resumes where it stood.
//!
//! Every write goes to a temporary file in the same folder and is renamed
//! over the target: after the process dies at any instant a file is either
//! absent or complete, never half-written. With [`Durability::PowerLoss`]
//! the file and the folder are also fsynced, so the write survives the
//! machine losing power.

use crate::machine::{Credential, Stored};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The folder's file names: the vocabulary's (`jitpilot_core::vocabulary::credentials`),
/// the same names `init` writes.
pub use jitpilot_core::vocabulary::{
    ACK_DONE_FILE as ACK_DONE, MANUFACTURER_CA_FILE as MANUFACTURER_CA,
    MANUFACTURER_CERT_FILE as MANUFACTURER_CERT, MANUFACTURER_CSR_FILE as MANUFACTURER_CSR,
    MANUFACTURER_KEY_FILE as MANUFACTURER_KEY, ROOT_CA_FILE as ROOT_CA,
    VENDOR_CERT_FILE as VENDOR_CERT, VENDOR_KEY_FILE as VENDOR_KEY,
};

/// Problems with the credential folder. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path} is missing: run `jitpilot init` to issue this device's factory credentials")]
    Missing { path: PathBuf },
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not write {path}: {source}; check that the credential folder is writable and the disk not full")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a credential write survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// The process being killed at any instant (temp file + rename). The
    /// guarantee the local cloud's own store gives (SQLite WAL with
    /// `synchronous=NORMAL`), so a simulated fleet and its cloud stay
    /// consistent across a crash; and the default, because the 8 fsyncs per
    /// onboarded device were most of a fleet run's cost.
    #[default]
    ProcessCrash,
    /// Also the machine losing power: every file and its folder fsynced, as
    /// firmware writing to flash must.
    PowerLoss,
}

/// A device's credential folder.
#[derive(Debug, Clone)]
pub struct CredentialFolder {
    dir: PathBuf,
    durability: Durability,
}

impl CredentialFolder {
    /// The folder at `dir`, written with [`Durability::ProcessCrash`].
    pub fn new(dir: impl Into<PathBuf>) -> CredentialFolder {
        CredentialFolder {
            dir: dir.into(),
            durability: Durability::default(),
        }
    }

    /// The same folder, written with `durability`.
    pub fn with_durability(mut self, durability: Durability) -> CredentialFolder {
        self.durability = durability;
        self
    }

    /// The folder's path.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `name` inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Reads a file that must exist.
    pub fn read_required(&self, name: &str) -> Result<String, CredentialsError> {
        let path = self.path(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(CredentialsError::Missing { path })
            }
            Err(source) => Err(CredentialsError::Read { path, source }),
        }
    }

    /// Reads a file that may be absent.
    pub fn read_optional(&self, name: &str) -> Result<Option<String>, CredentialsError> {
        let path = self.path(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CredentialsError::Read { path, source }),
        }
    }

    /// What rotation left in the folder, for the state machine's `Start`.
    pub fn load_stored(&self) -> Result<Stored, CredentialsError> {
        Ok(Stored {
            manufacturer_key: self.read_optional(MANUFACTURER_KEY)?,
            csr: self.read_optional(MANUFACTURER_CSR)?,
            manufacturer_cert: self.read_optional(MANUFACTURER_CERT)?,
            acked_cert_id: self.read_optional(ACK_DONE)?.map(|s| s.trim().to_string()),
            manufacturer_ca: self.read_optional(MANUFACTURER_CA)?,
        })
    }

    /// True when the ack marker names the stored manufacturer cert: the
    /// device finished rotation (a cheap check for skipping it on rerun).
    pub fn rotation_done(&self) -> bool {
        let marker = self.read_optional(ACK_DONE).ok().flatten();
        let cert = self.read_optional(MANUFACTURER_CERT).ok().flatten();
        match (marker, cert) {
            (Some(marker), Some(cert)) => crate::firmware::first_cert_der(&cert)
                .map(|der| crate::firmware::certificate_id(&der) == marker.trim())
                .unwrap_or(false),
            _ => false,
        }
    }

    /// Writes a credential the state machine asked to store.
    pub fn store(&self, credential: &Credential) -> Result<(), CredentialsError> {
        match credential {
            Credential::ManufacturerKey(pem) => {
                self.write_atomic(MANUFACTURER_KEY, pem.as_bytes(), true)
            }
            Credential::Csr(pem) => self.write_atomic(MANUFACTURER_CSR, pem.as_bytes(), false),
            Credential::ManufacturerCert(pem) => {
                self.write_atomic(MANUFACTURER_CERT, pem.as_bytes(), false)
            }
            Credential::AckDone(id) => {
                self.write_atomic(ACK_DONE, format!("{id}\n").as_bytes(), false)
            }
        }
    }

    /// temp file + rename, with fsyncs of both under
    /// [`Durability::PowerLoss`]. Private keys get mode 0600 from creation,
    /// so they are never readable by others even briefly.
    pub fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        secret: bool,
    ) -> Result<(), CredentialsError> {
        let target = self.path(name);
        let tmp = self.path(&format!(".{name}.tmp-{}", std::process::id()));
        let wrap = |source| CredentialsError::Write {
            path: target.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(wrap)?;
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if secret { 0o600 } else { 0o644 });
        }
        let mut file = options.open(&tmp).map_err(wrap)?;
        file.write_all(bytes).map_err(wrap)?;
        let power_loss = self.durability == Durability::PowerLoss;
        if power_loss {
            file.sync_all().map_err(wrap)?;
        }
        drop(file);
        fs::rename(&tmp, &target).map_err(wrap)?;
        // The rename is durable only once the directory entry is.
        #[cfg(unix)]
        if power_loss {
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(wrap)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_complete_and_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        let folder = CredentialFolder::new(dir.path().join("dev"));
        folder
            .store(&Credential::ManufacturerKey("KEY".into()))
            .unwrap();
        folder.store(&Credential::Csr("CSR".into())).unwrap();
        let stored = folder.load_stored().unwrap();
        assert_eq!(stored.manufacturer_key.as_deref(), Some("KEY"));
        assert_eq!(stored.csr.as_deref(), Some("CSR"));
        assert!(stored.manufacturer_cert.is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(folder.path(MANUFACTURER_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(folder.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    /// The files are the same under `PowerLoss`; that the fsyncs really
    /// happen is counted with strace in `tests/sim_device.rs`.
    #[test]
    fn power_loss_durability_writes_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        let folder =
            CredentialFolder::new(dir.path().join("dev")).with_durability(Durability::PowerLoss);
        folder
            .store(&Credential::ManufacturerKey("KEY".into()))
            .unwrap();
        folder.store(&Credential::AckDone("id".into())).unwrap();
        let stored = folder.load_stored().unwrap();
        assert_eq!(stored.manufacturer_key.as_deref(), Some("KEY"));
        assert_eq!(stored.acked_cert_id.as_deref(), Some("id"));
        let names: Vec<_> = fs::read_dir(folder.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "no temp files left: {names:?}");
    }

    #[test]
    fn missing_factory_file_says_to_run_init() {
        let dir = tempfile::tempdir().unwrap();
        let folder = CredentialFolder::new(dir.path());
        let err = folder.read_required(VENDOR_CERT).unwrap_err();
        assert!(err.to_string().contains("jitpilot init"));
    }

    #[test]
    fn ack_marker_must_name_the_stored_cert() {
        let dir = tempfile::tempdir().unwrap();
        let folder = CredentialFolder::new(dir.path());
        assert!(!folder.rotation_done());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        folder
            .store(&Credential::ManufacturerCert(cert.pem()))
            .unwrap();
        folder
            .store(&Credential::AckDone("not-the-id".into()))
            .unwrap();
        assert!(!folder.rotation_done());
        let id = crate::firmware::certificate_id(cert.der());
        folder.store(&Credential::AckDone(id)).unwrap();
        assert!(folder.rotation_done());
    }
}
