//! The append-only event log: every JITP step, rotation decision (with its
//! reason) and registry change, for `status`, the TUI's device timeline and
//! post-mortems.
//!
//! Bounded: rows older than [`EventRetention::max_age_days`] and all but the
//! newest [`EventRetention::max_rows`] are pruned as the log grows (every
//! [`PRUNE_EVERY`] appends), so a flood of events costs a bounded file.

use super::{json_col, to_json, Cached, Store, StoreResult};
use crate::model::{now_millis, EventRecord};
use std::sync::atomic::Ordering;

/// How long and how big the event log may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRetention {
    /// Rows older than this are pruned.
    pub max_age_days: u32,
    /// At most this many rows are kept (the newest).
    pub max_rows: u64,
}

impl Default for EventRetention {
    /// 30 days, 200,000 rows (tens of MB at the log's typical row size).
    fn default() -> Self {
        EventRetention {
            max_age_days: 30,
            max_rows: 200_000,
        }
    }
}

/// Appends between two prunes: pruning is one indexed delete, cheap
/// enough at this rate even during a fleet onboarding.
pub const PRUNE_EVERY: u64 = 1_000;

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
        let seq = self.with_conn(|c| {
            c.execute_cached(
                "INSERT INTO event_log (at, kind, subject, detail) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![now_millis(), kind, subject, detail],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.appended(1)?;
        Ok(seq)
    }

    /// Sets the event log's retention and prunes to it now.
    pub fn set_event_retention(&self, retention: EventRetention) {
        *self
            .events
            .retention
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = retention;
        if let Err(e) = self.prune_events() {
            tracing::warn!(error = %e, "event log not pruned");
        }
    }

    /// Counts appends; prunes every [`PRUNE_EVERY`].
    fn appended(&self, n: u64) -> StoreResult<()> {
        let before = self.events.appends.fetch_add(n, Ordering::Relaxed);
        if (before + n) / PRUNE_EVERY != before / PRUNE_EVERY {
            self.prune_events()?;
        }
        Ok(())
    }

    /// Deletes the rows the retention does not keep; returns how many.
    /// Does nothing on a read-only store.
    pub fn prune_events(&self) -> StoreResult<usize> {
        if self.read_only {
            return Ok(0);
        }
        let retention = *self
            .events
            .retention
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let max_age_ms = i64::from(retention.max_age_days) * 24 * 3600 * 1000;
        let cutoff = now_millis().saturating_sub(max_age_ms);
        let keep = i64::try_from(retention.max_rows).unwrap_or(i64::MAX);
        self.with_conn(|c| {
            // Rows are appended in time order: everything before the first
            // young enough row is old. Walks the old rows only.
            let first_young: Option<i64> = c
                .query_row_cached(
                    "SELECT seq FROM event_log WHERE at >= ?1 ORDER BY seq LIMIT 1",
                    [cutoff],
                    |r| r.get(0),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    other => Err(other),
                })?;
            let by_age = c.execute_cached(
                "DELETE FROM event_log WHERE seq < ?1",
                [first_young.unwrap_or(i64::MAX)],
            )?;
            let by_size = c.execute_cached(
                "DELETE FROM event_log WHERE seq <= (SELECT max(seq) FROM event_log) - ?1",
                [keep],
            )?;
            Ok(by_age + by_size)
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
        .and_then(|last| {
            self.appended(rows.len() as u64)?;
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

    #[test]
    fn the_log_is_pruned_to_its_newest_rows_and_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_event_retention(EventRetention {
            max_age_days: 30,
            max_rows: 100,
        });
        for n in 0..(PRUNE_EVERY + 10) {
            store.append_event("flood", "x", &json!({"n": n})).unwrap();
        }
        // Pruned at the PRUNE_EVERY-th append, then 10 more.
        let rows = store.list_events(0, usize::MAX).unwrap();
        assert_eq!(rows.len(), 110);
        assert_eq!(rows.last().unwrap().detail["n"], PRUNE_EVERY + 9);
        // A row older than the age bound goes at the next prune.
        store
            .with_conn(|c| {
                c.execute(
                    "UPDATE event_log SET at = 0 WHERE seq = (SELECT min(seq) FROM event_log)",
                    [],
                )
            })
            .unwrap();
        store.set_event_retention(EventRetention {
            max_age_days: 1,
            max_rows: 1_000_000,
        });
        assert_eq!(store.list_events(0, usize::MAX).unwrap().len(), 109);
    }
}
