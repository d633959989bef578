//! The MQTT 3.1.1 half of [`Session`]: packets of rumqttc's `mqttbytes::v4`
//! codec, handled as AWS IoT does on 3.1.1 — anything refused closes the
//! connection (3.1.1 has no way to say why), a CONNECT of another protocol
//! level gets CONNACK 0x01 first.

use super::checks::{self, FilterRefused};
use super::summary::packet_name;
use super::*;
use crate::cloud::local::endpoint::limits::MAX_PACKET_BYTES;
use crate::cloud::local::endpoint::topics::{check_filter, check_topic_name};
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, LastWill, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, Protocol};

impl Session {
    /// Decodes and handles one 3.1.1 packet; false when more bytes are needed.
    pub(super) fn next_packet_v4(&mut self, authz: &dyn Authorize, out: &mut Vec<Effect>) -> bool {
        match Packet::read(&mut self.buf, MAX_PACKET_BYTES) {
            Ok(packet) => {
                if self.observe {
                    out.push(Effect::Received(PacketSummary::of(&packet)));
                }
                self.handle_packet(packet, authz, out);
            }
            Err(CodecError::InsufficientBytes(_)) => return false,
            // MQTT 3.1 (`MQIsdp`, level 3) or another level: §3.1.2.2
            // says answer CONNACK 0x01, then close.
            Err(CodecError::InvalidProtocol | CodecError::InvalidProtocolLevel(_))
                if self.phase == Phase::AwaitingConnect =>
            {
                self.refuse(
                    Some(ConnectReturnCode::RefusedProtocolVersion),
                    CloseReason::ClientError(
                        "only MQTT 3.1.1 (protocol name MQTT, level 4) and MQTT 5 (level 5) are supported".into(),
                    ),
                    out,
                );
            }
            Err(e) => {
                let why = match e {
                    CodecError::PayloadSizeLimitExceeded(n) => format!(
                        "packet of {n} bytes exceeds the limit of {MAX_PACKET_BYTES} (AWS: payload ≤ 128 KiB)"
                    ),
                    CodecError::MalformedRemainingLength => {
                        "remaining length longer than 4 bytes".to_string()
                    }
                    CodecError::TopicNotUtf8 => "a string is not valid UTF-8".to_string(),
                    other => format!("malformed packet: {other}"),
                };
                self.close(CloseReason::ClientError(why), out);
            }
        }
        true
    }

