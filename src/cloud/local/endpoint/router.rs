//! The router: every session by clientId, their subscriptions, retained
//! messages, and the fan-out of each published message to subscribers and
//! to the rules engine. Shared subscriptions (`$share/{ShareName}/{filter}`,
//! MQTT 3.1.1 and 5, as on AWS) get each message once per group, to one
//! member in turn (`subscriptions.rs` keeps the index).
//!
//! One mutex guards the broker state; every critical section is short and
//! never awaits. Deliveries go to connection tasks through bounded channels
//! with `try_send`, so a slow client never slows the router: its QoS 0
//! messages are dropped (and counted), its QoS 1 messages are kept for a
//! persistent session.

use super::authz::ConnectionPolicy;
use super::limits::{Limits, MAX_QUEUED_MESSAGES};
use super::message::{Message, Origin};
use super::publish::Publish;
use super::retained::Retained;
use super::rules_engine::RulesEngine;
use super::subscriptions::{max_qos, min_qos, SubscriptionIndex};
use super::topics::{self, shared_filter};
use crate::cloud::events::{CloudEvent, EventBus, EventKind};
use rumqttc::mqttbytes::QoS;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The live link from the router to one connection task.
pub struct Link {
    /// Tells stale detaches apart from the current connection's.
    pub conn_id: u64,
    /// Deliveries for the connection task (boxed: an empty channel's
    /// slots are a pointer each, not a whole message).
    pub tx: mpsc::Sender<Box<Message>>,
    /// Cancelled when a newer connection takes over the clientId.
    pub evict: CancellationToken,
    /// `iot:Receive` is checked per delivery with the subscriber's policies.
    pub policy: Arc<ConnectionPolicy>,
    /// The connection's certificateId.
    pub principal: String,
    /// Cancelled when that certificate is set INACTIVE or REVOKED.
    pub deactivated: CancellationToken,
}

/// One clientId's session, online or (if persistent) offline.
struct SessionEntry {
    subscriptions: HashMap<String, QoS>,
    /// `cleanSession = false`: kept with its subscriptions and queued QoS 1
    /// messages while offline.
    persistent: bool,
    link: Option<Link>,
    /// QoS 1 messages for an offline persistent session (bounded, oldest dropped).
    queued: VecDeque<Message>,
    /// The policies of the last connection: offline deliveries are checked
    /// against them before queueing.
    last_policy: Option<Arc<ConnectionPolicy>>,
    /// AWS's `versionNumber` of lifecycle events for this clientId.
    version: u64,
    /// MQTT 5 Session Expiry: how long a persistent session is kept
    /// offline (`None`: while the endpoint runs, 3.1.1's persistent session).
    expiry: Option<Duration>,
    /// When its last connection ended (a persistent session, offline).
    offline_since: Option<Instant>,
}

/// How a connection starts its session: 3.1.1's Clean Session, or MQTT
/// 5's Clean Start and Session Expiry Interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStart {
    /// Discard whatever session this clientId left.
    pub clean_start: bool,
    /// Keep the session (subscriptions, QoS 1 messages) after the connection ends.
    pub persistent: bool,
    /// How long it is kept offline; `None`: while the endpoint runs.
    pub expiry: Option<Duration>,
}

impl SessionStart {
    /// 3.1.1: Clean Session both discards and does not keep.
    pub fn clean_session(clean: bool) -> SessionStart {
        SessionStart {
            clean_start: clean,
            persistent: !clean,
            expiry: None,
        }
    }
}

/// What [`Router::attach`] found.
pub struct Attached {
    /// CONNACK's session-present flag.
    pub session_present: bool,
    /// QoS 1 messages to redeliver now.
    pub resumed: Vec<Message>,
    /// `versionNumber` for this connection's lifecycle events.
    pub version: u64,
}

struct RouterState {
    sessions: HashMap<String, SessionEntry>,
    /// Who subscribed to what, by filter.
    index: SubscriptionIndex,
    retained: Retained,
}

/// Counters shown by `EndpointHandle::stats`.
#[derive(Debug, Default)]
pub struct RouterCounters {
    pub messages_routed: AtomicU64,
    pub deliveries: AtomicU64,
    /// Deliveries lost because a connection's channel was full or the
    /// offline queue overflowed.
    pub deliveries_dropped: AtomicU64,
    /// Deliveries skipped because `iot:Receive` was denied.
    pub receive_denied: AtomicU64,
    /// Retained publishes refused because the retained store was full.
    pub retained_refused: AtomicU64,
}

