//! What every connection task shares — the configuration, the store, the
//! event bus, the router, the registered-CA verifier, the handshake table
//! and the counters — and how a connection reports to the event stream
//! and the event log (packets in and out, refused connections).

use super::config::EndpointConfig;
use super::handshakes::HandshakeGate;
use super::limits;
use super::message::{Message, Origin};
use super::router::Router;
use super::sampler;
use super::session::{reason, CloseReason, PacketSummary};
use super::tls;
use crate::cloud::events::payload_preview;
use crate::cloud::events::{CloudEvent, EventBus, EventKind};
use crate::store::Store;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters kept by the endpoint.
#[derive(Debug, Default)]
pub struct EndpointCounters {
    pub handshakes_failed: AtomicU64,
    pub events_skipped: AtomicU64,
    pub throttled_disconnects: AtomicU64,
    pub refused: AtomicU64,
    pub connected: AtomicU64,
    pub jitp_provisioned: AtomicU64,
}

/// What every connection task shares.
pub struct Shared {
    pub config: EndpointConfig,
    /// `config.limits` with `JITPILOT_LIMITS` applied.
    pub limits: limits::Limits,
    pub handshakes: std::sync::Mutex<HandshakeGate>,
    pub sampler: std::sync::Mutex<sampler::Sampler>,
    pub store: Store,
    pub bus: EventBus,
    pub router: Arc<Router>,
    pub verifier: Arc<tls::RegisteredCaVerifier>,
    pub counters: EndpointCounters,
}

impl Shared {
    /// Whether to record one more failure of `kind` (see `sampler.rs`);
    /// counts the skipped ones.
    pub fn sample(&self, kind: &'static str) -> sampler::Sample {
        let sample = self
            .sampler
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sample(kind, tokio::time::Instant::now());
        if sample == sampler::Sample::Skip {
            self.counters.events_skipped.fetch_add(1, Ordering::Relaxed);
        }
        sample
    }

    /// Logs and reports a refused connection (no CONNACK). Not sampled:
    /// the peer passed the TLS handshake with a certificate of a registered
    /// CA (a JITP refusal is every device's first connect, and belongs on
    /// its timeline); the event log's retention bounds the rows.
    pub fn refused(
        &self,
        peer: SocketAddr,
        client_id: Option<&str>,
        cert_id: &str,
        reason: &CloseReason,
    ) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        let why = reason.describe();
        tracing::info!(peer = ?peer, client_id = ?client_id, cert_id, reason = ?why, "connection refused");
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
    pub fn packet_event(&self, incoming: bool, client_id: &str, summary: &PacketSummary) {
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
            let mut detail = json!({
                "size": summary.size,
                "payload": summary.payload.as_deref().map(payload_preview),
            });
            // MQTT 5: the reason code (and string) of an ack or DISCONNECT.
            if let Some((code, why)) = &summary.reason {
                if *code >= 0x80 {
                    line.push_str(&format!(" {code:#04x} {}", reason::reason_name(*code)));
                    if let Some(why) = why {
                        line.push_str(": ");
                        line.push_str(why);
                    }
                }
                detail["reasonCode"] = json!(code);
                detail["reasonName"] = json!(reason::reason_name(*code));
                if let Some(why) = why {
                    detail["reasonString"] = json!(why);
                }
            }
            let mut event = CloudEvent::new(kind, line).detail(detail);
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
    pub fn publish_event(&self, topic: String, body: serde_json::Value) {
        self.router
            .route(Message::from_cloud(topic, &body), Origin::cloud());
    }
}
