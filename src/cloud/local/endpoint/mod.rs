//! The local cloud's MQTT endpoint: AWS IoT Core's data plane where the
//! walkthrough touches it — mutual-TLS MQTT 3.1.1, registry enforcement,
//! JITP on first connect, IoT policies, lifecycle events and topic rules.
//!
//! ## Layout
//!
//! - `server.rs`       the listener: accepts TCP, bounds concurrent TLS handshakes, graceful shutdown
//! - `tls.rs`          rustls setup and the verifier trusting *registered* ACTIVE CAs, looked up live
//! - `admission.rs`    after the handshake: certificate status, JITP, the connection's policies
//! - `connection.rs`   the async shell of one connection: socket ↔ session ↔ router
//! - `session.rs`      one client's MQTT session as a pure state machine (no IO; property-tested)
//! - `close_reason.rs` why a connection ended, in AWS's `disconnectReason` words
//! - `router.rs`       sessions by clientId, subscriptions, retained messages, fan-out
//! - `rules_engine.rs` topic rules on routed messages; Lambda and republish actions
//! - `delivery.rs`     at-least-once delivery of the JITP registered event (outbox, redelivery)
//! - `authz.rs`        IoT policy checks of one connection
//! - `lifecycle.rs`    `$aws/events/...` topics and payloads, with AWS's field names
//! - `topics.rs`       topic validation and matching (the shared `topic` module)
//! - `limits.rs`       AWS's quotas and jitpilot's bounds on every queue

mod admission;
mod authz;
mod close_reason;
mod connection;
pub use connection::payload_preview;
mod delivery;
mod lifecycle;
pub mod limits;
mod router;
mod rules_engine;
mod server;
pub mod session;
mod tls;
mod topics;

pub use lifecycle::certificate_registered;

use crate::cloud::events::{CloudEvent, EventBus, EventKind};
use crate::cloud::local::functions::FunctionRegistry;
use crate::store::Store;
use router::{Origin, Router};
use rules_engine::RulesEngine;
use serde_json::json;
use session::{CloseReason, PacketSummary};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How to run the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// `host:port` to listen on; port 0 picks a free port (see [`EndpointHandle::local_addr`]).
    pub addr: String,
    /// A TLS handshake taking longer is abandoned (slowloris, half-open sockets).
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once; further connections wait in the
    /// kernel's accept queue. Bounds the CPU a connection storm can take.
    pub max_concurrent_handshakes: usize,
    /// Time from the end of the handshake to CONNECT.
    pub connect_timeout: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            addr: "127.0.0.1:8883".into(),
            handshake_timeout: Duration::from_secs(10),
            max_concurrent_handshakes: 256,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the endpoint could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("cannot listen on {addr}: the address is in use. Stop the other process or pick another address with --mqtt-addr HOST:PORT (port 0 picks a free one)")]
    AddrInUse { addr: String },
    #[error(
        "cannot listen on {addr}: {source}. Check the address given with --mqtt-addr HOST:PORT"
    )]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Counters kept by the endpoint.
#[derive(Debug, Default)]
struct EndpointCounters {
    handshakes_failed: AtomicU64,
    refused: AtomicU64,
    connected: AtomicU64,
    jitp_provisioned: AtomicU64,
}

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
    /// Connections closed before CONNACK (status, JITP, policy, protocol).
    pub refused: u64,
    pub jitp_provisioned: u64,
    pub messages_routed: u64,
    pub deliveries: u64,
    pub deliveries_dropped: u64,
    pub receive_denied: u64,
}

/// What every connection task shares.
struct Shared {
    config: EndpointConfig,
    store: Store,
    bus: EventBus,
    router: Arc<Router>,
    verifier: Arc<tls::RegisteredCaVerifier>,
    counters: EndpointCounters,
}

