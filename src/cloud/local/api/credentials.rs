//! The data dir's own access key: the one identity the local cloud's AWS
//! API lets in.
//!
//! Made on the first start of a cloud in a data dir and kept in
//! `<data-dir>/api-credentials.json` (0600, like the master key): every
//! request must be SigV4-signed with it. `jitpilot env` prints it for a
//! shell, so the aws CLI and boto3 find it through the standard variables.

use crate::datadir::{self, DataDir, DataDirError};
use rand::Rng;

/// The credentials file's name in the data dir.
pub const CREDENTIALS_FILE: &str = "api-credentials.json";

/// Why the credentials could not be read or made. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("cannot read {path}: {source}; check the file's permissions, or delete it to have a new key made on the next start")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid credentials file ({why}); delete it to have a new key made on the next start")]
    Invalid {
        path: std::path::PathBuf,
        why: String,
    },
}

/// An access key id and its secret, as AWS issues them.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCredentials {
    /// `AKIA` + 16 characters, as AWS's long-term keys look.
    pub access_key_id: String,
    /// 40 characters; never logged.
    pub secret_access_key: String,
}

impl std::fmt::Debug for ApiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl ApiCredentials {
    /// A fresh random key.
    pub fn generate() -> ApiCredentials {
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut rng = rand::thread_rng();
        let mut pick = |alphabet: &[u8], n: usize| -> String {
            (0..n)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
                .collect()
        };
        ApiCredentials {
            access_key_id: format!("AKIA{}", pick(UPPER, 16)),
            secret_access_key: pick(SECRET, 40),
        }
    }
}

/// The credentials file of `dir`.
pub fn path(dir: &DataDir) -> std::path::PathBuf {
    dir.root().join(CREDENTIALS_FILE)
}

/// The data dir's key, if one was made.
pub fn load(dir: &DataDir) -> Result<Option<ApiCredentials>, CredentialsError> {
    let path = path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CredentialsError::Read { path, source }),
    };
    let creds: ApiCredentials =
        serde_json::from_str(&text).map_err(|e| CredentialsError::Invalid {
            path: path.clone(),
            why: e.to_string(),
        })?;
    if creds.access_key_id.is_empty() || creds.secret_access_key.is_empty() {
        return Err(CredentialsError::Invalid {
            path,
            why: "an empty access key id or secret".into(),
        });
    }
    Ok(Some(creds))
}

/// The data dir's key, made (and written 0600) on first use.
pub fn load_or_create(dir: &DataDir) -> Result<ApiCredentials, CredentialsError> {
    if let Some(creds) = load(dir)? {
        return Ok(creds);
    }
    dir.create()?;
    let creds = ApiCredentials::generate();
    let mut text = serde_json::to_string_pretty(&creds).map_err(|e| CredentialsError::Invalid {
        path: path(dir),
        why: e.to_string(),
    })?;
    text.push('\n');
    datadir::write_atomically(&path(dir), text.as_bytes(), true)?;
    Ok(creds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_0600_and_loaded_after() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("d"));
        assert_eq!(load(&dir).unwrap(), None);
        let made = load_or_create(&dir).unwrap();
        assert!(made.access_key_id.starts_with("AKIA"));
        assert_eq!(made.access_key_id.len(), 20);
        assert_eq!(made.secret_access_key.len(), 40);
        assert_eq!(load_or_create(&dir).unwrap(), made);
        assert_eq!(load(&dir).unwrap(), Some(made.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(&dir)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(!format!("{made:?}").contains(&made.secret_access_key));
    }

    #[test]
    fn a_broken_file_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        std::fs::write(path(&dir), "{not json").unwrap();
        let err = load_or_create(&dir).unwrap_err().to_string();
        assert!(err.contains("delete it"), "{err}");
    }
}
