//! The local cloud's MQTT endpoint: AWS IoT Core's data plane where the
//! walkthrough touches it — mutual-TLS MQTT 3.1.1 and 5, registry enforcement,
//! JITP on first connect, IoT policies, lifecycle events and topic rules.
//!
//! ## Layout
//!
//! From the socket inwards:
//!
//! - `server.rs`        the listener: accepts TCP, tracks TLS handshakes, graceful shutdown
//! - `handshakes.rs`    the unauthenticated connections: per-address and total bounds, shrinking deadline
//! - `tls.rs`           rustls setup and the verifier trusting *registered* ACTIVE CAs, looked up live
//! - `admission.rs`     after the handshake: certificate status, JITP, the connection's policies
//! - `registered.rs`    JITP's registered event, published (and redelivered) with at-least-once delivery
//! - `connection.rs`    the async shell of one connection: socket ↔ session ↔ router, its loop
//! - `connection/effects.rs` one small function per effect the session asks for
//! - `session.rs`       one client's MQTT session as a pure state machine (no IO; property-tested),
//!   with its 3.1.1 and MQTT 5 halves, checks, reason codes and framing in `session/`
//! - `router.rs`        sessions by clientId, retained messages, fan-out, offline queues
//! - `subscriptions.rs` the router's subscription index: exact, wildcard, shared groups
//! - `rules_engine.rs`  topic rules on routed messages; Lambda and republish actions
//! - `publish.rs`       the `Publish` trait the router implements, for rules and functions
//! - `delivery.rs`      at-least-once delivery tracking: a ticket per function invocation
//! - `message.rs`       a message on its way through, and where it came from
//! - `shared.rs`        what every connection task shares; packet and refusal events
//! - `config.rs`        how the endpoint is run, and why it could not start
//! - `authz.rs`         IoT policy checks of one connection
//! - `throttle.rs`      AWS's per-connection publish rate and throughput, throttled then disconnected
//! - `sampler.rs`       failures anyone can cause are counted, and only sampled into the event log
//! - `retained.rs`      the retained messages: capped in count and bytes, persisted in the store
//! - `lifecycle.rs`     `$aws/events/...` topics and payloads, with AWS's field names
//! - `close_reason.rs`  why a connection ended, in AWS's `disconnectReason` words
//! - `topics.rs`        topic and filter validation and matching (the shared `topic` module)
//! - `limits.rs`        AWS's quotas and jitpilot's bounds on every queue
//!
//! Who uses whom (`A → B`: A names B). No module names one above it, so
//! the graph has no circle; this file only wires them together.
//!
//! ```text
//! server        → connection, handshakes, shared, config, sampler
//! connection    → admission, session, router, shared, throttle, lifecycle, authz, message, limits
//! admission     → registered, authz, shared, lifecycle, close_reason
//! registered    → delivery, lifecycle, message, shared
//! shared        → router, session, handshakes, config, sampler, message, tls, limits
//! config        → limits, tls
//! router        → rules_engine, subscriptions, retained, publish, authz, message, topics, limits
//! rules_engine  → publish, message, topics, limits
//! publish       → message, topics
//! retained      → message, topics, limits
//! subscriptions → topics
//! authz         → session (its `Authorize` trait)
//! session       → message, close_reason, topics, limits
//! message       → delivery
//! handshakes, throttle, topics → limits
//! delivery, lifecycle, close_reason, sampler, tls, limits → nothing of the endpoint
//! ```

mod admission;
mod authz;
mod close_reason;
mod config;
mod connection;
mod delivery;
mod handshakes;
mod lifecycle;
pub mod limits;
mod message;
mod publish;
mod registered;
mod retained;
mod router;
mod rules_engine;
mod sampler;
mod server;
pub mod session;
mod shared;
mod subscriptions;
mod throttle;
mod tls;
mod topics;

pub use crate::cloud::events::payload_preview;
pub use config::{EndpointConfig, EndpointError};
pub use lifecycle::certificate_registered;
pub use publish::CloudPublisher;

