//! The rotation function: the sample's Lambda, cloud agnostic.
//!
//! It handles three events, with the sample's topics, payloads, parameter
//! name, table attributes and state names (DESIGN §1, the wire contract):
//! the `$aws/events/certificates/registered/<caId>` event (rule `rule_jitp`),
//! `/cert-rotation/create-man-cert/<serial>/rqst` and
//! `/cert-rotation/ack-man-cert/<serial>/rqst`.

/// Publishes an MQTT message as the cloud (IoT data plane `Publish`). The
/// local endpoint's router implements it; on AWS, `iot-data:Publish`.
pub trait Publisher: Send + Sync {
    /// Publishes `payload` to `topic` at QoS 1 (never blocks for long).
    fn publish(&self, topic: &str, payload: Vec<u8>);
}
