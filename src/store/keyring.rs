//! The local KMS: a 32-byte AEAD key (ChaCha20-Poly1305) in `master.key`,
//! created 0600 on first use. Sealed values are `nonce (12 bytes) || ciphertext`.
//!
//! The associated data is the parameter's name, so a sealed value copied
//! onto another parameter's row does not open.

use super::{StoreError, StoreResult};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Length of the key in the master-key file.
const KEY_LEN: usize = 32;
/// Length of the random nonce prefixed to every sealed value.
const NONCE_LEN: usize = 12;
/// Length of the Poly1305 tag appended by the cipher.
const TAG_LEN: usize = 16;

/// Seals and opens SecureString values.
#[derive(Clone)]
pub struct Keyring {
    key: [u8; 32],
    path: PathBuf,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads the key file, creating it (0600) if absent. A file of the wrong
    /// size or unreadable is `StoreError::MasterKey`, never replaced.
    pub fn load_or_create(path: &Path) -> StoreResult<Keyring> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Keyring::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Keyring::create(path),
            Err(e) => Err(master_key_error(path, format!("cannot read it: {e}"))),
        }
    }

    /// Loads an existing key file; a missing file is `StoreError::MasterKey`.
    pub fn load(path: &Path) -> StoreResult<Keyring> {
        let bytes = std::fs::read(path)
            .map_err(|e| master_key_error(path, format!("cannot read it: {e}")))?;
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            master_key_error(
                path,
                format!(
                    "it holds {} bytes, a master key holds {KEY_LEN}",
                    bytes.len()
                ),
            )
        })?;
        warn_if_readable_by_others(path);
        Ok(Keyring {
            key,
            path: path.to_path_buf(),
        })
    }

    /// Creates a new random key file, 0600 from its first byte. Written to a
    /// temporary file and hard-linked into place, so a crash never leaves a
    /// half-written key, and a key that appeared meanwhile is never overwritten.
    fn create(path: &Path) -> StoreResult<Keyring> {
        let mut key = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let io = |e: std::io::Error| master_key_error(path, format!("cannot create it: {e}"));
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp).map_err(io)?;
            file.write_all(&key).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Keyring {
                key,
                path: path.to_path_buf(),
            }),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Keyring::load(path),
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plaintext`; `aad` binds the ciphertext to its parameter name.
    ///
    /// The cipher refuses only inputs above 256 GiB; for those this returns an
    /// empty vector, which [`Keyring::open`] rejects and the parameter store
    /// refuses to save.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        match cipher.encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        ) {
            Ok(ciphertext) => {
                let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
                sealed.extend_from_slice(&nonce);
                sealed.extend_from_slice(&ciphertext);
                sealed
            }
            Err(_) => Vec::new(),
        }
    }

    /// Decrypts; a tampered value or a different key is `StoreError::MasterKey`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> StoreResult<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(master_key_error(
                &self.path,
                "a sealed value is truncated".into(),
            ));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| {
                master_key_error(
                    &self.path,
                    format!(
                        "it does not open the sealed value of {:?} (a different key, or the value was tampered with)",
                        String::from_utf8_lossy(aad)
                    ),
                )
            })
    }

    /// True when `sealed` has the shape `seal` produces (for the parameter store).
    pub(crate) fn is_well_formed(sealed: &[u8]) -> bool {
        sealed.len() >= NONCE_LEN + TAG_LEN
    }
}

fn master_key_error(path: &Path, reason: String) -> StoreError {
    StoreError::MasterKey {
        path: path.to_path_buf(),
        reason,
    }
}

/// The key protects every CA key: say so when others can read it.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "master key is readable by other users; run `chmod 600` on it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_binds_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::load_or_create(&dir.path().join("master.key")).unwrap();
        let sealed = ring.seal(b"-----BEGIN PRIVATE KEY-----", b"cr-ca-key-1");
        assert!(!sealed
            .windows(b"PRIVATE KEY".len())
            .any(|w| w == b"PRIVATE KEY"));
        assert_eq!(
            ring.open(&sealed, b"cr-ca-key-1").unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        // The same ciphertext under another parameter's name does not open.
        assert!(matches!(
            ring.open(&sealed, b"cr-ca-key-2"),
            Err(StoreError::MasterKey { .. })
        ));
        // Nonces are fresh: sealing twice differs.
        assert_ne!(
            sealed,
            ring.seal(b"-----BEGIN PRIVATE KEY-----", b"cr-ca-key-1")
        );
    }

    #[test]
    fn key_file_is_created_once_with_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = Keyring::load_or_create(&path).unwrap();
        let sealed = first.seal(b"secret", b"n");
        let second = Keyring::load_or_create(&path).unwrap();
        assert_eq!(second.open(&sealed, b"n").unwrap(), b"secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(std::fs::read(&path).unwrap().len(), KEY_LEN);
    }

    #[test]
    fn wrong_size_key_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, b"short").unwrap();
        let err = Keyring::load_or_create(&path).unwrap_err();
        assert!(matches!(err, StoreError::MasterKey { .. }));
        assert!(err.to_string().contains("5 bytes"));
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
    }

    #[test]
    fn a_different_key_or_tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keyring::load_or_create(&dir.path().join("a.key")).unwrap();
        let b = Keyring::load_or_create(&dir.path().join("b.key")).unwrap();
        let mut sealed = a.seal(b"secret", b"n");
        assert!(b.open(&sealed, b"n").is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(a.open(&sealed, b"n").is_err());
        assert!(a.open(b"tiny", b"n").is_err());
    }
}