/// The broker's shared state.
pub struct Router {
    state: Mutex<RouterState>,
    bus: EventBus,
    rules: RulesEngine,
    next_conn_id: AtomicU64,
    /// Subscriptions one session may hold.
    max_subscriptions: usize,
    /// Woken when a retained message changed: the persister writes it.
    pub retained_changed: tokio::sync::Notify,
    pub counters: RouterCounters,
}

impl Router {
    /// A router with no sessions, bounded by `limits`; `rules` runs the topic rules.
    pub fn new(bus: EventBus, rules: RulesEngine, limits: &Limits) -> Router {
        Router {
            state: Mutex::new(RouterState {
                sessions: HashMap::new(),
                index: SubscriptionIndex::default(),
                retained: Retained::new(limits.retained_messages, limits.retained_bytes),
            }),
            bus,
            rules,
            next_conn_id: AtomicU64::new(1),
            max_subscriptions: limits.subscriptions_per_connection,
            retained_changed: tokio::sync::Notify::new(),
            counters: RouterCounters::default(),
        }
    }

    /// Retained messages held now, and their bytes.
    pub fn retained_size(&self) -> (usize, usize) {
        let state = self.lock();
        (state.retained.count(), state.retained.bytes())
    }

    /// Puts back the retained messages persisted by the last run; returns
    /// how many did not fit the current bounds (dropped).
    pub fn restore_retained(&self, messages: impl IntoIterator<Item = Message>) -> usize {
        let mut state = self.lock();
        messages
            .into_iter()
            .filter(|m| !state.retained.restore(m.clone()))
            .count()
    }

    /// The retained topics changed since the last call, with their
    /// messages now (`None`: cleared), for the persister.
    pub fn take_retained_changes(&self) -> Vec<(String, Option<Message>)> {
        self.lock().retained.take_changes()
    }

