//! MQTT 5 PUBLISH, both ways: a client's publish checked as AWS IoT does
//! (topic aliases, at most AWS's 8; payload format; response topic; a
//! refused one is PUBACK 0x87 and the connection stays up), the properties
//! the router carries to MQTT 5 subscribers (Message Expiry clamped to 1 s
//! – 7 days, the time left forwarded), and an MQTT 5 last will.

use super::checks;
use super::reason::*;
use super::v5::{qos_from_v5, qos_to_v5};
use super::*;
use crate::cloud::local::endpoint::limits::{MAX_MESSAGE_EXPIRY_SECONDS, TOPIC_ALIAS_MAXIMUM};
use crate::cloud::local::endpoint::topics::check_topic_name;
use mqtt5::{PubAck as PubAck5, PubAckProperties, Publish as Publish5, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use std::sync::Arc;
use std::time::Duration;

impl Session {
    pub(super) fn handle_publish_v5(
        &mut self,
        publish: Publish5,
        authz: &dyn Authorize,
        out: &mut Vec<Effect>,
    ) {
        if publish.qos == QoS5::ExactlyOnce {
            return self.close_with(Some(QOS_NOT_SUPPORTED), checks::publish_qos2(), out);
        }
        let pkid = (publish.qos == QoS5::AtLeastOnce).then_some(publish.pkid);
        let Ok(mut topic) = String::from_utf8(publish.topic.to_vec()) else {
            return self.close_with(
                Some(MALFORMED_PACKET),
                CloseReason::ClientError("topic is not valid UTF-8".into()),
                out,
            );
        };
        let properties = publish.properties.unwrap_or_default();
        if let Some(alias) = properties.topic_alias {
            if alias == 0 || alias > TOPIC_ALIAS_MAXIMUM {
                return self.close_with(
                    Some(TOPIC_ALIAS_INVALID),
                    CloseReason::ClientError(format!(
                        "topic alias {alias} outside 1..={TOPIC_ALIAS_MAXIMUM} (AWS's Topic Alias Maximum)"
                    )),
                    out,
                );
            }
            if topic.is_empty() {
                let known = self.state().topic_aliases.get(&alias).cloned();
                match known {
                    Some(known) => topic = known,
                    None => {
                        return self.close(
                            CloseReason::ClientError(format!(
                                "topic alias {alias} used before it was given a topic"
                            )),
                            out,
                        )
                    }
                }
            } else if check_topic_name(&topic).is_ok() {
                self.state().topic_aliases.insert(alias, topic.clone());
            }
        }
        if let Err(why) = check_topic_name(&topic) {
            return self.close_with(Some(TOPIC_NAME_INVALID), CloseReason::ClientError(why), out);
        }
        if let Err(reason) = checks::check_payload(publish.payload.len(), self.max_payload) {
            return self.close_with(Some(PACKET_TOO_LARGE), reason, out);
        }
        if !properties.subscription_identifiers.is_empty() {
            return self.close(
                CloseReason::ClientError(
                    "a client PUBLISH must not carry a Subscription Identifier (MQTT 5 §3.3.4)"
                        .into(),
                ),
                out,
            );
        }
        if let Some(response) = &properties.response_topic {
            if let Err(why) = check_topic_name(response) {
                return self.close(
                    CloseReason::ClientError(format!("response topic: {why}")),
                    out,
                );
            }
        }
        if properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&publish.payload).is_err()
        {
            return self.refuse_publish(
                pkid,
                PAYLOAD_FORMAT_INVALID,
                CloseReason::ClientError(
                    "payload format indicator says UTF-8 but the payload is not".into(),
                ),
                out,
            );
        }
        if let Err(reason) = checks::check_may_publish(&topic, authz) {
            return self.refuse_publish(pkid, NOT_AUTHORIZED, reason, out);
        }
        let message = Message {
            topic,
            payload: publish.payload,
            qos: qos_from_v5(publish.qos),
            retain: publish.retain,
            properties: message_properties(properties, Instant::now()),
        };
        out.push(Effect::Publish5 { message, pkid });
    }

    /// After the shell routed an [`Effect::Publish5`]: PUBACK 0x00, or the
    /// reason it was refused (`Err((code, why))`, e.g. a full retained
    /// store: 0x97 Quota exceeded).
    pub fn publish_routed(
        &mut self,
        pkid: Option<u16>,
        routed: Result<(), (u8, String)>,
        out: &mut Vec<Effect>,
    ) {
        if self.phase != Phase::Connected {
            return;
        }
        match (routed, pkid) {
            (Ok(()), Some(pkid)) => out.push(Effect::Send5(mqtt5::Packet::PubAck(PubAck5::new(
                pkid, None,
            )))),
            (Ok(()), None) => {}
            (Err((code, why)), pkid) => {
                self.refuse_publish(pkid, code, CloseReason::ClientError(why), out)
            }
        }
    }

    /// A refused PUBLISH: PUBACK with `code` for QoS 1 (the connection
    /// stays up, as on AWS); a QoS 0 one cannot be answered, so the
    /// connection is closed with DISCONNECT `code`.
    pub(super) fn refuse_publish(
        &mut self,
        pkid: Option<u16>,
        code: u8,
        reason: CloseReason,
        out: &mut Vec<Effect>,
    ) {
        match pkid {
            Some(pkid) => {
                let why = self.ack_reason(&reason.describe());
                out.push(Effect::Send5(mqtt5::Packet::PubAck(PubAck5 {
                    pkid,
                    reason: puback_reason(code),
                    properties: why.map(|reason_string| PubAckProperties {
                        reason_string: Some(reason_string),
                        user_properties: Vec::new(),
                    }),
                })));
            }
            None => self.close_with(Some(code), reason, out),
        }
    }

    /// The PUBLISH of a delivery to an MQTT 5 client: the publisher's
    /// properties and the expiry time left; `None` when it exceeds the
    /// client's Maximum Packet Size.
    pub(super) fn publish_v5(
        &self,
        message: &Message,
        pkid: u16,
        now: Instant,
    ) -> Option<Publish5> {
        let properties = message.properties.as_ref().map(|p| PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            // AWS: the time left, 0 once under a second remains.
            message_expiry_interval: p
                .expires_at
                .map(|at| at.saturating_duration_since(now).as_secs() as u32),
            topic_alias: None,
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
            subscription_identifiers: Vec::new(),
            content_type: p.content_type.clone(),
        });
        let mut publish = Publish5::new(
            message.topic.clone(),
            qos_to_v5(message.qos),
            message.payload.clone(),
            properties,
        );
        publish.pkid = pkid;
        publish.retain = message.retain;
        let max = self.v5.as_ref().and_then(|s| s.max_packet_to_client);
        if max.is_some_and(|max| publish.size() > max) {
            return None;
        }
        Some(publish)
    }
}

