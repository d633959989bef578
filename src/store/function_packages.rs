//! What Lambda's API set on a stack's function: its deployment package
//! (`UpdateFunctionCode`) and configuration (`UpdateFunctionConfiguration`).
//!
//! The stack engine records a function in `functions` (name, ARN, built-in
//! handler, role, environment) and rewrites that row on every deploy; what
//! an API client uploads lives beside it, keyed by the function's name, so
//! a redeploy of an unchanged template keeps the uploaded code. `NULL`
//! settings mean "the template's": [`Store::function_template`] reads the
//! function's resolved template properties (`Runtime`, `Handler`, …).
//!
//! The package's bytes are kept whole in SQLite: Lambda caps a directly
//! uploaded package at 50 MB, and a later part runs the code from here.

use super::{Cached, Store, StoreResult};
use crate::model::now_millis;
use rusqlite::OptionalExtension;

/// What Lambda's API set on one function; `None` fields are the template's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionPackage {
    pub name: String,
    /// The deployment package (a zip), if one was uploaded.
    pub zip: Option<Vec<u8>>,
    /// Base64 SHA-256 of `zip` (Lambda's `CodeSha256`).
    pub code_sha256: Option<String>,
    pub runtime: Option<String>,
    /// Lambda's handler (`bootstrap`, `app.handler`), not the built-in's name.
    pub handler: Option<String>,
    /// Seconds.
    pub timeout: Option<i64>,
    /// MB.
    pub memory_size: Option<i64>,
    pub description: Option<String>,
    /// Epoch millis of the last change through the API; 0 if none.
    pub last_modified: i64,
}

/// The configuration half of an `UpdateFunctionConfiguration`: `Some`
/// fields replace the current value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionSettings {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub description: Option<String>,
    /// Replaces the stack function's environment variables.
    pub environment: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Store {
    /// What Lambda's API set on `name`, or `None` if nothing was.
    pub fn function_package(&self, name: &str) -> StoreResult<Option<FunctionPackage>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT name, zip, code_sha256, runtime, handler, timeout, memory_size,
                        description, last_modified
                 FROM function_packages WHERE name = ?1",
                [name],
                |r| {
                    Ok(FunctionPackage {
                        name: r.get(0)?,
                        zip: r.get(1)?,
                        code_sha256: r.get(2)?,
                        runtime: r.get(3)?,
                        handler: r.get(4)?,
                        timeout: r.get(5)?,
                        memory_size: r.get(6)?,
                        description: r.get(7)?,
                        last_modified: r.get(8)?,
                    })
                },
            )
            .optional()
        })
    }

    /// When `name`'s package or settings last changed through the API (its
    /// `last_modified`), without reading the package's bytes: what the
    /// local Lambda runtime checks before each invocation.
    pub fn function_package_stamp(&self, name: &str) -> StoreResult<Option<i64>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT last_modified FROM function_packages WHERE name = ?1 AND zip IS NOT NULL",
                [name],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// `UpdateFunctionCode`: stores `zip` as the function's package.
    /// False (nothing written) if no function `name` is deployed.
    pub fn put_function_code(
        &self,
        name: &str,
        zip: &[u8],
        code_sha256: &str,
    ) -> StoreResult<bool> {
        self.with_tx(|tx| {
            if !function_exists(tx, name).map_err(|e| self.sql_error(e))? {
                return Ok(false);
            }
            tx.execute_cached(
                "INSERT INTO function_packages (name, zip, code_sha256, last_modified)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET zip = excluded.zip,
                     code_sha256 = excluded.code_sha256, last_modified = excluded.last_modified",
                rusqlite::params![name, zip, code_sha256, now_millis()],
            )
            .map_err(|e| self.sql_error(e))?;
            Ok(true)
        })
    }

    /// `UpdateFunctionConfiguration`: the settings and the environment in
    /// one transaction. False (nothing written) if no function `name` is deployed.
    pub fn update_function_settings(
        &self,
        name: &str,
        settings: &FunctionSettings,
    ) -> StoreResult<bool> {
        let environment = settings
            .environment
            .as_ref()
            .map(super::to_json)
            .transpose()?;
        self.with_tx(|tx| {
            if !function_exists(tx, name).map_err(|e| self.sql_error(e))? {
                return Ok(false);
            }
            tx.execute_cached(
                "INSERT INTO function_packages
                     (name, runtime, handler, timeout, memory_size, description, last_modified)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(name) DO UPDATE SET
                     runtime = coalesce(excluded.runtime, runtime),
                     handler = coalesce(excluded.handler, handler),
                     timeout = coalesce(excluded.timeout, timeout),
                     memory_size = coalesce(excluded.memory_size, memory_size),
                     description = coalesce(excluded.description, description),
                     last_modified = excluded.last_modified",
                rusqlite::params![
                    name,
                    settings.runtime,
                    settings.handler,
                    settings.timeout,
                    settings.memory_size,
                    settings.description,
                    now_millis()
                ],
            )
            .map_err(|e| self.sql_error(e))?;
            if let Some(environment) = &environment {
                tx.execute_cached(
                    "UPDATE functions SET environment = ?2 WHERE name = ?1",
                    [name, environment.as_str()],
                )
                .map_err(|e| self.sql_error(e))?;
            }
            Ok(true)
        })
    }

    /// The resolved template properties of the stack resource that deployed
    /// function `name` (`Runtime`, `Handler`, `Timeout`, …), if a stack did.
    pub fn function_template(&self, name: &str) -> StoreResult<Option<serde_json::Value>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT properties FROM stack_resources
                 WHERE resource_type = 'AWS::Lambda::Function' AND physical_id = ?1
                 LIMIT 1",
                [name],
                |r| super::json_col(r, 0),
            )
            .optional()
        })
    }
}

fn function_exists(tx: &rusqlite::Connection, name: &str) -> rusqlite::Result<bool> {
    tx.query_row_cached(
        "SELECT 1 FROM functions WHERE name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}
