//! The local KMS: a 32-byte AEAD key (ChaCha20-Poly1305) in `master.key`,
//! created 0600 on first use. Sealed values are `nonce (12 bytes) || ciphertext`.

use super::StoreResult;
use std::path::Path;

/// Seals and opens SecureString values.
#[derive(Clone)]
pub struct Keyring {
    key: [u8; 32],
}

#[allow(unused_variables)]
impl Keyring {
    /// Loads the key file, creating it (0600) if absent. A file of the wrong
    /// size or unreadable is `StoreError::MasterKey`, never replaced.
    pub fn load_or_create(path: &Path) -> StoreResult<Keyring> {
        todo!()
    }
    /// Encrypts `plaintext`; `aad` binds the ciphertext to its parameter name.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        todo!()
    }
    /// Decrypts; a tampered value or a different key is `StoreError::MasterKey`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> StoreResult<Vec<u8>> {
        todo!()
    }
}
