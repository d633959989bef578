//! AWS IoT's registry: CA certificates, the registration code, certificates,
//! things and their principals. Policies are in `policies.rs`, topic rules and
//! functions in `rules.rs`.

use super::{json_col, status_col, to_json, Cached, Store, StoreError, StoreResult};
use crate::model::{
    now_millis, CaCertificate, Certificate, CertificateStatus, RegistrationConfig, Thing,
};
use rand::RngCore;
use rusqlite::OptionalExtension;

const CA_COLUMNS: &str =
    "id, pem, status, auto_registration, registration_config, label, created_at";

fn ca_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaCertificate> {
    let config: Option<String> = r.get(4)?;
    let registration_config = match config {
        Some(text) => Some(
            serde_json::from_str::<RegistrationConfig>(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    4,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
        ),
        None => None,
    };
    Ok(CaCertificate {
        id: r.get(0)?,
        pem: r.get(1)?,
        status: status_col(r, 2)?,
        auto_registration: r.get(3)?,
        registration_config,
        label: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn cert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Certificate> {
    Ok(Certificate {
        id: r.get(0)?,
        ca_id: r.get(1)?,
        pem: r.get(2)?,
        status: status_col(r, 3)?,
        created_at: r.get(4)?,
    })
}

fn thing_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Thing> {
    Ok(Thing {
        name: r.get(0)?,
        attributes: json_col(r, 1)?,
        created_at: r.get(2)?,
    })
}

pub(super) fn not_found(kind: &'static str, name: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        name: name.to_string(),
    }
}

impl Store {
    /// Runs a query returning a list of strings.
    pub(super) fn strings(&self, sql: &str, param: &str) -> StoreResult<Vec<String>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map([param], |r| r.get(0))?;
            rows.collect()
        })
    }

    pub(super) fn exists(&self, sql: &str, param: &str) -> StoreResult<bool> {
        self.with_conn(|c| c.query_row_cached(sql, [param], |_| Ok(())).optional())
            .map(|row| row.is_some())
    }

    // ---- CA certificates -------------------------------------------------

    /// Registers a CA (`RegisterCACertificate`). `AlreadyExists` if the id is known.
    pub fn register_ca(&self, ca: &CaCertificate) -> StoreResult<()> {
        let config = ca.registration_config.as_ref().map(to_json).transpose()?;
        let inserted = self.with_conn(|c| {
            c.execute_cached(
                "INSERT OR IGNORE INTO ca_certificates
                     (id, pem, status, auto_registration, registration_config, label, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    ca.id,
                    ca.pem,
                    ca.status.as_str(),
                    ca.auto_registration,
                    config,
                    ca.label,
                    ca.created_at
                ],
            )
        })?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                kind: "CA certificate",
                name: ca.id.clone(),
            });
        }
        Ok(())
    }

    /// `DescribeCACertificate`.
    pub fn get_ca(&self, id: &str) -> StoreResult<Option<CaCertificate>> {
        self.with_conn(|c| {
            c.query_row_cached(
                &format!("SELECT {CA_COLUMNS} FROM ca_certificates WHERE id = ?1"),
                [id],
                ca_row,
            )
            .optional()
        })
    }

    /// `ListCACertificates`, oldest first.
    pub fn list_cas(&self) -> StoreResult<Vec<CaCertificate>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CA_COLUMNS} FROM ca_certificates ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([], ca_row)?;
            rows.collect()
        })
    }

    /// `UpdateCACertificate --new-status`. `NotFound` if unknown.
    pub fn set_ca_status(&self, id: &str, status: CertificateStatus) -> StoreResult<()> {
        let n = self.with_conn(|c| {
            c.execute_cached(
                "UPDATE ca_certificates SET status = ?2 WHERE id = ?1",
                [id, status.as_str()],
            )
        })?;
        if n == 0 {
            return Err(not_found("CA certificate", id));
        }
        Ok(())
    }

    /// `UpdateCACertificate --new-auto-registration-status --registration-config`.
    pub fn set_ca_auto_registration(
        &self,
        id: &str,
        enabled: bool,
        config: Option<&RegistrationConfig>,
    ) -> StoreResult<()> {
        let config = config.map(to_json).transpose()?;
        let n = self.with_conn(|c| {
            c.execute_cached(
                "UPDATE ca_certificates SET auto_registration = ?2, registration_config = ?3
                 WHERE id = ?1",
                rusqlite::params![id, enabled, config],
            )
        })?;
        if n == 0 {
            return Err(not_found("CA certificate", id));
        }
        Ok(())
    }

    /// `DeleteCACertificate`: the CA must be INACTIVE (`Conflict` otherwise).
    /// Returns false when it did not exist.
    pub fn delete_ca(&self, id: &str) -> StoreResult<bool> {
        let Some(ca) = self.get_ca(id)? else {
            return Ok(false);
        };
        if ca.status != CertificateStatus::Inactive {
            return Err(StoreError::Conflict {
                kind: "CA certificate",
                name: id.to_string(),
                reason: format!("it is {}; set it INACTIVE before deleting it", ca.status),
            });
        }
        self.with_conn(|c| c.execute_cached("DELETE FROM ca_certificates WHERE id = ?1", [id]))
            .map(|n| n > 0)
    }

    /// `GetRegistrationCode`: created once, stable afterwards.
    pub fn registration_code(&self) -> StoreResult<String> {
        // Like AWS's: 64 lowercase hex characters.
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let fresh = hex::encode(bytes);
        self.with_tx(|tx| {
            tx.execute_cached(
                "INSERT OR IGNORE INTO registration_code (id, code) VALUES (1, ?1)",
                [&fresh],
            )
            .map_err(|e| self.sql_error(e))?;
            tx.query_row_cached("SELECT code FROM registration_code WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.sql_error(e))
        })
    }

    // ---- certificates ----------------------------------------------------

    /// `RegisterCertificate` / JITP registration. `AlreadyExists` if known.
    pub fn register_certificate(&self, cert: &Certificate) -> StoreResult<()> {
        let inserted = self.with_conn(|c| {
            c.execute_cached(
                "INSERT OR IGNORE INTO certificates (id, ca_id, pem, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    cert.id,
                    cert.ca_id,
                    cert.pem,
                    cert.status.as_str(),
                    cert.created_at
                ],
            )
        })?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                kind: "certificate",
                name: cert.id.clone(),
            });
        }
        Ok(())
    }

    /// `DescribeCertificate`.
    pub fn get_certificate(&self, id: &str) -> StoreResult<Option<Certificate>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT id, ca_id, pem, status, created_at FROM certificates WHERE id = ?1",
                [id],
                cert_row,
            )
            .optional()
        })
    }

    /// `ListCertificates`, oldest first.
    pub fn list_certificates(&self) -> StoreResult<Vec<Certificate>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, ca_id, pem, status, created_at FROM certificates
                 ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([], cert_row)?;
            rows.collect()
        })
    }

    /// `UpdateCertificate --new-status`. `NotFound` if unknown.
    pub fn set_certificate_status(&self, id: &str, status: CertificateStatus) -> StoreResult<()> {
        let n = self.with_conn(|c| {
            c.execute_cached(
                "UPDATE certificates SET status = ?2 WHERE id = ?1",
                [id, status.as_str()],
            )
        })?;
        if n == 0 {
            return Err(not_found("certificate", id));
        }
        Ok(())
    }

    /// `DeleteCertificate --force-delete`: must not be ACTIVE and must not be
    /// attached to a thing (`Conflict`); policy attachments are removed.
    /// Returns false when it did not exist.
    pub fn delete_certificate(&self, id: &str) -> StoreResult<bool> {
        self.with_tx(|tx| {
            let status: Option<String> = tx
                .query_row("SELECT status FROM certificates WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| self.sql_error(e))?;
            let Some(status) = status else {
                return Ok(false);
            };
            if status == CertificateStatus::Active.as_str() {
                return Err(StoreError::Conflict {
                    kind: "certificate",
                    name: id.to_string(),
                    reason: "it is ACTIVE; set it INACTIVE before deleting it".into(),
                });
            }
            let things: i64 = tx
                .query_row(
                    "SELECT count(*) FROM thing_principals WHERE principal = ?1",
                    [id],
                    |r| r.get(0),
                )
                .map_err(|e| self.sql_error(e))?;
            if things > 0 {
                return Err(StoreError::Conflict {
                    kind: "certificate",
                    name: id.to_string(),
                    reason: format!(
                        "it is attached to {things} thing(s); detach it before deleting it"
                    ),
                });
            }
            tx.execute_cached("DELETE FROM policy_targets WHERE target = ?1", [id])
                .map_err(|e| self.sql_error(e))?;
            tx.execute_cached("DELETE FROM certificates WHERE id = ?1", [id])
                .map_err(|e| self.sql_error(e))?;
            Ok(true)
        })
    }

    /// Counts of certificates per status for one CA (for the CA pane).
    pub fn count_certificates_by_status(
        &self,
        ca_id: &str,
    ) -> StoreResult<Vec<(CertificateStatus, u64)>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT status, count(*) FROM certificates WHERE ca_id = ?1
                 GROUP BY status ORDER BY status",
            )?;
            let rows = stmt.query_map([ca_id], |r| {
                Ok((status_col(r, 0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            rows.collect()
        })
    }

    // ---- things ----------------------------------------------------------

    /// `CreateThing`: idempotent; returns the existing thing if present.
    pub fn create_thing(
        &self,
        name: &str,
        attributes: &serde_json::Map<String, serde_json::Value>,
    ) -> StoreResult<Thing> {
        if name.is_empty() {
            return Err(StoreError::Invalid {
                what: "thing name".into(),
                reason: "it is empty".into(),
            });
        }
        let attributes = to_json(attributes)?;
        self.with_tx(|tx| {
            tx.execute_cached(
                "INSERT OR IGNORE INTO things (name, attributes, created_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![name, attributes, now_millis()],
            )
            .map_err(|e| self.sql_error(e))?;
            tx.query_row_cached(
                "SELECT name, attributes, created_at FROM things WHERE name = ?1",
                [name],
                thing_row,
            )
            .map_err(|e| self.sql_error(e))
        })
    }

    /// `DescribeThing`.
    pub fn get_thing(&self, name: &str) -> StoreResult<Option<Thing>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT name, attributes, created_at FROM things WHERE name = ?1",
                [name],
                thing_row,
            )
            .optional()
        })
    }

    /// `ListThings`, by name.
    pub fn list_things(&self) -> StoreResult<Vec<Thing>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached("SELECT name, attributes, created_at FROM things ORDER BY name")?;
            let rows = stmt.query_map([], thing_row)?;
            rows.collect()
        })
    }

    /// `DeleteThing`: `Conflict` while principals are attached. False if absent.
    pub fn delete_thing(&self, name: &str) -> StoreResult<bool> {
        let principals = self.list_thing_principals(name)?;
        if !principals.is_empty() {
            return Err(StoreError::Conflict {
                kind: "thing",
                name: name.to_string(),
                reason: format!(
                    "{} certificate(s) are attached; detach them before deleting it",
                    principals.len()
                ),
            });
        }
        self.with_conn(|c| c.execute_cached("DELETE FROM things WHERE name = ?1", [name]))
            .map(|n| n > 0)
    }

    /// `AttachThingPrincipal` (idempotent). `NotFound` if thing or cert is unknown.
    pub fn attach_thing_principal(&self, thing: &str, cert_id: &str) -> StoreResult<()> {
        if !self.exists("SELECT 1 FROM things WHERE name = ?1", thing)? {
            return Err(not_found("thing", thing));
        }
        if !self.exists("SELECT 1 FROM certificates WHERE id = ?1", cert_id)? {
            return Err(not_found("certificate", cert_id));
        }
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT OR IGNORE INTO thing_principals (thing, principal) VALUES (?1, ?2)",
                [thing, cert_id],
            )
        })
        .map(|_| ())
    }

    /// `DetachThingPrincipal` (idempotent).
    pub fn detach_thing_principal(&self, thing: &str, cert_id: &str) -> StoreResult<()> {
        self.with_conn(|c| {
            c.execute_cached(
                "DELETE FROM thing_principals WHERE thing = ?1 AND principal = ?2",
                [thing, cert_id],
            )
        })
        .map(|_| ())
    }

    /// `ListThingPrincipals`: certificateIds attached to the thing.
    pub fn list_thing_principals(&self, thing: &str) -> StoreResult<Vec<String>> {
        self.strings(
            "SELECT principal FROM thing_principals WHERE thing = ?1 ORDER BY principal",
            thing,
        )
    }

    /// `ListPrincipalThings`: things the certificate is attached to.
    pub fn list_principal_things(&self, cert_id: &str) -> StoreResult<Vec<String>> {
        self.strings(
            "SELECT thing FROM thing_principals WHERE principal = ?1 ORDER BY thing",
            cert_id,
        )
    }
}
