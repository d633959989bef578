//! What the observer receives, as the events the local endpoint emits for
//! the same traffic: the traffic pane, the device timelines and the
//! lifecycle views read them unchanged.

use crate::cloud::events::payload_preview;
use crate::cloud::{CloudEvent, EventKind};
use crate::vocabulary::{rotation_topic_serial, REGISTERED_TOPIC_PREFIX};
use serde_json::{json, Value};

/// A message the observer received, as the event the local endpoint emits
/// for the same traffic:
///
/// - `$aws/events/presence/connected|disconnected/<clientId>` → a `CONN`
///   event of that client (the local endpoint's "X connected");
/// - `$aws/events/subscriptions/...` → a `CONN` event of that client;
/// - `$aws/events/certificates/registered/<caId>` → a `JITP` event naming
///   the certificate (the devices pane finds its owner by `certificateId`);
/// - `/cert-rotation/<op>/<serial>/rqst` → `IN PUBLISH` from the device,
///   `.../rspn` → `OUT PUBLISH` to it;
/// - anything else → `OUT PUBLISH` for the cloud's `$aws/` topics, `IN
///   PUBLISH` otherwise.
pub fn observed_event(topic: &str, payload: &[u8]) -> CloudEvent {
    let body = payload_preview(payload);
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let size = payload.len();
    if let Some(rest) = topic.strip_prefix("$aws/events/presence/") {
        if let Some((what, client)) = rest.split_once('/') {
            let summary = match what {
                "disconnected" if !field("disconnectReason").is_empty() => {
                    format!("{client} disconnected: {}", field("disconnectReason"))
                }
                other => format!("{client} {other}"),
            };
            return CloudEvent::new(EventKind::Connection, summary)
                .client(client)
                .topic(topic)
                .detail(json!({
                    "certificateId": field("principalIdentifier"),
                    "ipAddress": body.get("ipAddress"),
                    "payload": body,
                }));
        }
    }
    if let Some(rest) = topic.strip_prefix("$aws/events/subscriptions/") {
        if let Some((what, client)) = rest.split_once('/') {
            let topics: Vec<&str> = body
                .get("topics")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            return CloudEvent::new(
                EventKind::Connection,
                format!("{client} {what} {}", topics.join(", ")),
            )
            .client(client)
            .topic(topic)
            .detail(json!({ "payload": body }));
        }
    }
    if let Some(ca_id) = topic.strip_prefix(REGISTERED_TOPIC_PREFIX) {
        let cert_id = field("certificateId");
        return CloudEvent::new(
            EventKind::Jitp,
            format!(
                "certificate {} registered under CA {} ({})",
                short(cert_id),
                short(ca_id),
                field("certificateStatus")
            ),
        )
        .topic(topic)
        .detail(json!({
            "certificateId": cert_id,
            "caCertificateId": ca_id,
            "payload": body,
        }));
    }
    let serial = rotation_topic_serial(topic);
    let from_device = match serial {
        Some(_) => topic.ends_with("/rqst"),
        None => !topic.starts_with("$aws/"),
    };
    let (kind, direction) = if from_device {
        (
            EventKind::PacketIn {
                packet: "PUBLISH",
                size,
            },
            "IN",
        )
    } else {
        (
            EventKind::PacketOut {
                packet: "PUBLISH",
                size,
            },
            "OUT",
        )
    };
    let mut event = CloudEvent::new(kind, format!("{direction} PUBLISH {topic}"))
        .topic(topic)
        .detail(json!({ "size": size, "payload": body }));
    if let Some(serial) = serial {
        event = event.client(serial);
    }
    event
}

/// The first ten characters of an id, as the panes show ids.
fn short(id: &str) -> &str {
    &id[..id.len().min(10)]
}