/// A publish's properties as the router carries them (`None` when it has
/// none worth forwarding). Message Expiry is clamped to AWS's 1 s – 7 days.
fn message_properties(p: PublishProperties, now: Instant) -> Option<Arc<MessageProperties>> {
    let expires_at = p.message_expiry_interval.map(|secs| {
        now + Duration::from_secs(u64::from(secs.clamp(1, MAX_MESSAGE_EXPIRY_SECONDS)))
    });
    let properties = MessageProperties {
        payload_format_indicator: p.payload_format_indicator,
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        expires_at,
    };
    (properties != MessageProperties::default()).then(|| Arc::new(properties))
}

/// The last will of an MQTT 5 CONNECT, checked like a PUBLISH.
pub(super) fn will_message(will: mqtt5::LastWill, now: Instant) -> Result<Message, (u8, String)> {
    if will.qos == QoS5::ExactlyOnce {
        return Err((QOS_NOT_SUPPORTED, checks::WILL_QOS2.into()));
    }
    let topic = String::from_utf8(will.topic.to_vec()).map_err(|_| {
        (
            MALFORMED_PACKET,
            "last will topic is not valid UTF-8".to_string(),
        )
    })?;
    check_topic_name(&topic).map_err(|why| (TOPIC_NAME_INVALID, format!("last will: {why}")))?;
    let properties = will.properties.and_then(|p| {
        message_properties(
            PublishProperties {
                payload_format_indicator: p.payload_format_indicator,
                message_expiry_interval: p.message_expiry_interval,
                topic_alias: None,
                response_topic: p.response_topic,
                correlation_data: p.correlation_data,
                user_properties: p.user_properties,
                subscription_identifiers: Vec::new(),
                content_type: p.content_type,
            },
            now,
        )
    });
    Ok(Message {
        topic,
        payload: will.message,
        qos: qos_from_v5(will.qos),
        retain: will.retain,
        properties,
    })
}
