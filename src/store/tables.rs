//! Named tables of JSON items keyed by a string hash key — the local
//! stand-in for DynamoDB (`CertRotationDevices`, hash key `SerialNumber`).

use super::{json_col, to_json, Cached, Store, StoreError, StoreResult};
use crate::model::TableInfo;
use rusqlite::OptionalExtension;
use serde_json::{Map, Value};

/// A table item: attribute name → value (plain JSON, not DynamoDB's typed form).
pub type Item = Map<String, Value>;

impl Store {
    /// `CreateTable` (idempotent when the hash key matches; `Conflict` otherwise).
    pub fn create_table(&self, name: &str, hash_key: &str) -> StoreResult<()> {
        let existing = self.table_hash_key(name)?;
        match existing {
            Some(key) if key == hash_key => Ok(()),
            Some(key) => Err(StoreError::Conflict {
                kind: "table",
                name: name.to_string(),
                reason: format!(
                    "it exists with hash key {key}, not {hash_key}; delete it first (`jitpilot teardown`)"
                ),
            }),
            None => self
                .with_conn(|c| {
                    c.execute_cached(
                        "INSERT INTO tables (name, hash_key) VALUES (?1, ?2)",
                        [name, hash_key],
                    )
                })
                .map(|_| ()),
        }
    }

    /// `DeleteTable` with all its items. False if absent.
    pub fn delete_table(&self, name: &str) -> StoreResult<bool> {
        self.with_tx(|tx| {
            tx.execute_cached("DELETE FROM items WHERE table_name = ?1", [name])
                .map_err(|e| self.sql_error(e))?;
            tx.execute_cached("DELETE FROM tables WHERE name = ?1", [name])
                .map(|n| n > 0)
                .map_err(|e| self.sql_error(e))
        })
    }

    /// `DescribeTable`: name, hash key and item count.
    pub fn describe_table(&self, name: &str) -> StoreResult<Option<TableInfo>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT t.name, t.hash_key, (SELECT count(*) FROM items i WHERE i.table_name = t.name)
                 FROM tables t WHERE t.name = ?1",
                [name],
                table_row,
            )
            .optional()
        })
    }

    /// `ListTables`, with each table's description.
    pub fn list_tables(&self) -> StoreResult<Vec<TableInfo>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT t.name, t.hash_key, (SELECT count(*) FROM items i WHERE i.table_name = t.name)
                 FROM tables t ORDER BY t.name",
            )?;
            let rows = stmt.query_map([], table_row)?;
            rows.collect()
        })
    }

    /// `PutItem`: the item must carry the table's hash key as a string
    /// (`Invalid` otherwise); `NotFound` if the table does not exist.
    pub fn put_item(&self, table: &str, item: &Item) -> StoreResult<()> {
        let hash_key = self
            .table_hash_key(table)?
            .ok_or_else(|| StoreError::NotFound {
                kind: "table",
                name: table.to_string(),
            })?;
        let key = item_key(table, &hash_key, item)?;
        let json = to_json(item)?;
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT INTO items (table_name, hash_key, item) VALUES (?1, ?2, ?3)
                 ON CONFLICT(table_name, hash_key) DO UPDATE SET item = excluded.item",
                [table, key.as_str(), json.as_str()],
            )
        })
        .map(|_| ())
    }

    /// `BatchWriteItem`: puts every item in one transaction (all or none),
    /// with `put_item`'s checks. For whitelisting a large fleet at once.
    pub fn put_items(&self, table: &str, items: &[Item]) -> StoreResult<()> {
        let hash_key = self
            .table_hash_key(table)?
            .ok_or_else(|| StoreError::NotFound {
                kind: "table",
                name: table.to_string(),
            })?;
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            rows.push((item_key(table, &hash_key, item)?, to_json(item)?));
        }
        self.with_tx(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO items (table_name, hash_key, item) VALUES (?1, ?2, ?3)
                     ON CONFLICT(table_name, hash_key) DO UPDATE SET item = excluded.item",
                )
                .map_err(|e| self.sql_error(e))?;
            for (key, json) in &rows {
                stmt.execute([table, key.as_str(), json.as_str()])
                    .map_err(|e| self.sql_error(e))?;
            }
            Ok(())
        })
    }

    /// `GetItem` by hash key.
    pub fn get_item(&self, table: &str, key: &str) -> StoreResult<Option<Item>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT item FROM items WHERE table_name = ?1 AND hash_key = ?2",
                [table, key],
                |r| json_col(r, 0),
            )
            .optional()
        })
    }

    /// `DeleteItem`. False if absent.
    pub fn delete_item(&self, table: &str, key: &str) -> StoreResult<bool> {
        self.with_conn(|c| {
            c.execute_cached(
                "DELETE FROM items WHERE table_name = ?1 AND hash_key = ?2",
                [table, key],
            )
        })
        .map(|n| n > 0)
    }

    /// `Scan`, ordered by hash key.
    pub fn scan(&self, table: &str) -> StoreResult<Vec<Item>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached("SELECT item FROM items WHERE table_name = ?1 ORDER BY hash_key")?;
            let rows = stmt.query_map([table], |r| json_col(r, 0))?;
            rows.collect()
        })
    }

    fn table_hash_key(&self, name: &str) -> StoreResult<Option<String>> {
        self.with_conn(|c| {
            c.query_row_cached("SELECT hash_key FROM tables WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
        })
    }
}

