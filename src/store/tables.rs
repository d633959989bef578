//! Named tables of JSON items keyed by a string hash key — the local
//! stand-in for DynamoDB (`CertRotationDevices`, hash key `SerialNumber`).

use super::{Store, StoreResult};
use crate::model::TableInfo;
use serde_json::{Map, Value};

/// A table item: attribute name → value (plain JSON, not DynamoDB's typed form).
pub type Item = Map<String, Value>;

#[allow(unused_variables)]
impl Store {
    /// `CreateTable` (idempotent when the hash key matches; `Conflict` otherwise).
    pub fn create_table(&self, name: &str, hash_key: &str) -> StoreResult<()> {
        todo!()
    }
    /// `DeleteTable` with all its items. False if absent.
    pub fn delete_table(&self, name: &str) -> StoreResult<bool> {
        todo!()
    }
    pub fn describe_table(&self, name: &str) -> StoreResult<Option<TableInfo>> {
        todo!()
    }
    pub fn list_tables(&self) -> StoreResult<Vec<TableInfo>> {
        todo!()
    }
    /// `PutItem`: the item must carry the table's hash key as a string
    /// (`Invalid` otherwise); `NotFound` if the table does not exist.
    pub fn put_item(&self, table: &str, item: &Item) -> StoreResult<()> {
        todo!()
    }
    pub fn get_item(&self, table: &str, key: &str) -> StoreResult<Option<Item>> {
        todo!()
    }
    /// `DeleteItem`. False if absent.
    pub fn delete_item(&self, table: &str, key: &str) -> StoreResult<bool> {
        todo!()
    }
    /// `Scan`, ordered by hash key.
    pub fn scan(&self, table: &str) -> StoreResult<Vec<Item>> {
        todo!()
    }
}