use crate::cloud::events::{CloudEvent, EventBus, EventKind};
use crate::cloud::local::functions::FunctionRegistry;
use crate::store::Store;
use message::Message;
use router::Router;
use rules_engine::RulesEngine;
use serde_json::json;
use shared::{EndpointCounters, Shared};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A snapshot of the endpoint's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStats {
    /// Clients connected right now.
    pub online: usize,
    /// CONNACKs sent since start.
    pub connected: u64,
    /// TLS handshakes that failed (unregistered CA, expired cert, timeout, ...).
    pub handshakes_failed: u64,
    /// Connections closed before finishing their handshake to make room
    /// (idle sockets over the per-address or total bound).
    pub handshakes_evicted: u64,
    /// Connections mid-handshake right now.
    pub handshakes_pending: usize,
    /// Failures counted but not written to the event log (sampling).
    pub events_skipped: u64,
    /// Connections disconnected for publishing over AWS's rate limits.
    pub throttled_disconnects: u64,
    /// Retained messages held (and persisted) now, and their bytes.
    pub retained_messages: usize,
    pub retained_bytes: usize,
    /// Retained publishes refused because the store was full.
    pub retained_refused: u64,
    /// Connections closed before CONNACK (status, JITP, policy, protocol).
    pub refused: u64,
    pub jitp_provisioned: u64,
    pub messages_routed: u64,
    pub deliveries: u64,
    pub deliveries_dropped: u64,
    pub receive_denied: u64,
}

/// What the control plane may ask of a running endpoint. Cheap to clone.
#[derive(Clone)]
pub struct EndpointControl {
    shared: Arc<Shared>,
}

impl EndpointControl {
    /// Reloads the topic rules from the store; returns how many are active.
    /// The control plane calls it after every deploy and teardown, so a rule
    /// created or deleted while the endpoint runs takes effect at once.
    pub fn reload_rules(&self) -> Result<usize, EndpointError> {
        let active = self.shared.router.rules().reload()?;
        tracing::info!(rules = active, "topic rules reloaded");
        Ok(active)
    }

    /// Closes every connection authenticated with `cert_id`, which is no
    /// longer ACTIVE (AWS disconnects such a device within seconds). Returns
    /// the clientIds disconnected.
    pub fn certificate_deactivated(&self, cert_id: &str) -> Vec<String> {
        let clients = self.shared.router.disconnect_principal(cert_id);
        for client in &clients {
            tracing::info!(client, cert_id, "certificate deactivated; disconnecting");
            self.shared.bus.emit_with(|| {
                CloudEvent::new(
                    EventKind::Connection,
                    format!(
                        "disconnecting {client}: certificate {} is no longer ACTIVE",
                        &cert_id[..cert_id.len().min(12)]
                    ),
                )
                .client(client.clone())
                .detail(json!({"clientId": client, "certificateId": cert_id}))
            });
        }
        clients
    }
}

/// A running endpoint.
pub struct EndpointHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    listener: tokio::task::JoinHandle<()>,
    /// Writes retained messages to the store as they change.
    persister: tokio::task::JoinHandle<()>,
    /// Every connection task holds a clone of the sender; when all are
    /// dropped, `recv` returns `None`: all connections are closed.
    connections_done: mpsc::Receiver<()>,
}

impl EndpointHandle {
    /// The address the endpoint listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Publishes as the cloud (for built-in functions and tests).
    pub fn publisher(&self) -> Arc<dyn crate::rotation::Publisher> {
        Arc::new(CloudPublisher::new(self.shared.router.clone()))
    }

    /// Reloads the topic rules from the store (after a deploy); returns how many are active.
    pub fn reload_rules(&self) -> Result<usize, EndpointError> {
        self.control().reload_rules()
    }

    /// A handle for the control plane ([`crate::cloud::local::LocalCloud`]):
    /// rules reload after a deploy/teardown, disconnects after a deactivation.
    pub fn control(&self) -> EndpointControl {
        EndpointControl {
            shared: self.shared.clone(),
        }
    }

