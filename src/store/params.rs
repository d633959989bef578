//! The parameter store ("SSM Parameter Store"). SecureString values are
//! sealed with the keyring before they reach SQLite: the database never holds
//! a plaintext secret.

use super::{Cached, Keyring, Store, StoreError, StoreResult};
use crate::model::{now_millis, Parameter, ParameterType};
use rusqlite::OptionalExtension;

/// What `GetParameter` without `--with-decryption` shows for a SecureString.
pub const ENCRYPTED_MARKER: &str = "(encrypted)";

fn kind_col(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<ParameterType> {
    let text: String = row.get(idx)?;
    ParameterType::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown parameter type {text:?}").into(),
        )
    })
}

/// A parameter as it lies in the store: a SecureString's value still sealed
/// (`nonce || ciphertext`). What the AWS API's `GetParameter` without
/// decryption shows, as an opaque blob, instead of the plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParameter {
    pub name: String,
    pub kind: ParameterType,
    /// Plaintext bytes for String/StringList, sealed bytes for SecureString.
    pub stored: Vec<u8>,
    pub version: i64,
    pub last_modified: i64,
}

impl Store {
    /// `PutParameter`. Without `overwrite`, an existing name is `AlreadyExists`.
    /// Returns the new version.
    pub fn put_parameter(
        &self,
        name: &str,
        value: &str,
        kind: ParameterType,
        overwrite: bool,
    ) -> StoreResult<i64> {
        if name.is_empty() {
            return Err(StoreError::Invalid {
                what: "parameter name".into(),
                reason: "it is empty".into(),
            });
        }
        let stored: Vec<u8> = match kind {
            ParameterType::String | ParameterType::StringList => value.as_bytes().to_vec(),
            ParameterType::SecureString => {
                let sealed = self.keyring().seal(value.as_bytes(), name.as_bytes());
                if !Keyring::is_well_formed(&sealed) {
                    return Err(StoreError::Invalid {
                        what: format!("parameter {name}"),
                        reason: "the value is too large to encrypt".into(),
                    });
                }
                sealed
            }
        };
        self.with_tx(|tx| {
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT version FROM parameters WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.sql_error(e))?;
            if existing.is_some() && !overwrite {
                return Err(StoreError::AlreadyExists {
                    kind: "parameter",
                    name: name.to_string(),
                });
            }
            let version = existing.unwrap_or(0) + 1;
            tx.execute_cached(
                "INSERT INTO parameters (name, kind, value, version, last_modified)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, value = excluded.value,
                     version = excluded.version, last_modified = excluded.last_modified",
                rusqlite::params![name, kind.as_str(), stored, version, now_millis()],
            )
            .map_err(|e| self.sql_error(e))?;
            Ok(version)
        })
    }

    /// `GetParameter [--with-decryption]`. Without decryption a SecureString's
    /// value is returned as the literal `"(encrypted)"`.
    pub fn get_parameter(
        &self,
        name: &str,
        with_decryption: bool,
    ) -> StoreResult<Option<Parameter>> {
        let row = self.with_conn(|c| {
            c.query_row_cached(
                "SELECT kind, value, version, last_modified FROM parameters WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        kind_col(r, 0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((kind, stored, version, last_modified)) = row else {
            return Ok(None);
        };
        let bytes = match (kind, with_decryption) {
            (ParameterType::String | ParameterType::StringList, _) => stored,
            (ParameterType::SecureString, false) => ENCRYPTED_MARKER.as_bytes().to_vec(),
            (ParameterType::SecureString, true) => self.keyring().open(&stored, name.as_bytes())?,
        };
        let value = String::from_utf8(bytes).map_err(|_| StoreError::Corrupt {
            path: self.path().to_path_buf(),
            reason: format!("parameter {name} is not UTF-8 text"),
        })?;
        Ok(Some(Parameter {
            name: name.to_string(),
            kind,
            value,
            version,
            last_modified,
        }))
    }

    /// A parameter as stored, SecureString values still sealed (see [`StoredParameter`]).
    pub fn stored_parameter(&self, name: &str) -> StoreResult<Option<StoredParameter>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT kind, value, version, last_modified FROM parameters WHERE name = ?1",
                [name],
                |r| {
                    Ok(StoredParameter {
                        name: name.to_string(),
                        kind: kind_col(r, 0)?,
                        stored: r.get(1)?,
                        version: r.get(2)?,
                        last_modified: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Opens a stored parameter's value: the plaintext of a SecureString
    /// (the keyring checks it belongs to this name), the text of the others.
    pub fn parameter_plaintext(&self, parameter: &StoredParameter) -> StoreResult<String> {
        let bytes = match parameter.kind {
            ParameterType::SecureString => self
                .keyring()
                .open(&parameter.stored, parameter.name.as_bytes())?,
            ParameterType::String | ParameterType::StringList => parameter.stored.clone(),
        };
        String::from_utf8(bytes).map_err(|_| StoreError::Corrupt {
            path: self.path().to_path_buf(),
            reason: format!("parameter {} is not UTF-8 text", parameter.name),
        })
    }

    /// `DeleteParameters`: deletes every name present in one transaction;
    /// returns the names that were there.
    pub fn delete_parameters(&self, names: &[String]) -> StoreResult<Vec<String>> {
        self.with_tx(|tx| {
            let mut deleted = Vec::new();
            for name in names {
                let n = tx
                    .execute_cached("DELETE FROM parameters WHERE name = ?1", [name])
                    .map_err(|e| self.sql_error(e))?;
                if n > 0 {
                    deleted.push(name.clone());
                }
            }
            Ok(deleted)
        })
    }

    /// `DeleteParameter`. False if absent.
    pub fn delete_parameter(&self, name: &str) -> StoreResult<bool> {
        self.with_conn(|c| c.execute_cached("DELETE FROM parameters WHERE name = ?1", [name]))
            .map(|n| n > 0)
    }

    /// `DescribeParameters`: values are not included (`value` is empty).
    pub fn list_parameters(&self) -> StoreResult<Vec<Parameter>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, kind, version, last_modified FROM parameters ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Parameter {
                    name: r.get(0)?,
                    kind: kind_col(r, 1)?,
                    value: String::new(),
                    version: r.get(2)?,
                    last_modified: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_strings_are_sealed_at_rest_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            store
                .put_parameter("cr-ca-key-1", key, ParameterType::SecureString, false)
                .unwrap(),
            1
        );
        assert!(matches!(
            store.put_parameter("cr-ca-key-1", key, ParameterType::SecureString, false),
            Err(StoreError::AlreadyExists { .. })
        ));
        let p = store.get_parameter("cr-ca-key-1", true).unwrap().unwrap();
        assert_eq!(p.value, key);
        assert_eq!(p.kind, ParameterType::SecureString);
        let hidden = store.get_parameter("cr-ca-key-1", false).unwrap().unwrap();
        assert_eq!(hidden.value, ENCRYPTED_MARKER);
        assert_eq!(
            store
                .put_parameter("cr-ca-key-1", "new", ParameterType::SecureString, true)
                .unwrap(),
            2
        );
        store
            .put_parameter("/jitpilot/plain", "hello", ParameterType::String, false)
            .unwrap();
        assert_eq!(
            store
                .get_parameter("/jitpilot/plain", false)
                .unwrap()
                .unwrap()
                .value,
            "hello"
        );
        let names: Vec<_> = store
            .list_parameters()
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect();
        assert_eq!(
            names,
            vec![
                ("/jitpilot/plain".to_string(), String::new()),
                ("cr-ca-key-1".to_string(), String::new())
            ]
        );
        // Checkpoint the WAL so the database file holds everything, then look
        // for the plaintext marker in every file of the store.
        store
            .with_conn(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
            .unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(11).any(|w| w == b"PRIVATE KEY"));
        }
        assert!(store.delete_parameter("cr-ca-key-1").unwrap());
        assert!(!store.delete_parameter("cr-ca-key-1").unwrap());
        assert!(store.get_parameter("cr-ca-key-1", true).unwrap().is_none());
    }

    #[test]
    fn a_replaced_master_key_is_a_clear_error_not_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .put_parameter("k", "secret", ParameterType::SecureString, false)
            .unwrap();
        drop(store);
        std::fs::write(dir.path().join(crate::store::MASTER_KEY_FILE), [7u8; 32]).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let err = store.get_parameter("k", true).unwrap_err();
        assert!(matches!(err, StoreError::MasterKey { .. }), "{err}");
    }
}
