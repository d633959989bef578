//! The registered-event outbox: a `$aws/events/certificates/registered/<caId>`
//! event JITP recorded and `rule_jitp`'s function has not finished yet
//! (why: see the module docs of `jitp`).

use super::JitpError;
use crate::model::EpochMillis;
use crate::store::{Store, StoreError};
use serde_json::Value;

/// Internal table of registered events not yet handled by the rules
/// (hash key `certificateId`). Not part of the walkthrough's wire contract;
/// it is empty except between a JITP and its `rule_jitp` invocation.
pub const REGISTERED_OUTBOX_TABLE: &str = "jitpilot-registered-event-outbox";
const OUTBOX_KEY: &str = "certificateId";

/// A `$aws/events/certificates/registered/<caId>` event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRegisteredEvent {
    /// The registered certificate (the outbox's key).
    pub certificate_id: String,
    /// The CA that issued it.
    pub ca_certificate_id: String,
    /// `certificateRegistrationTimestamp`.
    pub registered_at: EpochMillis,
    /// The certificate's CommonName (the serial), for the device's timeline.
    #[serde(default)]
    pub serial: Option<String>,
}

/// Records `event` in the outbox (idempotent: one entry per certificate).
pub fn record_pending(store: &Store, event: &PendingRegisteredEvent) -> Result<(), JitpError> {
    let item = match serde_json::to_value(event) {
        Ok(Value::Object(item)) => item,
        _ => {
            return Err(JitpError::Store(StoreError::Invalid {
                what: "registered event".into(),
                reason: "it could not be encoded as a JSON object".into(),
            }))
        }
    };
    match store.put_item(REGISTERED_OUTBOX_TABLE, &item) {
        // First use in this data dir: create the table, then write.
        Err(StoreError::NotFound { .. }) => {
            store.create_table(REGISTERED_OUTBOX_TABLE, OUTBOX_KEY)?;
            store.put_item(REGISTERED_OUTBOX_TABLE, &item)?;
        }
        other => other?,
    }
    Ok(())
}

/// Removes the certificate's entry from the outbox once its event was
/// handled. False when there was none.
pub fn mark_delivered(store: &Store, certificate_id: &str) -> Result<bool, JitpError> {
    Ok(store.delete_item(REGISTERED_OUTBOX_TABLE, certificate_id)?)
}

/// The registered events still waiting for their rules, oldest first.
/// An entry that cannot be read is skipped with a warning (and left there).
pub fn pending_registered_events(store: &Store) -> Result<Vec<PendingRegisteredEvent>, JitpError> {
    if store.table_schema(REGISTERED_OUTBOX_TABLE)?.is_none() {
        return Ok(Vec::new());
    }
    let mut pending = Vec::new();
    for item in store.scan(REGISTERED_OUTBOX_TABLE)? {
        match serde_json::from_value::<PendingRegisteredEvent>(Value::Object(item)) {
            Ok(event) => pending.push(event),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable registered-event outbox entry skipped")
            }
        }
    }
    pending.sort_by_key(|e| e.registered_at);
    Ok(pending)
}
