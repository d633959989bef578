//! The append-only event log: every JITP step, rotation decision (with its
//! reason) and registry change, for `status`, the TUI's device timeline and
//! post-mortems.

use super::{Store, StoreResult};
use crate::model::EventRecord;

#[allow(unused_variables)]
impl Store {
    /// Appends one event; returns its sequence number.
    pub fn append_event(
        &self,
        kind: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> StoreResult<i64> {
        todo!()
    }
    /// Events with `seq > after`, oldest first, at most `limit`.
    pub fn list_events(&self, after: i64, limit: usize) -> StoreResult<Vec<EventRecord>> {
        todo!()
    }
    /// Events about one subject (a serial, a certificateId), oldest first.
    pub fn list_events_for(&self, subject: &str, limit: usize) -> StoreResult<Vec<EventRecord>> {
        todo!()
    }
}
