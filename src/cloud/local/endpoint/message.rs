//! A message on its way through the endpoint: what was published (topic,
//! payload, QoS, retain, the MQTT 5 properties AWS forwards) and where it
//! came from (the publisher, for the rules engine's `clientId()` and
//! `principal()`, and the at-least-once delivery it may carry).

use super::delivery::Delivery;
use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use std::sync::Arc;
use tokio::time::Instant;

/// A message on its way through the router: what was published, by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 properties from the publisher, forwarded to MQTT 5
    /// subscribers and dropped toward 3.1.1 ones, as AWS does. `None` for
    /// a 3.1.1 publish or a cloud publish without any.
    pub properties: Option<Arc<MessageProperties>>,
}

impl Message {
    /// Whether its Message Expiry Interval has run out at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.properties
            .as_ref()
            .and_then(|p| p.expires_at)
            .is_some_and(|at| at <= now)
    }

    /// A QoS 1 message published by the cloud (lifecycle events, JITP's
    /// registered event): `body` as JSON.
    pub fn from_cloud(topic: String, body: &serde_json::Value) -> Message {
        Message {
            topic,
            payload: Bytes::from(body.to_string().into_bytes()),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
        }
    }
}

/// The MQTT 5 PUBLISH properties AWS IoT Core forwards from publisher to
/// subscriber: request/response (response topic, correlation data),
/// payload format and content type, user properties, message expiry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageProperties {
    /// 1: the payload is UTF-8 (checked on the way in).
    pub payload_format_indicator: Option<u8>,
    pub content_type: Option<String>,
    /// Where the receiver should answer (request/response).
    pub response_topic: Option<String>,
    /// Echoed by the answer so the requester can match it.
    pub correlation_data: Option<Bytes>,
    /// In the order sent; also given to the rules engine.
    pub user_properties: Vec<(String, String)>,
    /// When the Message Expiry Interval runs out: undelivered by then, the
    /// message is dropped (AWS: 1 s to 7 days; absent, it never expires).
    pub expires_at: Option<Instant>,
}

/// Where a message came from: the rules engine's `clientId()` and
/// `principal()`, and how many republish hops led to it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub client_id: Option<String>,
    /// The publisher's certificateId.
    pub principal: Option<String>,
    pub depth: u8,
    /// The device a cloud-published message is about (the serial of a JITP
    /// registered event), so rule and function events land on its timeline.
    pub about: Option<String>,
    /// Set on a registered event: tracks its functions for at-least-once delivery.
    pub delivery: Option<Delivery>,
}

impl Origin {
    /// A message published by the cloud itself (lifecycle events, functions).
    pub fn cloud() -> Origin {
        Origin::default()
    }

    /// A message published by the client `client_id`, authenticated with
    /// the certificate `cert_id`.
    pub fn client(client_id: &str, cert_id: &str) -> Origin {
        Origin {
            client_id: Some(client_id.to_string()),
            principal: Some(cert_id.to_string()),
            ..Origin::default()
        }
    }
}
