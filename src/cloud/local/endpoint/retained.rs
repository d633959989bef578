//! The retained messages, as AWS IoT keeps them: one per topic, replaced
//! by the next retained publish, cleared by an empty one, delivered to new
//! subscribers, and kept across restarts (the router's persister writes
//! the changed topics to the store; they are restored on start).
//!
//! Bounded like everything else: per account, a count (AWS's quota) and a
//! byte budget that includes a per-message overhead, so neither big nor
//! tiny messages can grow memory past it. A publish that would go over is
//! refused; over MQTT 3.1.1 that is a disconnect, and the caller says why.
//!
//! Pure: no lock, no IO. The router holds it under its lock.

use super::limits::{MAX_RETAINED_PER_FILTER, RETAINED_OVERHEAD_BYTES};
use super::message::Message;
use super::topics;
use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use std::collections::{BTreeMap, BTreeSet};

/// The retained messages of the account.
#[derive(Debug)]
pub struct Retained {
    /// By topic: ordered, so a filter with a literal prefix scans only
    /// the topics under it.
    messages: BTreeMap<String, Message>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// Topics changed since the persister last looked.
    dirty: BTreeSet<String>,
}

/// What one retained message costs against the byte budget.
fn cost(topic: &str, payload: &[u8]) -> usize {
    topic.len() + payload.len() + RETAINED_OVERHEAD_BYTES
}

impl Retained {
    /// An empty store bounded by `max_messages` and `max_bytes`.
    pub fn new(max_messages: usize, max_bytes: usize) -> Retained {
        Retained {
            messages: BTreeMap::new(),
            bytes: 0,
            max_messages,
            max_bytes,
            dirty: BTreeSet::new(),
        }
    }

    /// Messages held.
    pub fn count(&self) -> usize {
        self.messages.len()
    }

    /// Bytes held, as counted against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Stores (or, with an empty payload, clears) the retained message of
    /// `message.topic`. Refused, with the reason, when it would take the
    /// store over its count or byte bound; nothing changes then.
    pub fn put(&mut self, message: &Message) -> Result<(), String> {
        let old = self
            .messages
            .get(&message.topic)
            .map(|m| cost(&m.topic, &m.payload));
        if message.payload.is_empty() {
            if let Some(old) = old {
                self.messages.remove(&message.topic);
                self.bytes -= old;
                self.dirty.insert(message.topic.clone());
            }
            return Ok(());
        }
        let new = cost(&message.topic, &message.payload);
        let count = self.messages.len() + usize::from(old.is_none());
        let bytes = self.bytes - old.unwrap_or(0) + new;
        if count > self.max_messages {
            return Err(format!(
                "the account's retained messages are full ({} of {}); clear some with an empty retained publish",
                self.messages.len(),
                self.max_messages
            ));
        }
        if bytes > self.max_bytes && bytes > self.bytes {
            return Err(format!(
                "the account's retained messages are full ({} of {} bytes); clear some with an empty retained publish",
                self.bytes, self.max_bytes
            ));
        }
        self.bytes = bytes;
        self.insert(message);
        self.dirty.insert(message.topic.clone());
        Ok(())
    }

    /// Puts back a message read from the store at start (not marked
    /// changed). Returns false when it does not fit the bounds.
    pub fn restore(&mut self, message: Message) -> bool {
        let new = cost(&message.topic, &message.payload);
        if message.payload.is_empty()
            || self.messages.contains_key(&message.topic)
            || self.messages.len() >= self.max_messages
            || self.bytes + new > self.max_bytes
        {
            return false;
        }
        self.bytes += new;
        self.insert(&message);
        true
    }

    fn insert(&mut self, message: &Message) {
        let kept = Message {
            topic: message.topic.clone(),
            // A copy: the publish's payload is a slice of the connection's
            // read buffer, and keeping the slice would keep the whole buffer.
            payload: Bytes::copy_from_slice(&message.payload),
            // No QoS 2 on AWS IoT.
            qos: match message.qos {
                QoS::AtMostOnce => QoS::AtMostOnce,
                _ => QoS::AtLeastOnce,
            },
            retain: true,
            // MQTT 5 properties stay with it (not persisted across restarts).
            properties: message.properties.clone(),
        };
        self.messages.insert(message.topic.clone(), kept);
    }

