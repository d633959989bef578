//! The MQTT endpoint's retained messages, one row per topic: written as
//! they change (the endpoint batches changes), read back when it starts,
//! so they survive a restart as they do on AWS IoT.

use super::{Store, StoreResult};
use crate::model::now_millis;

/// One retained message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedRow {
    pub topic: String,
    pub payload: Vec<u8>,
    /// 0 or 1 (AWS IoT has no QoS 2).
    pub qos: u8,
}

impl Store {
    /// Applies retained-message changes in one transaction: `(topic, Some(row))`
    /// stores the topic's message, `(topic, None)` clears it.
    pub fn save_retained(&self, changes: &[(String, Option<RetainedRow>)]) -> StoreResult<()> {
        let at = now_millis();
        self.with_tx(|tx| {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO retained_messages (topic, payload, qos, updated_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(topic) DO UPDATE SET payload = ?2, qos = ?3, updated_at = ?4",
                )
                .map_err(|e| self.sql_error(e))?;
            let mut clear = tx
                .prepare_cached("DELETE FROM retained_messages WHERE topic = ?1")
                .map_err(|e| self.sql_error(e))?;
            for (topic, row) in changes {
                match row {
                    Some(row) => put.execute(rusqlite::params![topic, row.payload, row.qos, at]),
                    None => clear.execute([topic]),
                }
                .map_err(|e| self.sql_error(e))?;
            }
            Ok(())
        })
    }

    /// Every retained message, in topic order.
    pub fn load_retained(&self) -> StoreResult<Vec<RetainedRow>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare("SELECT topic, payload, qos FROM retained_messages ORDER BY topic")?;
            let rows = stmt.query_map([], |r| {
                Ok(RetainedRow {
                    topic: r.get(0)?,
                    payload: r.get(1)?,
                    qos: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retained_rows_are_stored_replaced_cleared_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let row = |t: &str, p: &[u8]| RetainedRow {
            topic: t.into(),
            payload: p.to_vec(),
            qos: 1,
        };
        store
            .save_retained(&[
                ("a".into(), Some(row("a", b"1"))),
                ("b".into(), Some(row("b", b"2"))),
            ])
            .unwrap();
        store
            .save_retained(&[("a".into(), Some(row("a", b"3"))), ("b".into(), None)])
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load_retained().unwrap(), vec![row("a", b"3")]);
    }
}
