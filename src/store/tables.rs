//! Named tables of JSON items keyed by a hash key — the local stand-in for
//! DynamoDB (`CertRotationDevices`, hash key `SerialNumber`).
//!
//! Every item is kept twice in one row: as plain JSON (`item`), which the
//! TUI, the rotation function and `status` read, and — when written through
//! the AWS API — in DynamoDB's typed form (`typed`: `{"N": "1.5"}`,
//! `{"SS": [..]}`, `{"B": base64}`), so an API client gets back exactly the
//! types it wrote. A row written by jitpilot's own plain writers has no
//! typed form; the API derives one from the JSON (string → `S`, number →
//! `N`, object → `M`, …). Either writer's rows are read by the other.
//!
//! The storage key of an item (the `hash_key` column) is its hash key
//! value as text: the string of an `S` key, the canonical number of an `N`
//! key, the base64 of a `B` key.

use super::{json_col, to_json, Cached, Store, StoreError, StoreResult};
use crate::model::now_millis;
use rusqlite::OptionalExtension;
use serde_json::{Map, Value};

/// A table item: attribute name → value (plain JSON, not DynamoDB's typed form).
pub type Item = Map<String, Value>;

/// A table's key schema and creation time (the AWS API's `DescribeTable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub name: String,
    /// The hash key attribute's name.
    pub hash_key: String,
    /// Its DynamoDB type: `S`, `N` or `B`.
    pub hash_key_type: String,
    /// Epoch millis; 0 for a table made before the API existed.
    pub created_at: i64,
    pub item_count: u64,
}

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
                        "INSERT INTO tables (name, hash_key, created_at) VALUES (?1, ?2, ?3)",
                        rusqlite::params![name, hash_key, now_millis()],
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
                 ON CONFLICT(table_name, hash_key) DO UPDATE SET item = excluded.item, typed = NULL",
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
                     ON CONFLICT(table_name, hash_key) DO UPDATE SET item = excluded.item, typed = NULL",
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

    // ---- the AWS API's DynamoDB: typed items ------------------------------

    /// `CreateTable` through the AWS API: `AlreadyExists` when the name is
    /// taken (DynamoDB's `ResourceInUseException`), whatever its key.
    pub fn create_typed_table(
        &self,
        name: &str,
        hash_key: &str,
        hash_key_type: &str,
    ) -> StoreResult<()> {
        self.with_tx(|tx| {
            let exists: Option<String> = tx
                .query_row_cached("SELECT name FROM tables WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| self.sql_error(e))?;
            if exists.is_some() {
                return Err(StoreError::AlreadyExists {
                    kind: "table",
                    name: name.to_string(),
                });
            }
            tx.execute_cached(
                "INSERT INTO tables (name, hash_key, hash_key_type, created_at) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![name, hash_key, hash_key_type, now_millis()],
            )
            .map_err(|e| self.sql_error(e))?;
            Ok(())
        })
    }

    /// A table's key schema and item count (`DescribeTable`), or `None` if
    /// there is no such table.
    pub fn table_schema(&self, name: &str) -> StoreResult<Option<TableSchema>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT t.name, t.hash_key, t.hash_key_type, t.created_at,
                        (SELECT count(*) FROM items i WHERE i.table_name = t.name)
                 FROM tables t WHERE t.name = ?1",
                [name],
                schema_row,
            )
            .optional()
        })
    }

    /// Every table's schema, by name (`ListTables`).
    pub fn table_schemas(&self) -> StoreResult<Vec<TableSchema>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT t.name, t.hash_key, t.hash_key_type, t.created_at,
                        (SELECT count(*) FROM items i WHERE i.table_name = t.name)
                 FROM tables t ORDER BY t.name",
            )?;
            let rows = stmt.query_map([], schema_row)?;
            rows.collect()
        })
    }

    /// One item in DynamoDB's typed form, by storage key.
    pub fn typed_item(&self, table: &str, key: &str) -> StoreResult<Option<Item>> {
        let row = self.with_conn(|c| {
            c.query_row_cached(
                "SELECT item, typed FROM items WHERE table_name = ?1 AND hash_key = ?2",
                [table, key],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()
        })?;
        row.map(|(plain, typed)| self.typed_from_row(table, &plain, typed.as_deref()))
            .transpose()
    }

    /// Up to `limit` items in storage-key order after the storage key
    /// `after` (`Scan` pages), each with its storage key, in typed form.
    pub fn typed_items_after(
        &self,
        table: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Item)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, String, Option<String>)> = self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT hash_key, item, typed FROM items
                 WHERE table_name = ?1 AND (?2 IS NULL OR hash_key > ?2)
                 ORDER BY hash_key LIMIT ?3",
            )?;
            let rows = stmt.query_map(rusqlite::params![table, after, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(key, plain, typed)| {
                Ok((key, self.typed_from_row(table, &plain, typed.as_deref())?))
            })
            .collect()
    }

    /// Runs `f` in one transaction over the items of every table: it reads
    /// the current items, decides, and writes. Everything `f` wrote lands
    /// when it returns `Ok`, nothing when it returns `Err` — a conditional
    /// write whose condition fails, or a batch with one bad request, leaves
    /// the tables as they were.
    pub fn with_items<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ItemTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let outcome = self.with_raw(|conn| {
            let sql = |e| self.sql_error(e);
            // Inside a batch this is a savepoint of the batch's transaction.
            if conn.is_autocommit() {
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(sql)?;
                let value = f(&ItemTx {
                    tx: &tx,
                    store: self,
                });
                if value.is_ok() {
                    tx.commit().map_err(sql)?;
                }
                Ok(value)
            } else {
                let sp = conn.savepoint().map_err(sql)?;
                let value = f(&ItemTx {
                    tx: &sp,
                    store: self,
                });
                if value.is_ok() {
                    sp.commit().map_err(sql)?;
                }
                Ok(value)
            }
        });
        outcome?
    }

    fn typed_from_row(&self, table: &str, plain: &str, typed: Option<&str>) -> StoreResult<Item> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt {
            path: self.path().to_path_buf(),
            reason: format!("an item of table {table} is not JSON: {e}"),
        };
        match typed {
            Some(typed) => serde_json::from_str(typed).map_err(corrupt),
            None => {
                let plain: Item = serde_json::from_str(plain).map_err(corrupt)?;
                Ok(plain_to_typed(&plain))
            }
        }
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

