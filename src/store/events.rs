//! The append-only event log: every JITP step, rotation decision (with its
//! reason) and registry change, for `status`, the TUI's device timeline and
//! post-mortems.

use super::{json_col, to_json, Cached, Store, StoreResult};
use crate::model::{now_millis, EventRecord};

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        seq: r.get(0)?,
        at: r.get(1)?,
        kind: r.get(2)?,
        subject: r.get(3)?,
        detail: json_col(r, 4)?,
    })
}

/// SQLite's LIMIT takes an i64; `usize::MAX` means "no limit".
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Store {
    /// Appends one event; returns its sequence number.
    pub fn append_event(
        &self,
        kind: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> StoreResult<i64> {
        let detail = to_json(detail)?;
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT INTO event_log (at, kind, subject, detail) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![now_millis(), kind, subject, detail],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Appends several events in one transaction: `(kind, subject, detail)`.
    /// Returns the sequence number of the last one (0 for none).
    pub fn append_events(
        &self,
        events: &[(String, String, serde_json::Value)],
    ) -> StoreResult<i64> {
        let mut rows = Vec::with_capacity(events.len());
        for (kind, subject, detail) in events {
            rows.push((kind, subject, to_json(detail)?));
        }
        let at = now_millis();
        self.with_tx(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO event_log (at, kind, subject, detail) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| self.sql_error(e))?;
            let mut last = 0;
            for (kind, subject, detail) in &rows {
                stmt.execute(rusqlite::params![at, kind, subject, detail])
                    .map_err(|e| self.sql_error(e))?;
                last = tx.last_insert_rowid();
            }
            Ok(last)
        })
    }

    /// Events with `seq > after`, oldest first, at most `limit`.
    pub fn list_events(&self, after: i64, limit: usize) -> StoreResult<Vec<EventRecord>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, at, kind, subject, detail FROM event_log
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(rusqlite::params![after, sql_limit(limit)], event_row)?;
            rows.collect()
        })
    }

    /// Events about one subject (a serial, a certificateId), oldest first:
    /// the most recent `limit` of them.
    pub fn list_events_for(&self, subject: &str, limit: usize) -> StoreResult<Vec<EventRecord>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, at, kind, subject, detail FROM (
                     SELECT * FROM event_log WHERE subject = ?1 ORDER BY seq DESC LIMIT ?2
                 ) ORDER BY seq",
            )?;
            let rows = stmt.query_map(rusqlite::params![subject, sql_limit(limit)], event_row)?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_append_in_order_and_filter_by_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store
            .append_event("jitp.registered", "SER1", &json!({"certId": "c1"}))
            .unwrap();
        let b = store
            .append_event("jitp.registered", "SER2", &json!({}))
            .unwrap();
        let c = store
            .append_event("rotation.man_cert_created", "SER1", &json!({"n": 2}))
            .unwrap();
        assert!(a < b && b < c);
        let all = store.list_events(0, 10).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].detail, json!({"certId": "c1"}));
        assert_eq!(store.list_events(a, 1).unwrap()[0].seq, b);
        let ser1 = store.list_events_for("SER1", 10).unwrap();
        assert_eq!(
            ser1.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["jitp.registered", "rotation.man_cert_created"]
        );
        let last = store
            .append_events(&[
                ("table.whitelisted".into(), "SER3".into(), json!({})),
                ("table.whitelisted".into(), "SER4".into(), json!({})),
            ])
            .unwrap();
        assert_eq!(store.list_events(c, 10).unwrap().last().unwrap().seq, last);
        assert_eq!(store.list_events_for("SER4", 10).unwrap().len(), 1);
        // The most recent one when limited.
        assert_eq!(store.list_events_for("SER1", 1).unwrap()[0].seq, c);
    }
}