impl Shared {
    /// Logs and reports a refused connection (no CONNACK).
    fn refused(
        &self,
        peer: SocketAddr,
        client_id: Option<&str>,
        cert_id: &str,
        reason: &CloseReason,
    ) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        let why = reason.describe();
        tracing::info!(%peer, client_id, cert_id, reason = %why, "connection refused");
        let detail = json!({
            "clientId": client_id,
            "certificateId": cert_id,
            "ipAddress": peer.ip().to_string(),
            "reason": why,
        });
        if !matches!(reason, CloseReason::ConnectionLost) {
            let subject = client_id.unwrap_or(cert_id);
            if let Err(e) = self
                .store
                .append_event("endpoint.refused", subject, &detail)
            {
                tracing::warn!(error = %e, "event log write failed");
            }
        }
        self.bus.emit_with(|| {
            let mut event =
                CloudEvent::new(EventKind::Connection, format!("refused: {why}")).detail(detail);
            if let Some(c) = client_id {
                event = event.client(c);
            }
            event
        });
    }

    /// One packet in or out on the event stream.
    fn packet_event(&self, incoming: bool, client_id: &str, summary: &PacketSummary) {
        self.bus.emit_with(|| {
            let kind = if incoming {
                EventKind::PacketIn {
                    packet: summary.packet,
                    size: summary.size,
                }
            } else {
                EventKind::PacketOut {
                    packet: summary.packet,
                    size: summary.size,
                }
            };
            let mut line = format!("{} {}", if incoming { "IN" } else { "OUT" }, summary.packet);
            if let Some(t) = &summary.topic {
                line.push(' ');
                line.push_str(t);
            }
            let mut event = CloudEvent::new(kind, line).detail(json!({
                "size": summary.size,
                "payload": summary.payload.as_deref().map(connection::payload_preview),
            }));
            if !client_id.is_empty() {
                event = event.client(client_id);
            }
            if let Some(t) = &summary.topic {
                event = event.topic(t.clone());
            }
            event
        });
    }

    /// Publishes an `$aws/events/...` event as the cloud.
    fn publish_event(&self, topic: String, body: serde_json::Value) {
        self.router
            .route(connection::cloud_message(topic, &body), Origin::cloud());
    }
}

/// Publishes as the cloud through the endpoint's router (the IoT data
/// plane's `Publish`): what functions ("Lambdas") use to answer devices.
#[derive(Clone)]
pub struct CloudPublisher {
    router: Arc<Router>,
}

impl CloudPublisher {
    fn new(router: Arc<Router>) -> CloudPublisher {
        CloudPublisher { router }
    }
}

impl crate::rotation::Publisher for CloudPublisher {
    fn publish(&self, topic: &str, payload: Vec<u8>) {
        if let Err(why) = session::check_topic_name(topic) {
            tracing::warn!(topic, error = %why, "cloud publish refused");
            return;
        }
        let message = session::Message {
            topic: topic.to_string(),
            payload: bytes::Bytes::from(payload),
            qos: rumqttc::mqttbytes::QoS::AtLeastOnce,
            retain: false,
        };
        self.router.route(message, Origin::cloud());
    }
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
        Ok(delivery::redeliver_registered(&self.shared, wait).await?)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EndpointStats {
        let c = &self.shared.counters;
        let r = &self.shared.router.counters;
        EndpointStats {
            online: self.shared.router.online(),
            connected: c.connected.load(Ordering::Relaxed),
            handshakes_failed: c.handshakes_failed.load(Ordering::Relaxed),
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
    /// waits for the connection tasks, at most 10 s. Every store write is
    /// committed as it happens, so nothing else needs flushing.
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

    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                EndpointError::AddrInUse {
                    addr: config.addr.clone(),
                }
            } else {
                EndpointError::Bind {
                    addr: config.addr.clone(),
                    source,
                }
            }
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| EndpointError::Bind {
            addr: config.addr.clone(),
            source,
        })?;

    let rules = RulesEngine::new(store.clone(), bus.clone(), functions);
    let active = rules.reload()?;
    tracing::info!(%local_addr, rules = active, "MQTT endpoint listening");

    let shared = Arc::new(Shared {
        config,
        store,
        bus: bus.clone(),
        router: Arc::new(Router::new(bus, rules)),
        verifier,
        counters: EndpointCounters::default(),
    });
    let shutdown = CancellationToken::new();
    let (done_tx, connections_done) = mpsc::channel(1);
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
        connections_done,
    })
}
