//! Topic rules and functions ("Lambdas"), as the stack engine deploys them.

use super::{json_col, to_json, Cached, Store, StoreResult};
use crate::model::{Function, TopicRule};
use rusqlite::OptionalExtension;

fn rule_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TopicRule> {
    Ok(TopicRule {
        name: r.get(0)?,
        sql: r.get(1)?,
        actions: json_col(r, 2)?,
        enabled: r.get(3)?,
    })
}

fn function_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Function> {
    Ok(Function {
        name: r.get(0)?,
        arn: r.get(1)?,
        handler: r.get(2)?,
        role_arn: r.get(3)?,
        environment: json_col(r, 4)?,
    })
}

impl Store {
    // ---- topic rules and functions (written by the stack engine) ---------

    /// Creates or replaces a topic rule.
    pub fn put_topic_rule(&self, rule: &TopicRule) -> StoreResult<()> {
        let actions = to_json(&rule.actions)?;
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT OR REPLACE INTO topic_rules (name, sql, actions, enabled)
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![rule.name, rule.sql, actions, rule.enabled],
            )
        })
        .map(|_| ())
    }

    /// `DeleteTopicRule`. False if absent.
    pub fn delete_topic_rule(&self, name: &str) -> StoreResult<bool> {
        self.with_conn(|c| c.execute_cached("DELETE FROM topic_rules WHERE name = ?1", [name]))
            .map(|n| n > 0)
    }

    /// `ListTopicRules`, by name.
    pub fn list_topic_rules(&self) -> StoreResult<Vec<TopicRule>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, sql, actions, enabled FROM topic_rules ORDER BY name",
            )?;
            let rows = stmt.query_map([], rule_row)?;
            rows.collect()
        })
    }

    /// Creates or replaces a function.
    pub fn put_function(&self, function: &Function) -> StoreResult<()> {
        let environment = to_json(&function.environment)?;
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT OR REPLACE INTO functions (name, arn, handler, role_arn, environment)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    function.name,
                    function.arn,
                    function.handler,
                    function.role_arn,
                    environment
                ],
            )
        })
        .map(|_| ())
    }

    /// `GetFunction`.
    pub fn get_function(&self, name: &str) -> StoreResult<Option<Function>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT name, arn, handler, role_arn, environment FROM functions WHERE name = ?1",
                [name],
                function_row,
            )
            .optional()
        })
    }

    /// `DeleteFunction`, with what Lambda's API set on it (its uploaded
    /// package). False if absent.
    pub fn delete_function(&self, name: &str) -> StoreResult<bool> {
        self.with_tx(|tx| {
            tx.execute_cached("DELETE FROM function_packages WHERE name = ?1", [name])
                .map_err(|e| self.sql_error(e))?;
            tx.execute_cached("DELETE FROM functions WHERE name = ?1", [name])
                .map(|n| n > 0)
                .map_err(|e| self.sql_error(e))
        })
    }

    /// `ListFunctions`, by name.
    pub fn list_functions(&self) -> StoreResult<Vec<Function>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, arn, handler, role_arn, environment FROM functions ORDER BY name",
            )?;
            let rows = stmt.query_map([], function_row)?;
            rows.collect()
        })
    }
}