    /// Publishes again every JITP registered event whose `rule_jitp`
    /// invocation did not finish before the process stopped (see the outbox
    /// in [`crate::cloud::local::jitp`]), and waits — at most `wait` — until
    /// each was handled. Returns how many were redelivered.
    pub async fn redeliver_registered_events(
        &self,
        wait: Duration,
    ) -> Result<usize, EndpointError> {
        Ok(registered::redeliver_registered(&self.shared, wait).await?)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EndpointStats {
        let c = &self.shared.counters;
        let r = &self.shared.router.counters;
        let (handshakes_evicted, handshakes_pending) = {
            let gate = self
                .shared
                .handshakes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (gate.evicted(), gate.pending())
        };
        let (retained_messages, retained_bytes) = self.shared.router.retained_size();
        EndpointStats {
            online: self.shared.router.online(),
            connected: c.connected.load(Ordering::Relaxed),
            handshakes_failed: c.handshakes_failed.load(Ordering::Relaxed),
            handshakes_evicted,
            handshakes_pending,
            events_skipped: c.events_skipped.load(Ordering::Relaxed),
            throttled_disconnects: c.throttled_disconnects.load(Ordering::Relaxed),
            retained_messages,
            retained_bytes,
            retained_refused: r.retained_refused.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            jitp_provisioned: c.jitp_provisioned.load(Ordering::Relaxed),
            messages_routed: r.messages_routed.load(Ordering::Relaxed),
            deliveries: r.deliveries.load(Ordering::Relaxed),
            deliveries_dropped: r.deliveries_dropped.load(Ordering::Relaxed),
            receive_denied: r.receive_denied.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, closes every session (disconnected events are
    /// published, persistent sessions keep their queues until exit) and
    /// waits for the connection tasks, at most 10 s, then writes the last
    /// retained-message changes. Every other store write is committed as
    /// it happens.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.listener).await;
        self.shared.router.disconnect_all();
        let wait = async { while self.connections_done.recv().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within 10 s of shutdown");
        }
        // The last retained changes (wills of the sessions just closed too).
        let _ = (&mut self.persister).await;
        save_retained_changes(&self.shared);
    }
}

/// Starts the endpoint on `config.addr` with the registry in `store`.
/// `server_cert_chain_pem`/`server_key_pem` are the endpoint's own identity
/// (from `endpoint_ca`). Topic rules are loaded now; call
/// [`EndpointHandle::reload_rules`] after a deploy.
pub async fn start(
    config: EndpointConfig,
    store: Store,
    bus: EventBus,
    functions: FunctionRegistry,
    server_cert_chain_pem: &str,
    server_key_pem: &str,
) -> Result<EndpointHandle, EndpointError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(tls::RegisteredCaVerifier::new(
        store.clone(),
        provider.clone(),
    ));
    let tls_config = tls::server_config(
        verifier.clone(),
        provider,
        server_cert_chain_pem,
        server_key_pem,
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config));

    let limits = config.limits.clone().with_env()?;
    store.set_event_retention(limits.event_retention());
    let listener = server::bind(&config.addr, limits.listen_backlog).await?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| EndpointError::Bind {
            addr: config.addr.clone(),
            source,
        })?;

    let rules = RulesEngine::new(store.clone(), bus.clone(), functions);
    let active = rules.reload()?;
    let router = Arc::new(Router::new(bus.clone(), rules, &limits));
    // AWS keeps retained messages across restarts; so does the local cloud.
    let persisted = store.load_retained()?;
    let restored = persisted.len();
    let dropped = router.restore_retained(persisted.into_iter().map(|row| Message {
        topic: row.topic,
        payload: bytes::Bytes::from(row.payload),
        qos: if row.qos == 0 {
            rumqttc::mqttbytes::QoS::AtMostOnce
        } else {
            rumqttc::mqttbytes::QoS::AtLeastOnce
        },
        retain: true,
        properties: None,
    }));
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "retained messages over the current limits were not restored"
        );
    }
    tracing::info!(%local_addr, rules = active, retained = restored - dropped, "MQTT endpoint listening");

    let shared = Arc::new(Shared {
        handshakes: std::sync::Mutex::new(handshakes::HandshakeGate::new(
            &limits,
            config.handshake_timeout,
        )),
        sampler: std::sync::Mutex::new(sampler::Sampler::default()),
        limits,
        config,
        store,
        bus: bus.clone(),
        router,
        verifier,
        counters: EndpointCounters::default(),
    });
    let shutdown = CancellationToken::new();
    let (done_tx, connections_done) = mpsc::channel(1);
    let persister = tokio::spawn(persist_retained(shared.clone(), shutdown.clone()));
    let listener = tokio::spawn(server::accept_loop(
        listener,
        acceptor,
        shared.clone(),
        shutdown.clone(),
        done_tx,
    ));
    Ok(EndpointHandle {
        local_addr,
        shared,
        shutdown,
        listener,
        persister,
        connections_done,
    })
}

/// Writes changed retained messages to the store as they change: woken by
/// the router, it takes every topic changed since its last write (a flood
/// of publishes to one topic is one row write) and writes them in one
/// transaction, off the async threads.
async fn persist_retained(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shared.router.retained_changed.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        let shared = shared.clone();
        let written = tokio::task::spawn_blocking(move || save_retained_changes(&shared)).await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "retained messages not persisted");
        }
    }
}

/// Writes the retained topics changed since the last write.
fn save_retained_changes(shared: &Shared) {
    let changes = shared.router.take_retained_changes();
    if changes.is_empty() {
        return;
    }
    let rows: Vec<(String, Option<crate::store::RetainedRow>)> = changes
        .into_iter()
        .map(|(topic, message)| {
            let row = message.map(|m| crate::store::RetainedRow {
                topic: m.topic,
                payload: m.payload.to_vec(),
                qos: m.qos as u8,
            });
            (topic, row)
        })
        .collect();
    if let Err(e) = shared.store.save_retained(&rows) {
        tracing::warn!(error = %e, "retained messages not persisted");
    }
}
