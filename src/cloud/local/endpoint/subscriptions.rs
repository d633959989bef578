//! The router's subscription index: which clients subscribed to which
//! filters, kept so that routing a message does not scan every session —
//! filters without wildcards are looked up by topic, wildcard filters are
//! matched one by one, and each shared subscription group
//! (`$share/{ShareName}/{filter}`, MQTT 3.1.1 and 5, as on AWS) takes its
//! members in turn.

use super::topics::{self, shared_filter};
use rumqttc::mqttbytes::QoS;
use std::collections::{HashMap, HashSet};

/// One shared subscription group: `$share/{ShareName}/{filter}`.
struct SharedGroup {
    /// The filter after the share name.
    filter: String,
    /// Its members' clientIds, in the order they joined.
    members: Vec<String>,
    /// Whose turn is next.
    next: usize,
}

/// Every subscription of every session, by filter.
#[derive(Default)]
pub struct SubscriptionIndex {
    /// Filters without wildcards: looked up by topic directly.
    exact: HashMap<String, HashSet<String>>,
    /// Filters with wildcards: matched one by one.
    wildcard: HashMap<String, HashSet<String>>,
    /// Shared subscription groups by their full `$share/...` filter.
    shared: HashMap<String, SharedGroup>,
}

impl SubscriptionIndex {
    /// `client_id` subscribed to `filter` (a shared one joins its group).
    pub fn add(&mut self, client_id: &str, filter: &str) {
        if let Some(inner) = shared_filter(filter) {
            let group = self
                .shared
                .entry(filter.to_string())
                .or_insert_with(|| SharedGroup {
                    filter: inner.to_string(),
                    members: Vec::new(),
                    next: 0,
                });
            if !group.members.iter().any(|m| m == client_id) {
                group.members.push(client_id.to_string());
            }
            return;
        }
        let index = if topics::is_exact(filter) {
            &mut self.exact
        } else {
            &mut self.wildcard
        };
        index
            .entry(filter.to_string())
            .or_default()
            .insert(client_id.to_string());
    }

    /// `client_id` no longer holds `filters`.
    pub fn remove<'a>(&mut self, client_id: &str, filters: impl Iterator<Item = &'a String>) {
        for filter in filters {
            if shared_filter(filter).is_some() {
                if let Some(group) = self.shared.get_mut(filter) {
                    group.members.retain(|m| m != client_id);
                    if group.members.is_empty() {
                        self.shared.remove(filter);
                    }
                }
                continue;
            }
            for index in [&mut self.exact, &mut self.wildcard] {
                if let Some(clients) = index.get_mut(filter) {
                    clients.remove(client_id);
                    if clients.is_empty() {
                        index.remove(filter);
                    }
                }
            }
        }
    }

    /// Every client with a (non-shared) filter matching `topic`; a client
    /// may come more than once.
    pub fn subscribers<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a str> {
        let exact = self.exact.get(topic).into_iter().flatten();
        let wildcard = self
            .wildcard
            .iter()
            .filter(move |(filter, _)| topics::matches(filter, topic))
            .flat_map(|(_, clients)| clients);
        exact.chain(wildcard).map(String::as_str)
    }

    /// One member of every shared group whose filter matches `topic`, with
    /// the group's full filter: the next `online` member in turn, else (all
    /// offline) a `persistent` one, which queues the message as AWS does.
    pub fn shared_picks(
        &mut self,
        topic: &str,
        online: impl Fn(&str) -> bool,
        persistent: impl Fn(&str) -> bool,
    ) -> Vec<(String, &str)> {
        let mut picked = Vec::new();
        for (full, group) in self.shared.iter_mut() {
            if group.members.is_empty() || !topics::matches(&group.filter, topic) {
                continue;
            }
            let n = group.members.len();
            let order = (0..n).map(|i| (group.next + i) % n);
            let chosen = order
                .clone()
                .find(|&i| online(&group.members[i]))
                .or_else(|| order.clone().find(|&i| persistent(&group.members[i])));
            let Some(i) = chosen else {
                continue;
            };
            group.next = (i + 1) % n;
            picked.push((group.members[i].clone(), full.as_str()));
        }
        picked
    }
}

/// The lower of two QoS levels (a delivery gets at most what was granted).
pub fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) {
        a
    } else {
        b
    }
}

/// The higher of two QoS levels (overlapping subscriptions: the best wins).
pub fn max_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) >= (b as u8) {
        a
    } else {
        b
    }
}
