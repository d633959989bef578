//! CloudFormation change sets: a deployment computed and kept for review
//! (`aws cloudformation deploy` creates one, waits for it, then executes it).

use super::{json_col, to_json, Cached, Store, StoreResult};
use crate::model::EpochMillis;
use rusqlite::OptionalExtension;
use serde_json::{Map, Value};

/// One change set, as `DescribeChangeSet` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSet {
    /// Its ARN (`arn:aws:cloudformation:…:changeSet/<name>/<suffix>`).
    pub id: String,
    pub name: String,
    pub stack: String,
    /// `CREATE` (the stack does not exist yet) or `UPDATE`.
    pub kind: String,
    /// `CREATE_COMPLETE` or `FAILED`.
    pub status: String,
    pub status_reason: Option<String>,
    /// `AVAILABLE`, `UNAVAILABLE`, `EXECUTE_COMPLETE`, `EXECUTE_FAILED`, `OBSOLETE`.
    pub execution_status: String,
    /// The template text to deploy.
    pub template: String,
    /// Parameter values given (`UsePreviousValue` already resolved).
    pub parameters: Map<String, Value>,
    /// The resource changes (JSON list of `stack::ResourceChange`).
    pub changes: Value,
    pub description: Option<String>,
    pub created_at: EpochMillis,
}

const COLUMNS: &str = "id, name, stack, kind, status, status_reason, execution_status,
                       template, parameters, changes, description, created_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeSet> {
    Ok(ChangeSet {
        id: r.get(0)?,
        name: r.get(1)?,
        stack: r.get(2)?,
        kind: r.get(3)?,
        status: r.get(4)?,
        status_reason: r.get(5)?,
        execution_status: r.get(6)?,
        template: r.get(7)?,
        parameters: json_col(r, 8)?,
        changes: json_col(r, 9)?,
        description: r.get(10)?,
        created_at: r.get(11)?,
    })
}

impl Store {
    /// Creates or replaces a change set (by id).
    pub fn put_change_set(&self, cs: &ChangeSet) -> StoreResult<()> {
        let parameters = to_json(&cs.parameters)?;
        let changes = to_json(&cs.changes)?;
        self.with_conn(|c| {
            c.execute_cached(
                &format!(
                    "INSERT OR REPLACE INTO change_sets ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                rusqlite::params![
                    cs.id,
                    cs.name,
                    cs.stack,
                    cs.kind,
                    cs.status,
                    cs.status_reason,
                    cs.execution_status,
                    cs.template,
                    parameters,
                    changes,
                    cs.description,
                    cs.created_at
                ],
            )
        })
        .map(|_| ())
    }

    /// The change set with this ARN.
    pub fn get_change_set_by_id(&self, id: &str) -> StoreResult<Option<ChangeSet>> {
        self.with_conn(|c| {
            c.query_row_cached(
                &format!("SELECT {COLUMNS} FROM change_sets WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
        })
    }

    /// The change set named `name` of `stack`.
    pub fn get_change_set(&self, stack: &str, name: &str) -> StoreResult<Option<ChangeSet>> {
        self.with_conn(|c| {
            c.query_row_cached(
                &format!("SELECT {COLUMNS} FROM change_sets WHERE stack = ?1 AND name = ?2"),
                [stack, name],
                row,
            )
            .optional()
        })
    }

    /// The change sets of `stack`, oldest first.
    pub fn list_change_sets(&self, stack: &str) -> StoreResult<Vec<ChangeSet>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM change_sets WHERE stack = ?1 ORDER BY created_at, rowid"
            ))?;
            let rows = stmt.query_map([stack], row)?;
            rows.collect()
        })
    }

    /// Deletes one change set. False if absent.
    pub fn delete_change_set(&self, id: &str) -> StoreResult<bool> {
        self.with_conn(|c| c.execute_cached("DELETE FROM change_sets WHERE id = ?1", [id]))
            .map(|n| n > 0)
    }

    /// Deletes every change set of `stack` (the stack was deleted).
    pub fn delete_change_sets(&self, stack: &str) -> StoreResult<usize> {
        self.with_conn(|c| c.execute_cached("DELETE FROM change_sets WHERE stack = ?1", [stack]))
    }
}
