//! Stacks, their resources and events, as the stack engine records them.

use super::{json_col, to_json, Cached, Store, StoreResult};
use crate::model::{Stack, StackEvent, StackResource};
use rusqlite::OptionalExtension;

impl Store {
    /// `DescribeStacks` for one stack.
    pub fn get_stack(&self, name: &str) -> StoreResult<Option<Stack>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT name, status, template, parameters, created_at, updated_at
                 FROM stacks WHERE name = ?1",
                [name],
                |r| {
                    Ok(Stack {
                        name: r.get(0)?,
                        status: r.get(1)?,
                        template: r.get(2)?,
                        parameters: json_col(r, 3)?,
                        created_at: r.get(4)?,
                        updated_at: r.get(5)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Every stack, by name (`DescribeStacks`/`ListStacks` without a name).
    pub fn list_stacks(&self) -> StoreResult<Vec<Stack>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, status, template, parameters, created_at, updated_at
                 FROM stacks ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Stack {
                    name: r.get(0)?,
                    status: r.get(1)?,
                    template: r.get(2)?,
                    parameters: json_col(r, 3)?,
                    created_at: r.get(4)?,
                    updated_at: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Creates or replaces the stack row.
    pub fn put_stack(&self, stack: &Stack) -> StoreResult<()> {
        let parameters = to_json(&stack.parameters)?;
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT INTO stacks (name, status, template, parameters, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(name) DO UPDATE SET status = excluded.status,
                     template = excluded.template, parameters = excluded.parameters,
                     created_at = excluded.created_at, updated_at = excluded.updated_at",
                rusqlite::params![
                    stack.name,
                    stack.status,
                    stack.template,
                    parameters,
                    stack.created_at,
                    stack.updated_at
                ],
            )
        })
        .map(|_| ())
    }

    /// Deletes the stack row, its resources and its events. False if absent.
    pub fn delete_stack(&self, name: &str) -> StoreResult<bool> {
        self.with_tx(|tx| {
            let run = |sql: &str| {
                tx.execute_cached(sql, [name])
                    .map_err(|e| self.sql_error(e))
            };
            run("DELETE FROM stack_resources WHERE stack = ?1")?;
            run("DELETE FROM stack_events WHERE stack = ?1")?;
            Ok(run("DELETE FROM stacks WHERE name = ?1")? > 0)
        })
    }

    /// The stack's resources, in the order they were first recorded.
    pub fn list_stack_resources(&self, stack: &str) -> StoreResult<Vec<StackResource>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT stack, logical_id, resource_type, physical_id, status, properties
                 FROM stack_resources WHERE stack = ?1 ORDER BY rowid",
            )?;
            let rows = stmt.query_map([stack], |r| {
                Ok(StackResource {
                    stack: r.get(0)?,
                    logical_id: r.get(1)?,
                    resource_type: r.get(2)?,
                    physical_id: r.get(3)?,
                    status: r.get(4)?,
                    properties: json_col(r, 5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Creates or replaces one resource row.
    pub fn put_stack_resource(&self, resource: &StackResource) -> StoreResult<()> {
        let properties = to_json(&resource.properties)?;
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT INTO stack_resources
                     (stack, logical_id, resource_type, physical_id, status, properties)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(stack, logical_id) DO UPDATE SET
                     resource_type = excluded.resource_type, physical_id = excluded.physical_id,
                     status = excluded.status, properties = excluded.properties",
                rusqlite::params![
                    resource.stack,
                    resource.logical_id,
                    resource.resource_type,
                    resource.physical_id,
                    resource.status,
                    properties
                ],
            )
        })
        .map(|_| ())
    }

    /// Deletes one resource row. False if absent.
    pub fn delete_stack_resource(&self, stack: &str, logical_id: &str) -> StoreResult<bool> {
        self.with_conn(|c| {
            c.execute_cached(
                "DELETE FROM stack_resources WHERE stack = ?1 AND logical_id = ?2",
                [stack, logical_id],
            )
        })
        .map(|n| n > 0)
    }

    /// Records one stack event.
    pub fn add_stack_event(&self, event: &StackEvent) -> StoreResult<()> {
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT INTO stack_events (stack, timestamp, logical_id, resource_type, status, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    event.stack,
                    event.timestamp,
                    event.logical_id,
                    event.resource_type,
                    event.status,
                    event.reason
                ],
            )
        })
        .map(|_| ())
    }

    /// The most recent `limit` events, oldest first.
    pub fn list_stack_events(&self, stack: &str, limit: usize) -> StoreResult<Vec<StackEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT stack, timestamp, logical_id, resource_type, status, reason FROM (
                     SELECT * FROM stack_events WHERE stack = ?1 ORDER BY seq DESC LIMIT ?2
                 ) ORDER BY seq",
            )?;
            let rows = stmt.query_map(rusqlite::params![stack, limit], |r| {
                Ok(StackEvent {
                    stack: r.get(0)?,
                    timestamp: r.get(1)?,
                    logical_id: r.get(2)?,
                    resource_type: r.get(3)?,
                    status: r.get(4)?,
                    reason: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stacks_resources_and_events_round_trip_and_delete_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stack = Stack {
            name: "CertRotation".into(),
            status: "CREATE_IN_PROGRESS".into(),
            template: "{}".into(),
            parameters: json!({"P": "v"}).as_object().cloned().unwrap(),
            created_at: 1,
            updated_at: 1,
        };
        store.put_stack(&stack).unwrap();
        store
            .put_stack(&Stack {
                status: "CREATE_COMPLETE".into(),
                ..stack.clone()
            })
            .unwrap();
        assert_eq!(
            store.get_stack("CertRotation").unwrap().unwrap().status,
            "CREATE_COMPLETE"
        );
        for id in ["Table", "Rule"] {
            store
                .put_stack_resource(&StackResource {
                    stack: "CertRotation".into(),
                    logical_id: id.into(),
                    resource_type: "AWS::DynamoDB::Table".into(),
                    physical_id: id.to_lowercase(),
                    status: "CREATE_COMPLETE".into(),
                    properties: json!({"a": 1}),
                })
                .unwrap();
        }
        for (i, status) in ["CREATE_IN_PROGRESS", "CREATE_COMPLETE", "X"]
            .iter()
            .enumerate()
        {
            store
                .add_stack_event(&StackEvent {
                    stack: "CertRotation".into(),
                    timestamp: i as i64,
                    logical_id: "Table".into(),
                    resource_type: "AWS::DynamoDB::Table".into(),
                    status: status.to_string(),
                    reason: None,
                })
                .unwrap();
        }
        let ids: Vec<_> = store
            .list_stack_resources("CertRotation")
            .unwrap()
            .into_iter()
            .map(|r| r.logical_id)
            .collect();
        assert_eq!(ids, ["Table", "Rule"]);
        let last_two: Vec<_> = store
            .list_stack_events("CertRotation", 2)
            .unwrap()
            .into_iter()
            .map(|e| e.status)
            .collect();
        assert_eq!(last_two, ["CREATE_COMPLETE", "X"]);
        assert!(store.delete_stack_resource("CertRotation", "Rule").unwrap());
        assert!(store.delete_stack("CertRotation").unwrap());
        assert!(!store.delete_stack("CertRotation").unwrap());
        assert!(store
            .list_stack_resources("CertRotation")
            .unwrap()
            .is_empty());
        assert!(store
            .list_stack_events("CertRotation", 10)
            .unwrap()
            .is_empty());
    }
}