/// Items of the tables inside one transaction ([`Store::with_items`]).
pub struct ItemTx<'a> {
    tx: &'a rusqlite::Connection,
    store: &'a Store,
}

impl ItemTx<'_> {
    /// A table's schema, or `None`.
    pub fn schema(&self, table: &str) -> StoreResult<Option<TableSchema>> {
        self.tx
            .query_row_cached(
                "SELECT t.name, t.hash_key, t.hash_key_type, t.created_at,
                        (SELECT count(*) FROM items i WHERE i.table_name = t.name)
                 FROM tables t WHERE t.name = ?1",
                [table],
                schema_row,
            )
            .optional()
            .map_err(|e| self.store.sql_error(e))
    }

    /// The item at storage key `key`, in typed form.
    pub fn get(&self, table: &str, key: &str) -> StoreResult<Option<Item>> {
        let row: Option<(String, Option<String>)> = self
            .tx
            .query_row_cached(
                "SELECT item, typed FROM items WHERE table_name = ?1 AND hash_key = ?2",
                [table, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.store.sql_error(e))?;
        row.map(|(plain, typed)| self.store.typed_from_row(table, &plain, typed.as_deref()))
            .transpose()
    }

    /// Writes the typed item at storage key `key` (and its plain JSON form
    /// for jitpilot's own readers), replacing any item there.
    pub fn put(&self, table: &str, key: &str, typed: &Item) -> StoreResult<()> {
        let plain = to_json(&typed_to_plain(typed))?;
        let typed = to_json(typed)?;
        self.tx
            .execute_cached(
                "INSERT INTO items (table_name, hash_key, item, typed) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(table_name, hash_key) DO UPDATE SET item = excluded.item, typed = excluded.typed",
                [table, key, plain.as_str(), typed.as_str()],
            )
            .map(|_| ())
            .map_err(|e| self.store.sql_error(e))
    }

    /// Deletes the item at storage key `key`; false if there was none.
    pub fn delete(&self, table: &str, key: &str) -> StoreResult<bool> {
        self.tx
            .execute_cached(
                "DELETE FROM items WHERE table_name = ?1 AND hash_key = ?2",
                [table, key],
            )
            .map(|n| n > 0)
            .map_err(|e| self.store.sql_error(e))
    }
}

fn schema_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TableSchema> {
    Ok(TableSchema {
        name: r.get(0)?,
        hash_key: r.get(1)?,
        hash_key_type: r.get(2)?,
        created_at: r.get(3)?,
        item_count: r.get::<_, i64>(4)?.max(0) as u64,
    })
}

/// DynamoDB's typed form of a plain JSON item: string → `S`, number → `N`,
/// bool → `BOOL`, null → `NULL`, object → `M`, array → `L`.
pub fn plain_to_typed(plain: &Item) -> Item {
    plain
        .iter()
        .map(|(k, v)| (k.clone(), plain_value_to_typed(v)))
        .collect()
}

fn plain_value_to_typed(value: &Value) -> Value {
    let one = |tag: &str, v: Value| {
        let mut m = Map::new();
        m.insert(tag.to_string(), v);
        Value::Object(m)
    };
    match value {
        Value::String(s) => one("S", Value::String(s.clone())),
        Value::Number(n) => one("N", Value::String(n.to_string())),
        Value::Bool(b) => one("BOOL", Value::Bool(*b)),
        Value::Null => one("NULL", Value::Bool(true)),
        Value::Array(a) => one(
            "L",
            Value::Array(a.iter().map(plain_value_to_typed).collect()),
        ),
        Value::Object(o) => one("M", Value::Object(plain_to_typed(o))),
    }
}

/// The plain JSON form of a typed item, for jitpilot's own readers: `S` →
/// string, `N` → number (or its text when JSON cannot hold it), `B` →
/// base64 text, sets → arrays, `M` → object, `L` → array.
pub fn typed_to_plain(typed: &Item) -> Item {
    typed
        .iter()
        .map(|(k, v)| (k.clone(), typed_value_to_plain(v)))
        .collect()
}

fn typed_value_to_plain(value: &Value) -> Value {
    let Some((tag, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return Value::Null;
    };
    let number = |v: &Value| match v.as_str() {
        Some(text) => plain_number(text),
        None => v.clone(),
    };
    match (tag.as_str(), inner) {
        ("N", v) => number(v),
        ("NULL", _) => Value::Null,
        ("NS", Value::Array(a)) => Value::Array(a.iter().map(number).collect()),
        ("M", Value::Object(o)) => Value::Object(typed_to_plain(o)),
        ("L", Value::Array(a)) => Value::Array(a.iter().map(typed_value_to_plain).collect()),
        // S, B (base64 text), BOOL, SS, BS (base64 texts) are already plain.
        (_, v) => v.clone(),
    }
}

/// A DynamoDB number as a JSON number when it is one exactly, else its text.
fn plain_number(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f.to_string() == text => Value::from(f),
        _ => Value::String(text.to_string()),
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
                .table_schema("CertRotationDevices")
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
        assert!(store.table_schemas().unwrap().is_empty());
    }
}