    /// The retained messages matching `filter`, at most
    /// [`MAX_RETAINED_PER_FILTER`], in topic order.
    pub fn matching<'a>(&'a self, filter: &'a str) -> impl Iterator<Item = &'a Message> + 'a {
        // Only topics starting with the filter's literal part can match
        // (`a/b/#` also matches `a/b` itself: drop the trailing `/`).
        let literal = filter
            .find(['+', '#'])
            .map_or(filter, |i| &filter[..i])
            .trim_end_matches('/');
        self.messages
            .range::<str, _>((
                std::ops::Bound::Included(literal),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(topic, _)| topic.starts_with(literal))
            .map(|(_, m)| m)
            .filter(move |m| topics::matches(filter, &m.topic))
            .take(MAX_RETAINED_PER_FILTER)
    }

    /// The topics changed since the last call, each with its message now
    /// (`None`: cleared) — what the persister writes to the store.
    pub fn take_changes(&mut self) -> Vec<(String, Option<Message>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|topic| {
                let now = self.messages.get(&topic).cloned();
                (topic, now)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, payload: &[u8]) -> Message {
        Message {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: None,
        }
    }

    #[test]
    fn full_by_count_refuses_new_topics_but_replaces_and_clears() {
        let mut r = Retained::new(2, 1 << 20);
        r.put(&msg("a/1", b"x")).unwrap();
        r.put(&msg("a/2", b"x")).unwrap();
        let err = r.put(&msg("a/3", b"x")).unwrap_err();
        assert!(err.contains("2 of 2"), "{err}");
        assert_eq!(r.count(), 2);
        r.put(&msg("a/2", b"replaced")).unwrap();
        r.put(&msg("a/1", b"")).unwrap();
        r.put(&msg("a/3", b"x")).unwrap();
        let topics: Vec<_> = r.matching("a/#").map(|m| m.topic.clone()).collect();
        assert_eq!(topics, ["a/2", "a/3"]);
        let changes = r.take_changes();
        assert_eq!(changes.len(), 3);
        assert!(changes.iter().any(|(t, m)| t == "a/1" && m.is_none()));
        assert!(r.take_changes().is_empty());
    }

    #[test]
    fn full_by_bytes_counts_the_overhead_of_tiny_messages() {
        let budget = 10 * (3 + 1 + RETAINED_OVERHEAD_BYTES);
        let mut r = Retained::new(1_000_000, budget);
        for n in 0..10 {
            r.put(&msg(&format!("t/{n}"), b"x")).unwrap();
        }
        assert!(r.put(&msg("t/x", b"x")).is_err());
        assert_eq!(r.bytes(), budget);
        // A smaller replacement fits even when full.
        r.put(&msg("t/0", b"")).unwrap();
        assert!(r.bytes() < budget);
        assert!(!r.restore(msg("t/0", &[0; 1000])));
        assert!(r.restore(msg("t/0", b"y")));
    }

    #[test]
    fn matching_scans_under_the_literal_prefix_and_honours_wildcards() {
        let mut r = Retained::new(100, 1 << 20);
        for t in ["a/b", "a/b/c", "a/bc", "a/x/c", "$aws/a", "b"] {
            r.put(&msg(t, b"1")).unwrap();
        }
        let got = |f: &str| -> Vec<String> { r.matching(f).map(|m| m.topic.clone()).collect() };
        assert_eq!(got("a/b/#"), ["a/b", "a/b/c"]);
        assert_eq!(got("a/+/c"), ["a/b/c", "a/x/c"]);
        assert_eq!(got("#"), ["a/b", "a/b/c", "a/bc", "a/x/c", "b"]);
        assert_eq!(got("a/bc"), ["a/bc"]);
    }
}