    /// The rules engine (for `reload_rules`).
    pub fn rules(&self) -> &RulesEngine {
        &self.rules
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, RouterState> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than losing the broker; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of connected clients.
    pub fn online(&self) -> usize {
        self.lock()
            .sessions
            .values()
            .filter(|s| s.link.is_some())
            .count()
    }

    /// Attaches a connection to its clientId's session. An older connection
    /// with the same clientId is evicted (AWS: DUPLICATE_CLIENTID). A clean
    /// session starts empty; a persistent one resumes its subscriptions and
    /// queued QoS 1 messages.
    #[cfg(test)]
    pub fn attach(&self, client_id: &str, clean_session: bool, link: Link) -> Attached {
        self.attach_session(client_id, SessionStart::clean_session(clean_session), link)
    }

    /// [`Router::attach`] with MQTT 5's Clean Start and Session Expiry: a
    /// session offline longer than its expiry is gone.
    pub fn attach_session(&self, client_id: &str, start: SessionStart, link: Link) -> Attached {
        let mut state = self.lock();
        let existing = state.sessions.remove(client_id);
        let mut entry = match existing {
            Some(mut old) => {
                if let Some(old_link) = old.link.take() {
                    old_link.evict.cancel();
                }
                let expired = old
                    .offline_since
                    .zip(old.expiry)
                    .is_some_and(|(since, expiry)| since.elapsed() >= expiry);
                if start.clean_start || !old.persistent || expired {
                    state.index.remove(client_id, old.subscriptions.keys());
                    SessionEntry::fresh(old.version)
                } else {
                    old
                }
            }
            None => SessionEntry::fresh(0),
        };
        let session_present = !start.clean_start && entry.persistent;
        entry.persistent = start.persistent;
        entry.expiry = start.expiry;
        entry.offline_since = None;
        entry.version += 1;
        entry.last_policy = Some(link.policy.clone());
        entry.link = Some(link);
        let resumed = entry.queued.drain(..).collect();
        let version = entry.version;
        state.sessions.insert(client_id.to_string(), entry);
        Attached {
            session_present,
            resumed,
            version,
        }
    }

    /// An MQTT 5 DISCONNECT changed how long the session outlives the
    /// connection `conn_id` (0: it ends with it).
    pub fn set_session_expiry(&self, client_id: &str, conn_id: u64, seconds: u32) {
        let mut state = self.lock();
        if let Some(entry) = state.sessions.get_mut(client_id) {
            if entry.link.as_ref().map(|l| l.conn_id) == Some(conn_id) {
                entry.persistent = seconds > 0;
                entry.expiry = Some(Duration::from_secs(u64::from(seconds)));
            }
        }
    }

    /// Detaches a closed connection. `unacked` QoS 1 messages are kept for a
    /// persistent session; a clean session is forgotten. A stale detach (the
    /// connection was already evicted) changes nothing.
    pub fn detach(&self, client_id: &str, conn_id: u64, unacked: Vec<Message>) {
        let mut state = self.lock();
        let Some(entry) = state.sessions.get_mut(client_id) else {
            return;
        };
        if entry.link.as_ref().map(|l| l.conn_id) != Some(conn_id) {
            // Evicted by a newer connection resuming the same persistent
            // session: what the old one left unacknowledged goes to the new one.
            if entry.persistent {
                for message in unacked {
                    let undelivered = match &entry.link {
                        Some(link) => link
                            .tx
                            .try_send(Box::new(message))
                            .err()
                            .map(|e| *e.into_inner()),
                        None => Some(message),
                    };
                    if let Some(message) = undelivered {
                        queue_bounded(&mut entry.queued, message, &self.counters);
                    }
                }
            }
            return;
        }
        entry.link = None;
        if entry.persistent {
            entry.offline_since = Some(Instant::now());
            for message in unacked.into_iter().rev() {
                entry.queued.push_front(message);
            }
            while entry.queued.len() > MAX_QUEUED_MESSAGES {
                entry.queued.pop_back();
                self.counters
                    .deliveries_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if let Some(entry) = state.sessions.remove(client_id) {
            state.index.remove(client_id, entry.subscriptions.keys());
        }
    }

    /// Adds subscriptions; returns the retained messages they match, to be
    /// delivered to this client now (with the retain flag set).
    pub fn subscribe(
        &self,
        client_id: &str,
        filters: &[(String, QoS)],
    ) -> Result<Vec<Message>, String> {
        let mut state = self.lock();
        let Some(entry) = state.sessions.get_mut(client_id) else {
            return Ok(Vec::new());
        };
        let new = filters
            .iter()
            .filter(|(f, _)| !entry.subscriptions.contains_key(f))
            .count();
        if entry.subscriptions.len() + new > self.max_subscriptions {
            return Err(format!(
                "more than {} subscriptions on one connection (AWS's limit)",
                self.max_subscriptions
            ));
        }
        for (filter, qos) in filters {
            entry.subscriptions.insert(filter.clone(), *qos);
        }
        let policy = entry.link.as_ref().map(|l| l.policy.clone());
        for (filter, _) in filters {
            state.index.add(client_id, filter);
        }
        let mut retained = Vec::new();
        let now = Instant::now();
        // AWS: a shared subscription gets no retained messages on subscribe.
        for (filter, qos) in filters.iter().filter(|(f, _)| shared_filter(f).is_none()) {
            for message in state.retained.matching(filter).filter(|m| !m.expired(now)) {
                if policy
                    .as_ref()
                    .is_none_or(|p| p.may_receive(&message.topic))
                {
                    let mut m = message.clone();
                    m.qos = min_qos(m.qos, *qos);
                    m.retain = true;
                    retained.push(m);
                }
            }
        }
        Ok(retained)
    }

    /// Removes subscriptions.
    pub fn unsubscribe(&self, client_id: &str, filters: &[String]) {
        let mut state = self.lock();
        let Some(entry) = state.sessions.get_mut(client_id) else {
            return;
        };
        let removed: Vec<String> = filters
            .iter()
            .filter(|f| entry.subscriptions.remove(*f).is_some())
            .cloned()
            .collect();
        state.index.remove(client_id, removed.iter());
    }

    /// Routes a message published by the cloud (lifecycle events,
    /// functions, republish rules). A retained one refused by a full
    /// retained store is logged and not routed.
    pub fn route(self: &Arc<Self>, message: Message, origin: Origin) {
        let topic = message.topic.clone();
        if let Err(why) = self.route_checked(message, origin) {
            tracing::warn!(topic = ?topic, reason = ?why, "retained publish refused");
        }
    }

    /// Routes a message: retained store, every matching subscriber (once,
    /// at the highest granted QoS, if `iot:Receive` allows), then the rules.
    /// A retained message the retained store refuses (full) is not routed
    /// at all, and the reason comes back: the publisher is disconnected.
    pub fn route_checked(self: &Arc<Self>, message: Message, origin: Origin) -> Result<(), String> {
        {
            let mut state = self.lock();
            if message.retain {
                if let Err(why) = state.retained.put(&message) {
                    self.counters
                        .retained_refused
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(why);
                }
                self.retained_changed.notify_one();
            }
            self.counters
                .messages_routed
                .fetch_add(1, Ordering::Relaxed);
            let mut targets: HashMap<&str, QoS> = HashMap::new();
            for client in state.index.subscribers(&message.topic) {
                add_target(&state, &mut targets, client, &message.topic);
            }
            let targets: Vec<(String, QoS)> = targets
                .into_iter()
                .map(|(c, q)| (c.to_string(), q))
                .collect();
            let targets = targets
                .into_iter()
                .chain(shared_targets(&mut state, &message.topic));
            for (client, granted) in targets {
                let Some(entry) = state.sessions.get_mut(&client) else {
                    continue;
                };
                let mut delivery = message.clone();
                delivery.qos = min_qos(message.qos, granted);
                // Retain is set only on deliveries of stored retained messages.
                delivery.retain = false;
                self.deliver_to(&client, entry, delivery);
            }
        }
        self.rules.on_message(self, &message, &origin);
        Ok(())
    }

    fn deliver_to(&self, client: &str, entry: &mut SessionEntry, message: Message) {
        let policy = entry
            .link
            .as_ref()
            .map(|l| l.policy.clone())
            .or_else(|| entry.last_policy.clone());
        if let Some(policy) = policy {
            if !policy.may_receive(&message.topic) {
                self.counters.receive_denied.fetch_add(1, Ordering::Relaxed);
                self.bus.emit_with(|| {
                    CloudEvent::new(
                        EventKind::Connection,
                        format!("delivery skipped: iot:Receive on {} denied", message.topic),
                    )
                    .client(client)
                    .topic(message.topic.clone())
                });
                return;
            }
        }
        match &entry.link {
            Some(link) => match link.tx.try_send(Box::new(message)) {
                Ok(()) => {
                    self.counters.deliveries.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(message))
                | Err(mpsc::error::TrySendError::Closed(message)) => {
                    if entry.persistent && message.qos == QoS::AtLeastOnce {
                        queue_bounded(&mut entry.queued, *message, &self.counters);
                    } else {
                        self.counters
                            .deliveries_dropped
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
            None if entry.persistent && message.qos == QoS::AtLeastOnce => {
                queue_bounded(&mut entry.queued, message, &self.counters);
            }
            None => {}
        }
    }

    /// Closes every connection authenticated with `cert_id` (it was set
    /// INACTIVE or REVOKED); returns their clientIds.
    pub fn disconnect_principal(&self, cert_id: &str) -> Vec<String> {
        let state = self.lock();
        let mut clients = Vec::new();
        for (client, entry) in &state.sessions {
            if let Some(link) = entry.link.as_ref().filter(|l| l.principal == cert_id) {
                link.deactivated.cancel();
                clients.push(client.clone());
            }
        }
        clients
    }

    /// Closes every connection (shutdown): cancels their eviction tokens.
    pub fn disconnect_all(&self) {
        let state = self.lock();
        for entry in state.sessions.values() {
            if let Some(link) = &entry.link {
                link.evict.cancel();
            }
        }
    }
}

impl SessionEntry {
    fn fresh(version: u64) -> SessionEntry {
        SessionEntry {
            subscriptions: HashMap::new(),
            persistent: false,
            link: None,
            queued: VecDeque::new(),
            last_policy: None,
            version,
            expiry: None,
            offline_since: None,
        }
    }
}

/// One member of every shared group whose filter matches `topic`, with the
/// QoS it was granted (see [`SubscriptionIndex::shared_picks`]).
fn shared_targets(state: &mut RouterState, topic: &str) -> Vec<(String, QoS)> {
    let RouterState {
        index, sessions, ..
    } = state;
    let online = |m: &str| sessions.get(m).is_some_and(|e| e.link.is_some());
    let persistent = |m: &str| sessions.get(m).is_some_and(|e| e.persistent);
    index
        .shared_picks(topic, online, persistent)
        .into_iter()
        .map(|(member, full)| {
            let qos = sessions
                .get(&member)
                .and_then(|e| e.subscriptions.get(full))
                .copied()
                .unwrap_or(QoS::AtMostOnce);
            (member, qos)
        })
        .collect()
}

fn add_target<'a>(
    state: &'a RouterState,
    targets: &mut HashMap<&'a str, QoS>,
    client: &'a str,
    topic: &str,
) {
    let Some(entry) = state.sessions.get(client) else {
        return;
    };
    // The highest QoS over every matching subscription of this client.
    let best = entry
        .subscriptions
        .iter()
        .filter(|(f, _)| shared_filter(f).is_none() && topics::matches(f, topic))
        .map(|(_, q)| *q)
        .fold(QoS::AtMostOnce, max_qos);
    targets.insert(client, best);
}

fn queue_bounded(queue: &mut VecDeque<Message>, message: Message, counters: &RouterCounters) {
    if queue.len() >= MAX_QUEUED_MESSAGES {
        queue.pop_front();
        counters.deliveries_dropped.fetch_add(1, Ordering::Relaxed);
    }
    queue.push_back(message);
}

impl Publish for Router {
    fn publish(self: Arc<Self>, message: Message, origin: Origin) {
        self.route(message, origin);
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
