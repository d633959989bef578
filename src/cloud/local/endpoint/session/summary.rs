//! A decoded packet as the traffic pane and the event log show it: its
//! name, size, topic (or filters, or clientId), payload and — MQTT 5 — its
//! reason code and string.

use super::reason::{connack_value, puback_value, suback_value};
use bytes::Bytes;
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::v5::mqttbytes::v5 as mqtt5;

/// A decoded packet, as the traffic pane shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSummary {
    pub packet: &'static str,
    pub size: usize,
    pub topic: Option<String>,
    pub payload: Option<Bytes>,
    /// MQTT 5: the reason code of an ack or DISCONNECT (the first failing
    /// one of a SUBACK), and its reason string.
    pub reason: Option<(u8, Option<String>)>,
}

impl PacketSummary {
    /// The summary of `packet`.
    pub fn of(packet: &Packet) -> PacketSummary {
        let (topic, payload) = match packet {
            Packet::Publish(p) => (Some(p.topic.clone()), Some(p.payload.clone())),
            Packet::Subscribe(s) => (Some(joined(s.filters.iter().map(|f| &f.path))), None),
            Packet::Unsubscribe(u) => (Some(joined(&u.topics)), None),
            Packet::Connect(c) => (Some(format!("clientId={}", c.client_id)), None),
            _ => (None, None),
        };
        PacketSummary {
            packet: packet_name(packet),
            size: packet.size(),
            topic,
            payload,
            reason: None,
        }
    }

    /// The summary of an MQTT 5 `packet`, with its reason code.
    pub fn of5(packet: &mqtt5::Packet) -> PacketSummary {
        use mqtt5::Packet as P;
        let text = |s: &bytes::Bytes| String::from_utf8_lossy(s).into_owned();
        let (name, topic, payload, reason) = match packet {
            P::Connect(c, _, _) => (
                "CONNECT",
                Some(format!("clientId={}", c.client_id)),
                None,
                None,
            ),
            P::ConnAck(a) => {
                let why = a.properties.as_ref().and_then(|p| p.reason_string.clone());
                ("CONNACK", None, None, Some((connack_value(a.code), why)))
            }
            P::Publish(p) => (
                "PUBLISH",
                Some(text(&p.topic)),
                Some(p.payload.clone()),
                None,
            ),
            P::PubAck(a) => {
                let why = a.properties.as_ref().and_then(|p| p.reason_string.clone());
                ("PUBACK", None, None, Some((puback_value(a.reason), why)))
            }
            P::Subscribe(s) => (
                "SUBSCRIBE",
                Some(joined(s.filters.iter().map(|f| &f.path))),
                None,
                None,
            ),
            P::SubAck(a) => {
                let code = a
                    .return_codes
                    .iter()
                    .map(|c| suback_value(*c))
                    .find(|c| *c >= 0x80)
                    .or_else(|| a.return_codes.first().map(|c| suback_value(*c)));
                let why = a.properties.as_ref().and_then(|p| p.reason_string.clone());
                ("SUBACK", None, None, code.map(|c| (c, why)))
            }
            P::Unsubscribe(u) => ("UNSUBSCRIBE", Some(joined(&u.filters)), None, None),
            P::UnsubAck(_) => ("UNSUBACK", None, None, None),
            P::Disconnect(d) => {
                let why = d.properties.as_ref().and_then(|p| p.reason_string.clone());
                ("DISCONNECT", None, None, Some((d.reason_code as u8, why)))
            }
            P::PingReq(_) => ("PINGREQ", None, None, None),
            P::PingResp(_) => ("PINGRESP", None, None, None),
            P::PubRec(_) => ("PUBREC", None, None, None),
            P::PubRel(_) => ("PUBREL", None, None, None),
            P::PubComp(_) => ("PUBCOMP", None, None, None),
            P::Auth(_) => ("AUTH", None, None, None),
        };
        PacketSummary {
            packet: name,
            size: packet.size(),
            topic,
            payload,
            reason,
        }
    }
}

/// The packet's name as the traffic pane shows it.
pub fn packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

/// Filters or topics as one line.
fn joined<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<S> = items.into_iter().collect();
    let parts: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    parts.join(", ")
}