/// The item's hash key value: a non-empty string, as DynamoDB requires for `S` keys.
fn item_key(table: &str, hash_key: &str, item: &Item) -> StoreResult<String> {
    match item.get(hash_key) {
        Some(Value::String(k)) if !k.is_empty() => Ok(k.clone()),
        _ => Err(StoreError::Invalid {
            what: format!("item for table {table}"),
            reason: format!("it needs the hash key {hash_key} as a non-empty string"),
        }),
    }
}

fn table_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TableInfo> {
    Ok(TableInfo {
        name: r.get(0)?,
        hash_key: r.get(1)?,
        item_count: r.get::<_, i64>(2)?.max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Item {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn items_are_keyed_by_the_hash_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .create_table("CertRotationDevices", "SerialNumber")
            .unwrap();
        store
            .create_table("CertRotationDevices", "SerialNumber")
            .unwrap();
        assert!(matches!(
            store.create_table("CertRotationDevices", "Other"),
            Err(StoreError::Conflict { .. })
        ));
        let row = item(json!({"SerialNumber": "B1", "CrState": "CR_WHITELISTED"}));
        store.put_item("CertRotationDevices", &row).unwrap();
        store
            .put_item(
                "CertRotationDevices",
                &item(json!({"SerialNumber": "A1", "CrState": "CR_WHITELISTED"})),
            )
            .unwrap();
        // Put replaces the whole item, as DynamoDB's PutItem does.
        store
            .put_item(
                "CertRotationDevices",
                &item(json!({"SerialNumber": "B1", "CrState": "CR_THING_CREATED"})),
            )
            .unwrap();
        assert_eq!(
            store
                .get_item("CertRotationDevices", "B1")
                .unwrap()
                .unwrap()["CrState"],
            "CR_THING_CREATED"
        );
        let serials: Vec<_> = store
            .scan("CertRotationDevices")
            .unwrap()
            .into_iter()
            .map(|i| i["SerialNumber"].clone())
            .collect();
        assert_eq!(serials, vec![json!("A1"), json!("B1")]);
        assert_eq!(
            store
                .describe_table("CertRotationDevices")
                .unwrap()
                .unwrap()
                .item_count,
            2
        );
        assert!(matches!(
            store.put_item("CertRotationDevices", &item(json!({"SerialNumber": 5}))),
            Err(StoreError::Invalid { .. })
        ));
        assert!(matches!(
            store.put_item("Nope", &row),
            Err(StoreError::NotFound { .. })
        ));
        // A batch is all or nothing: one bad item, nothing written.
        let batch = [
            item(json!({"SerialNumber": "C1"})),
            item(json!({"Serial": "C2"})),
        ];
        assert!(store.put_items("CertRotationDevices", &batch).is_err());
        assert!(store
            .get_item("CertRotationDevices", "C1")
            .unwrap()
            .is_none());
        store.put_items("CertRotationDevices", &batch[..1]).unwrap();
        assert!(store.delete_item("CertRotationDevices", "C1").unwrap());
        assert!(store.delete_item("CertRotationDevices", "A1").unwrap());
        assert!(!store.delete_item("CertRotationDevices", "A1").unwrap());
        assert!(store.delete_table("CertRotationDevices").unwrap());
        assert!(store.scan("CertRotationDevices").unwrap().is_empty());
        assert!(store.list_tables().unwrap().is_empty());
    }
}