    fn handle_packet(&mut self, packet: Packet, authz: &dyn Authorize, out: &mut Vec<Effect>) {
        if self.phase == Phase::AwaitingConnect {
            match packet {
                Packet::Connect(connect) => self.handle_connect(connect, out),
                other => self.close(checks::before_connect(packet_name(&other)), out),
            }
            return;
        }
        match packet {
            Packet::Connect(_) => self.close(checks::second_connect(), out),
            Packet::Publish(publish) => self.handle_publish(publish, authz, out),
            Packet::PubAck(ack) => {
                // An unknown id is harmless (a duplicate ack after redelivery).
                self.acknowledged(ack.pkid, out);
            }
            Packet::Subscribe(subscribe) => {
                if subscribe.filters.len() > self.max_filters {
                    return self.close(
                        CloseReason::ClientError(format!(
                            "SUBSCRIBE with {} filters (AWS allows {})",
                            subscribe.filters.len(),
                            self.max_filters
                        )),
                        out,
                    );
                }
                let mut granted = Vec::with_capacity(subscribe.filters.len());
                for filter in subscribe.filters {
                    match checks::grant(&filter.path, filter.qos == QoS::AtMostOnce, authz) {
                        Ok(qos) => granted.push((filter.path, qos)),
                        Err(FilterRefused::Invalid(why)) => {
                            return self.close(CloseReason::ClientError(why), out)
                        }
                        Err(FilterRefused::NotAuthorized(why)) => {
                            return self.close(CloseReason::AuthorizationError(why), out)
                        }
                    }
                }
                let codes = granted
                    .iter()
                    .map(|(_, qos)| SubscribeReasonCode::Success(*qos))
                    .collect();
                out.push(Effect::Send(Packet::SubAck(SubAck::new(
                    subscribe.pkid,
                    codes,
                ))));
                out.push(Effect::Subscribe(granted));
            }
            Packet::Unsubscribe(unsubscribe) => {
                for filter in &unsubscribe.topics {
                    if let Err(why) = check_filter(filter) {
                        return self.close(CloseReason::ClientError(why), out);
                    }
                }
                out.push(Effect::Send(Packet::UnsubAck(UnsubAck::new(
                    unsubscribe.pkid,
                ))));
                out.push(Effect::Unsubscribe(unsubscribe.topics));
            }
            Packet::PingReq => out.push(Effect::Send(Packet::PingResp)),
            Packet::Disconnect => self.close(CloseReason::ClientInitiated, out),
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
                self.close(checks::qos2_flow(), out)
            }
            other @ (Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp) => self.close(checks::sent_by_brokers(packet_name(&other)), out),
        }
    }

    fn handle_connect(&mut self, connect: rumqttc::mqttbytes::v4::Connect, out: &mut Vec<Effect>) {
        if connect.protocol != Protocol::V4 {
            return self.refuse(
                Some(ConnectReturnCode::RefusedProtocolVersion),
                CloseReason::ClientError("only MQTT 3.1.1 (protocol level 4) is supported".into()),
                out,
            );
        }
        let client_id = connect.client_id;
        if let Err(reason) = checks::check_client_id(&client_id) {
            return self.refuse(Some(ConnectReturnCode::BadClientId), reason, out);
        }
        let will = match connect.last_will {
            Some(will) => match check_will(will) {
                Ok(will) => Some(will),
                Err(why) => return self.close(CloseReason::ClientError(why), out),
            },
            None => None,
        };
        let request = ConnectRequest {
            client_id,
            clean_session: connect.clean_session,
            level: MqttLevel::V311,
            session_expiry: None,
            keep_alive: connect.keep_alive,
            will,
        };
        self.authorizing(request, out);
    }

    fn handle_publish(&mut self, publish: Publish, authz: &dyn Authorize, out: &mut Vec<Effect>) {
        if publish.qos == QoS::ExactlyOnce {
            return self.close(checks::publish_qos2(), out);
        }
        if let Err(why) = check_topic_name(&publish.topic) {
            return self.close(CloseReason::ClientError(why), out);
        }
        let allowed = checks::check_payload(publish.payload.len(), self.max_payload)
            .and_then(|()| checks::check_may_publish(&publish.topic, authz));
        if let Err(reason) = allowed {
            return self.close(reason, out);
        }
        let pkid = publish.pkid;
        let qos = publish.qos;
        // Routed first, then acknowledged: a publish the router refuses
        // (a full retained store) closes the connection before its PUBACK.
        out.push(Effect::Publish(Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties: None,
        }));
        if qos == QoS::AtLeastOnce {
            out.push(Effect::Send(Packet::PubAck(PubAck::new(pkid))));
        }
    }
}

/// The PUBLISH packet for a delivery.
pub(super) fn to_publish(message: &Message, pkid: u16, dup: bool) -> Publish {
    let mut publish =
        Publish::from_bytes(message.topic.clone(), message.qos, message.payload.clone());
    publish.pkid = pkid;
    publish.dup = dup;
    publish.retain = message.retain;
    publish
}

fn check_will(will: LastWill) -> Result<Message, String> {
    if will.qos == QoS::ExactlyOnce {
        return Err(checks::WILL_QOS2.into());
    }
    check_topic_name(&will.topic).map_err(|why| format!("last will: {why}"))?;
    Ok(Message {
        topic: will.topic,
        payload: will.message,
        qos: will.qos,
        retain: will.retain,
        properties: None,
    })
}
