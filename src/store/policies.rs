//! IoT policies, their versions and their attachments to certificates
//! (`CreatePolicy`, `CreatePolicyVersion`, `AttachPolicy`, ...).

use super::registry::not_found;
use super::{Cached, Store, StoreError, StoreResult};
use crate::model::{now_millis, Policy};
use rusqlite::OptionalExtension;

fn policy_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Policy> {
    Ok(Policy {
        name: r.get(0)?,
        document: r.get(1)?,
        version: r.get(2)?,
    })
}

impl Store {
    // ---- policies --------------------------------------------------------

    /// `CreatePolicy`. `AlreadyExists` if the name is taken.
    pub fn create_policy(&self, name: &str, document: &str) -> StoreResult<Policy> {
        self.with_tx(|tx| {
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO policies (name, document, version) VALUES (?1, ?2, 1)",
                    [name, document],
                )
                .map_err(|e| self.sql_error(e))?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists {
                    kind: "policy",
                    name: name.to_string(),
                });
            }
            tx.execute_cached(
                "INSERT OR REPLACE INTO policy_versions (name, version, document, created_at)
                 VALUES (?1, 1, ?2, ?3)",
                rusqlite::params![name, document, now_millis()],
            )
            .map_err(|e| self.sql_error(e))?;
            Ok(Policy {
                name: name.to_string(),
                document: document.to_string(),
                version: 1,
            })
        })
    }

    /// `CreatePolicyVersion --set-as-default`: a new default version.
    pub fn update_policy(&self, name: &str, document: &str) -> StoreResult<Policy> {
        self.with_tx(|tx| {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM policies WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.sql_error(e))?;
            let Some(current) = current else {
                return Err(not_found("policy", name));
            };
            let version = current + 1;
            tx.execute_cached(
                "UPDATE policies SET document = ?2, version = ?3 WHERE name = ?1",
                rusqlite::params![name, document, version],
            )
            .map_err(|e| self.sql_error(e))?;
            tx.execute_cached(
                "INSERT OR REPLACE INTO policy_versions (name, version, document, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![name, version, document, now_millis()],
            )
            .map_err(|e| self.sql_error(e))?;
            Ok(Policy {
                name: name.to_string(),
                document: document.to_string(),
                version,
            })
        })
    }

    /// `GetPolicy`: the default version.
    pub fn get_policy(&self, name: &str) -> StoreResult<Option<Policy>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT name, document, version FROM policies WHERE name = ?1",
                [name],
                policy_row,
            )
            .optional()
        })
    }

    /// `ListPolicies`, by name.
    pub fn list_policies(&self) -> StoreResult<Vec<Policy>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached("SELECT name, document, version FROM policies ORDER BY name")?;
            let rows = stmt.query_map([], policy_row)?;
            rows.collect()
        })
    }

    /// `DeletePolicy`: `Conflict` while attached. False if absent.
    pub fn delete_policy(&self, name: &str) -> StoreResult<bool> {
        self.with_tx(|tx| {
            let targets: i64 = tx
                .query_row(
                    "SELECT count(*) FROM policy_targets WHERE policy = ?1",
                    [name],
                    |r| r.get(0),
                )
                .map_err(|e| self.sql_error(e))?;
            if targets > 0 {
                return Err(StoreError::Conflict {
                    kind: "policy",
                    name: name.to_string(),
                    reason: format!(
                        "it is attached to {targets} target(s); detach it (or run `jitpilot cleanup`) first"
                    ),
                });
            }
            tx.execute_cached("DELETE FROM policy_versions WHERE name = ?1", [name])
                .map_err(|e| self.sql_error(e))?;
            tx.execute_cached("DELETE FROM policies WHERE name = ?1", [name])
                .map(|n| n > 0)
                .map_err(|e| self.sql_error(e))
        })
    }

    /// `AttachPolicy` (idempotent). `NotFound` if the policy is unknown.
    pub fn attach_policy(&self, policy: &str, target: &str) -> StoreResult<()> {
        if !self.exists("SELECT 1 FROM policies WHERE name = ?1", policy)? {
            return Err(not_found("policy", policy));
        }
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT OR IGNORE INTO policy_targets (policy, target) VALUES (?1, ?2)",
                [policy, target],
            )
        })
        .map(|_| ())
    }

    /// `DetachPolicy` (idempotent).
    pub fn detach_policy(&self, policy: &str, target: &str) -> StoreResult<()> {
        self.with_conn(|c| {
            c.execute_cached(
                "DELETE FROM policy_targets WHERE policy = ?1 AND target = ?2",
                [policy, target],
            )
        })
        .map(|_| ())
    }

    /// `ListAttachedPolicies`: the policies attached to a certificate.
    pub fn list_attached_policies(&self, target: &str) -> StoreResult<Vec<Policy>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT p.name, p.document, p.version FROM policies p
                 JOIN policy_targets t ON t.policy = p.name
                 WHERE t.target = ?1 ORDER BY p.name",
            )?;
            let rows = stmt.query_map([target], policy_row)?;
            rows.collect()
        })
    }

    /// `ListTargetsForPolicy`.
    pub fn list_policy_targets(&self, policy: &str) -> StoreResult<Vec<String>> {
        self.strings(
            "SELECT target FROM policy_targets WHERE policy = ?1 ORDER BY target",
            policy,
        )
    }
}
