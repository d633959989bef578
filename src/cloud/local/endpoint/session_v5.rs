//! The MQTT 5 half of [`Session`]: the same state machine, the packets of
//! rumqttc's `mqttbytes::v5` codec, and AWS IoT Core's MQTT 5 behaviour
//! where it documents one (the "MQTT 5 supported features", "MQTT 5
//! properties" and "MQTT reason codes" sections of its developer guide):
//!
//! - reason codes and reason strings on CONNACK, PUBACK, SUBACK, UNSUBACK
//!   and a DISCONNECT before every close the endpoint decides: a refused
//!   PUBLISH is PUBACK 0x87 and a refused filter SUBACK 0x87, and the
//!   connection stays up (3.1.1 has no way to say either, so it is closed);
//! - Clean Start and Session Expiry (capped at AWS's default maximum, the
//!   adjusted value returned in CONNACK), changed again at DISCONNECT;
//! - Message Expiry (1 s to 7 days, as AWS clamps it), the remaining time
//!   forwarded to subscribers;
//! - topic aliases from the client, at most AWS's 8;
//! - payload format indicator, content type, response topic, correlation
//!   data and user properties forwarded to MQTT 5 subscribers;
//! - what AWS does not support answered as AWS does: QoS 2 (0x9B), AUTH,
//!   subscription identifiers (0xA1).
//!
//! The codec does not reject a property given twice, which MQTT 5 makes a
//! protocol error; [`duplicate_property`] checks the packets that carry
//! properties before they are decoded.

use super::*;
use crate::cloud::local::endpoint::limits::{
    MAX_MESSAGE_EXPIRY_SECONDS, MAX_SESSION_EXPIRY_SECONDS, TOPIC_ALIAS_MAXIMUM,
};
use mqtt5::{
    ConnAck as ConnAck5, ConnAckProperties, ConnectReturnCode as Connect5Code, Disconnect,
    DisconnectProperties, DisconnectReasonCode, PubAck as PubAck5, PubAckProperties, PubAckReason,
    Publish as Publish5, PublishProperties, SubAck as SubAck5, SubAckProperties,
    SubscribeReasonCode as Sub5Code, UnsubAck as UnsubAck5, UnsubAckReason,
};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use std::collections::HashMap;
use std::time::Duration;

/// Reason codes the endpoint sends (MQTT 5 §2.4, the ones AWS lists).
pub const UNSPECIFIED_ERROR: u8 = 0x80;
pub const MALFORMED_PACKET: u8 = 0x81;
pub const PROTOCOL_ERROR: u8 = 0x82;
pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
pub const NOT_AUTHORIZED: u8 = 0x87;
pub const SERVER_UNAVAILABLE: u8 = 0x88;
pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
pub const SESSION_TAKEN_OVER: u8 = 0x8E;
pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
pub const TOPIC_NAME_INVALID: u8 = 0x90;
pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
pub const PACKET_TOO_LARGE: u8 = 0x95;
pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
pub const QUOTA_EXCEEDED: u8 = 0x97;
pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: u8 = 0xA1;

/// A reason code's name, as the MQTT 5 specification and AWS's tables
/// call it (for the traffic pane and logs).
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0x00 => "Success",
        0x01 => "Granted QoS 1",
        0x04 => "Disconnect with Will Message",
        0x10 => "No matching subscribers",
        0x11 => "No subscription existed",
        UNSPECIFIED_ERROR => "Unspecified error",
        MALFORMED_PACKET => "Malformed Packet",
        PROTOCOL_ERROR => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        CLIENT_IDENTIFIER_NOT_VALID => "Client Identifier not valid",
        BAD_USER_NAME_OR_PASSWORD => "Bad User Name or Password",
        NOT_AUTHORIZED => "Not authorized",
        SERVER_UNAVAILABLE => "Server unavailable",
        0x89 => "Server busy",
        SERVER_SHUTTING_DOWN => "Server shutting down",
        BAD_AUTHENTICATION_METHOD => "Bad authentication method",
        KEEP_ALIVE_TIMEOUT => "Keep Alive timeout",
        SESSION_TAKEN_OVER => "Session taken over",
        TOPIC_FILTER_INVALID => "Topic Filter invalid",
        TOPIC_NAME_INVALID => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x93 => "Receive Maximum exceeded",
        TOPIC_ALIAS_INVALID => "Topic Alias invalid",
        PACKET_TOO_LARGE => "Packet too large",
        MESSAGE_RATE_TOO_HIGH => "Message rate too high",
        QUOTA_EXCEEDED => "Quota exceeded",
        ADMINISTRATIVE_ACTION => "Administrative action",
        PAYLOAD_FORMAT_INVALID => "Payload format invalid",
        QOS_NOT_SUPPORTED => "QoS not supported",
        0x9E => "Shared Subscriptions not supported",
        SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED => "Subscription Identifiers not supported",
        _ => "reason code",
    }
}

/// What only an MQTT 5 connection keeps.
#[derive(Debug, Default)]
pub struct State {
    /// The client's topic aliases (alias → topic), at most AWS's 8.
    topic_aliases: HashMap<u16, String>,
    /// Request Problem Information: 0 asks for no reason strings on acks.
    problem_info: bool,
    /// The client's Maximum Packet Size: larger deliveries are dropped.
    max_packet_to_client: Option<usize>,
    /// Seconds the session outlives the connection (after AWS's cap; the
    /// DISCONNECT may change it).
    session_expiry: u32,
    /// What the client asked for, when the cap lowered it (CONNACK says so).
    session_expiry_adjusted: bool,
    /// A clientId the endpoint made up for an empty one (CONNACK says it).
    assigned_client_id: Option<String>,
}

impl Session {
    /// The seconds an MQTT 5 session outlives its connection (after the
    /// DISCONNECT changed it), when the client speaks MQTT 5.
    pub fn session_expiry(&self) -> Option<u32> {
        self.v5.as_ref().map(|s| s.session_expiry)
    }
}

/// A level-5 CONNECT at the start of `buf`: `0x10`, the remaining length,
/// then protocol name `MQTT` and level 5.
pub fn is_v5_connect(buf: &[u8]) -> bool {
    if buf.first() != Some(&0x10) {
        return false;
    }
    let Some((header, _)) = fixed_header(buf) else {
        return false;
    };
    buf.get(header..header + 7) == Some(&[0, 4, b'M', b'Q', b'T', b'T', 5][..])
}

/// The fixed header's length and the remaining length, when complete and
/// well-formed (at most 4 length bytes).
fn fixed_header(buf: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for (i, byte) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((i + 2, len));
        }
    }
    None
}

/// A property that appears twice in the packet at the start of `buf` (a
/// protocol error, MQTT 5 §2.2.2.2, but for User Property and a PUBLISH's
/// Subscription Identifier), as `Err(why)`. The packet is complete; only
/// the packets with properties the endpoint reads are checked. Any other
/// malformation is left to the codec.
pub fn duplicate_property(buf: &[u8]) -> Result<(), String> {
    let Some((header, remaining)) = fixed_header(buf) else {
        return Ok(());
    };
    let Some(body) = buf.get(header..header + remaining) else {
        return Ok(());
    };
    let kind = buf[0] >> 4;
    let u16_at = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *body.get(at)?,
            *body.get(at + 1)?,
        ])))
    };
    // Where the properties start in the variable header.
    let start = match kind {
        // CONNECT: name (2 + 4), level, flags, keepalive.
        1 => Some(10),
        // PUBLISH: topic, then a packet id at QoS > 0.
        3 => u16_at(0).map(|t| 2 + t + if buf[0] & 0b0110 != 0 { 2 } else { 0 }),
        // PUBACK: id, reason, properties — when the packet is long enough.
        4 if remaining > 3 => Some(3),
        // SUBSCRIBE, UNSUBSCRIBE: packet id.
        8 | 10 => Some(2),
        // DISCONNECT: reason, properties.
        14 if remaining > 1 => Some(1),
        _ => None,
    };
    let Some(start) = start else {
        return Ok(());
    };
    let Some(rest) = body.get(start..) else {
        return Ok(());
    };
    let Some((len_bytes, props_len)) = fixed_header(&[&[0u8][..], rest].concat()) else {
        return Ok(());
    };
    let len_bytes = len_bytes - 1;
    let Some(props) = rest.get(len_bytes..len_bytes + props_len) else {
        return Ok(());
    };
    let mut seen = [false; 64];
    let mut at = 0;
    while at < props.len() {
        let id = props[at];
        at += 1;
        let size = match id {
            1 | 23 | 25 | 36 | 37 | 40 | 41 | 42 => 1,
            19 | 33 | 34 | 35 => 2,
            2 | 17 | 24 | 39 => 4,
            11 => {
                let varint = props.get(at..).unwrap_or(&[]);
                let mut n = 0;
                while n < 4 && varint.get(n).is_some_and(|b| b & 0x80 != 0) {
                    n += 1;
                }
                n + 1
            }
            3 | 8 | 9 | 18 | 21 | 22 | 26 | 28 | 31 => {
                let Some(n) = props.get(at..at + 2) else {
                    return Ok(());
                };
                2 + usize::from(u16::from_be_bytes([n[0], n[1]]))
            }
            38 => {
                let Some(k) = props.get(at..at + 2) else {
                    return Ok(());
                };
                let k = 2 + usize::from(u16::from_be_bytes([k[0], k[1]]));
                let Some(v) = props.get(at + k..at + k + 2) else {
                    return Ok(());
                };
                k + 2 + usize::from(u16::from_be_bytes([v[0], v[1]]))
            }
            // Unknown: the codec refuses it.
            _ => return Ok(()),
        };
        let repeatable = id == 38 || (id == 11 && kind == 3);
        let slot = usize::from(id);
        if seen[slot] && !repeatable {
            return Err(format!(
                "property {id:#04x} appears twice in one packet (MQTT 5 §2.2.2.2)"
            ));
        }
        seen[slot] = true;
        at += size;
    }
    Ok(())
}

/// The MQTT 5 reason code that tells a client why the endpoint closes its
/// connection for `reason` (`None`: it is not told, e.g. the socket is gone).
pub fn reason_code_for(reason: &CloseReason) -> Option<u8> {
    Some(match reason {
        CloseReason::ClientInitiated
        | CloseReason::ClientInitiatedWithWill
        | CloseReason::ConnectionLost => return None,
        CloseReason::ClientError(_) => PROTOCOL_ERROR,
        CloseReason::AuthorizationError(_) => NOT_AUTHORIZED,
        CloseReason::AuthenticationError(_) => BAD_USER_NAME_OR_PASSWORD,
        CloseReason::KeepAliveTimeout => KEEP_ALIVE_TIMEOUT,
        CloseReason::DuplicateClientId => SESSION_TAKEN_OVER,
        CloseReason::ServerInitiated => SERVER_SHUTTING_DOWN,
    })
}

/// A reason code as CONNACK can carry it; the ones only DISCONNECT has
/// become the nearest CONNACK code.
fn connack_code(code: u8) -> Connect5Code {
    match code {
        0x00 => Connect5Code::Success,
        MALFORMED_PACKET => Connect5Code::MalformedPacket,
        PROTOCOL_ERROR => Connect5Code::ProtocolError,
        CLIENT_IDENTIFIER_NOT_VALID => Connect5Code::ClientIdentifierNotValid,
        BAD_USER_NAME_OR_PASSWORD => Connect5Code::BadUserNamePassword,
        NOT_AUTHORIZED => Connect5Code::NotAuthorized,
        SERVER_UNAVAILABLE | SERVER_SHUTTING_DOWN => Connect5Code::ServerUnavailable,
        BAD_AUTHENTICATION_METHOD => Connect5Code::BadAuthenticationMethod,
        TOPIC_NAME_INVALID => Connect5Code::TopicNameInvalid,
        PACKET_TOO_LARGE => Connect5Code::PacketTooLarge,
        QUOTA_EXCEEDED | MESSAGE_RATE_TOO_HIGH => Connect5Code::QuotaExceeded,
        PAYLOAD_FORMAT_INVALID => Connect5Code::PayloadFormatInvalid,
        QOS_NOT_SUPPORTED => Connect5Code::QoSNotSupported,
        _ => Connect5Code::UnspecifiedError,
    }
}

fn connack_value(code: Connect5Code) -> u8 {
    match code {
        Connect5Code::Success => 0,
        Connect5Code::MalformedPacket => MALFORMED_PACKET,
        Connect5Code::ProtocolError => PROTOCOL_ERROR,
        Connect5Code::ClientIdentifierNotValid => CLIENT_IDENTIFIER_NOT_VALID,
        Connect5Code::BadUserNamePassword => BAD_USER_NAME_OR_PASSWORD,
        Connect5Code::NotAuthorized => NOT_AUTHORIZED,
        Connect5Code::ServerUnavailable => SERVER_UNAVAILABLE,
        Connect5Code::BadAuthenticationMethod => BAD_AUTHENTICATION_METHOD,
        Connect5Code::TopicNameInvalid => TOPIC_NAME_INVALID,
        Connect5Code::PacketTooLarge => PACKET_TOO_LARGE,
        Connect5Code::QuotaExceeded => QUOTA_EXCEEDED,
        Connect5Code::PayloadFormatInvalid => PAYLOAD_FORMAT_INVALID,
        Connect5Code::QoSNotSupported => QOS_NOT_SUPPORTED,
        _ => UNSPECIFIED_ERROR,
    }
}

/// CONNACK properties, all absent.
fn connack_properties() -> ConnAckProperties {
    ConnAckProperties {
        session_expiry_interval: None,
        receive_max: None,
        max_qos: None,
        retain_available: None,
        max_packet_size: None,
        assigned_client_identifier: None,
        topic_alias_max: None,
        reason_string: None,
        user_properties: Vec::new(),
        wildcard_subscription_available: None,
        subscription_identifiers_available: None,
        shared_subscription_available: None,
        server_keep_alive: None,
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    }
}

fn disconnect_code(code: u8) -> DisconnectReasonCode {
    DisconnectReasonCode::try_from(code).unwrap_or(DisconnectReasonCode::UnspecifiedError)
}

fn puback_reason(code: u8) -> PubAckReason {
    match code {
        0x00 => PubAckReason::Success,
        NOT_AUTHORIZED => PubAckReason::NotAuthorized,
        TOPIC_NAME_INVALID => PubAckReason::TopicNameInvalid,
        QUOTA_EXCEEDED => PubAckReason::QuotaExceeded,
        PAYLOAD_FORMAT_INVALID => PubAckReason::PayloadFormatInvalid,
        _ => PubAckReason::UnspecifiedError,
    }
}

fn puback_value(reason: PubAckReason) -> u8 {
    match reason {
        PubAckReason::Success => 0,
        PubAckReason::NoMatchingSubscribers => 0x10,
        PubAckReason::UnspecifiedError => UNSPECIFIED_ERROR,
        PubAckReason::ImplementationSpecificError => 0x83,
        PubAckReason::NotAuthorized => NOT_AUTHORIZED,
        PubAckReason::TopicNameInvalid => TOPIC_NAME_INVALID,
        PubAckReason::PacketIdentifierInUse => 0x91,
        PubAckReason::QuotaExceeded => QUOTA_EXCEEDED,
        PubAckReason::PayloadFormatInvalid => PAYLOAD_FORMAT_INVALID,
    }
}

fn suback_value(code: Sub5Code) -> u8 {
    match code {
        Sub5Code::Success(qos) => qos as u8,
        Sub5Code::Failure | Sub5Code::Unspecified => UNSPECIFIED_ERROR,
        Sub5Code::ImplementationSpecific => 0x83,
        Sub5Code::NotAuthorized => NOT_AUTHORIZED,
        Sub5Code::TopicFilterInvalid => TOPIC_FILTER_INVALID,
        Sub5Code::PkidInUse => 0x91,
        Sub5Code::QuotaExceeded => QUOTA_EXCEEDED,
        Sub5Code::SharedSubscriptionsNotSupported => 0x9E,
        Sub5Code::SubscriptionIdNotSupported => SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
        Sub5Code::WildcardSubscriptionsNotSupported => 0xA2,
    }
}

/// The codec's QoS types differ by MQTT version; the values do not.
pub fn qos_from_v5(qos: QoS5) -> QoS {
    match qos {
        QoS5::AtMostOnce => QoS::AtMostOnce,
        QoS5::AtLeastOnce => QoS::AtLeastOnce,
        QoS5::ExactlyOnce => QoS::ExactlyOnce,
    }
}

pub fn qos_to_v5(qos: QoS) -> QoS5 {
    match qos {
        QoS::AtMostOnce => QoS5::AtMostOnce,
        QoS::AtLeastOnce => QoS5::AtLeastOnce,
        QoS::ExactlyOnce => QoS5::ExactlyOnce,
    }
}

impl PacketSummary {
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
            P::ConnAck(a) => (
                "CONNACK",
                None,
                None,
                Some((
                    connack_value(a.code),
                    a.properties.as_ref().and_then(|p| p.reason_string.clone()),
                )),
            ),
            P::Publish(p) => (
                "PUBLISH",
                Some(text(&p.topic)),
                Some(p.payload.clone()),
                None,
            ),
            P::PubAck(a) => (
                "PUBACK",
                None,
                None,
                Some((
                    puback_value(a.reason),
                    a.properties.as_ref().and_then(|p| p.reason_string.clone()),
                )),
            ),
            P::Subscribe(s) => (
                "SUBSCRIBE",
                Some(
                    s.filters
                        .iter()
                        .map(|f| f.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
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
            P::Unsubscribe(u) => ("UNSUBSCRIBE", Some(u.filters.join(", ")), None, None),
            P::UnsubAck(_) => ("UNSUBACK", None, None, None),
            P::Disconnect(d) => (
                "DISCONNECT",
                None,
                None,
                Some((
                    d.reason_code as u8,
                    d.properties.as_ref().and_then(|p| p.reason_string.clone()),
                )),
            ),
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

impl Session {
    fn state(&mut self) -> &mut State {
        self.v5.get_or_insert_with(Box::default)
    }

    /// The reason string for an ack, unless the client asked for none.
    fn ack_reason(&self, why: &str) -> Option<String> {
        self.v5
            .as_ref()
            .is_none_or(|s| s.problem_info)
            .then(|| why.to_string())
    }

    /// Decodes and handles one MQTT 5 packet; false when more bytes are needed.
    pub(super) fn next_packet_v5(&mut self, authz: &dyn Authorize, out: &mut Vec<Effect>) -> bool {
        // DISCONNECT with no reason code (remaining length 0) is a normal
        // disconnection; the codec wants at least one byte.
        if self.buf.starts_with(&[0xE0, 0x00]) {
            let _ = self.buf.split_to(2);
            if self.observe {
                let packet = mqtt5::Packet::Disconnect(Disconnect::new(
                    DisconnectReasonCode::NormalDisconnection,
                ));
                out.push(Effect::Received(PacketSummary::of5(&packet)));
            }
            if self.phase == Phase::AwaitingConnect {
                self.close(
                    CloseReason::ClientError("DISCONNECT before CONNECT".into()),
                    out,
                );
            } else {
                self.close(CloseReason::ClientInitiated, out);
            }
            return true;
        }
        if self.buf.first().is_some_and(|b| b >> 4 == 15) {
            self.close(
                CloseReason::ClientError(
                    "AUTH: AWS IoT does not support MQTT 5 enhanced authentication".into(),
                ),
                out,
            );
            return true;
        }
        // Framed here, not by the codec: its "insufficient bytes" also
        // comes from inside a complete packet (a property list cut short),
        // after the packet was taken off the buffer — that is malformed.
        let Some((header, remaining)) = fixed_header(&self.buf) else {
            if self.buf.len() >= 5 {
                self.close_with(
                    Some(MALFORMED_PACKET),
                    CloseReason::ClientError("remaining length longer than 4 bytes".into()),
                    out,
                );
                return true;
            }
            return false;
        };
        if remaining > MAX_PACKET_BYTES {
            self.close_with(
                Some(PACKET_TOO_LARGE),
                CloseReason::ClientError(format!(
                    "packet of {remaining} bytes exceeds the limit of {MAX_PACKET_BYTES} (AWS: payload ≤ 128 KiB)"
                )),
                out,
            );
            return true;
        }
        if self.buf.len() < header + remaining {
            return false;
        }
        if let Err(why) = duplicate_property(&self.buf) {
            self.close(CloseReason::ClientError(why), out);
            return true;
        }
        // DISCONNECT with a reason code and no property length (remaining
        // length 1, which MQTT 5 allows): the codec wants the property length.
        if self.buf[0] == 0xE0 && remaining == 1 {
            let packet = self.buf.split_to(3);
            match DisconnectReasonCode::try_from(packet[2]) {
                Ok(code) => {
                    let disconnect = Disconnect::new(code);
                    if self.observe {
                        let packet = mqtt5::Packet::Disconnect(disconnect.clone());
                        out.push(Effect::Received(PacketSummary::of5(&packet)));
                    }
                    if self.phase == Phase::AwaitingConnect {
                        self.close(
                            CloseReason::ClientError("DISCONNECT before CONNECT".into()),
                            out,
                        );
                    } else {
                        self.handle_disconnect_v5(disconnect, out);
                    }
                }
                Err(_) => self.close_with(
                    Some(MALFORMED_PACKET),
                    CloseReason::ClientError(format!(
                        "DISCONNECT with reason code {:#04x}, which MQTT 5 does not define",
                        packet[2]
                    )),
                    out,
                ),
            }
            return true;
        }
        match mqtt5::Packet::read(&mut self.buf, Some(MAX_PACKET_BYTES as u32)) {
            Ok(packet) => {
                if self.observe {
                    out.push(Effect::Received(PacketSummary::of5(&packet)));
                }
                self.handle_packet_v5(packet, authz, out);
            }
            Err(e) => {
                let why = match e {
                    rumqttc::v5::mqttbytes::Error::MalformedRemainingLength => {
                        "remaining length longer than 4 bytes".to_string()
                    }
                    rumqttc::v5::mqttbytes::Error::TopicNotUtf8 => {
                        "a string is not valid UTF-8".to_string()
                    }
                    other => format!("malformed MQTT 5 packet: {other}"),
                };
                self.close_with(Some(MALFORMED_PACKET), CloseReason::ClientError(why), out);
            }
        }
        true
    }

    fn handle_packet_v5(
        &mut self,
        packet: mqtt5::Packet,
        authz: &dyn Authorize,
        out: &mut Vec<Effect>,
    ) {
        use mqtt5::Packet as P;
        if self.phase == Phase::AwaitingConnect {
            match packet {
                P::Connect(connect, will, login) => {
                    self.handle_connect_v5(connect, will, login, out)
                }
                other => self.close(
                    CloseReason::ClientError(format!(
                        "{} before CONNECT; the first packet must be CONNECT",
                        PacketSummary::of5(&other).packet
                    )),
                    out,
                ),
            }
            return;
        }
        match packet {
            P::Connect(..) => self.close(
                CloseReason::ClientError("second CONNECT on one connection".into()),
                out,
            ),
            P::Publish(publish) => self.handle_publish_v5(publish, authz, out),
            P::PubAck(ack) => self.acknowledged(ack.pkid, out),
            P::Subscribe(subscribe) => self.handle_subscribe_v5(subscribe, authz, out),
            P::Unsubscribe(unsubscribe) => {
                for filter in &unsubscribe.filters {
                    if let Err(why) = check_filter(filter) {
                        return self.close_with(
                            Some(TOPIC_FILTER_INVALID),
                            CloseReason::ClientError(why),
                            out,
                        );
                    }
                }
                out.push(Effect::Send5(P::UnsubAck(UnsubAck5 {
                    pkid: unsubscribe.pkid,
                    reasons: vec![UnsubAckReason::Success; unsubscribe.filters.len()],
                    properties: None,
                })));
                out.push(Effect::Unsubscribe(unsubscribe.filters));
            }
            P::PingReq(_) => out.push(Effect::Send5(P::PingResp(mqtt5::PingResp))),
            P::Disconnect(disconnect) => self.handle_disconnect_v5(disconnect, out),
            P::PubRec(_) | P::PubRel(_) | P::PubComp(_) => self.close(
                CloseReason::ClientError(
                    "QoS 2 flow packets: AWS IoT does not support QoS 2".into(),
                ),
                out,
            ),
            P::Auth(_) => self.close(
                CloseReason::ClientError(
                    "AUTH: AWS IoT does not support MQTT 5 enhanced authentication".into(),
                ),
                out,
            ),
            other @ (P::ConnAck(_) | P::SubAck(_) | P::UnsubAck(_) | P::PingResp(_)) => self.close(
                CloseReason::ClientError(format!(
                    "{} is sent by brokers, not clients",
                    PacketSummary::of5(&other).packet
                )),
                out,
            ),
        }
    }

    fn handle_connect_v5(
        &mut self,
        connect: mqtt5::Connect,
        will: Option<mqtt5::LastWill>,
        _login: Option<mqtt5::Login>,
        out: &mut Vec<Effect>,
    ) {
        let properties = connect.properties.unwrap_or_default();
        if properties.authentication_method.is_some() {
            return self.close_with(
                Some(BAD_AUTHENTICATION_METHOD),
                CloseReason::ClientError(
                    "Authentication Method: AWS IoT does not support MQTT 5 enhanced authentication"
                        .into(),
                ),
                out,
            );
        }
        if properties.receive_maximum == Some(0) || properties.max_packet_size == Some(0) {
            return self.close_with(
                Some(PROTOCOL_ERROR),
                CloseReason::ClientError(
                    "Receive Maximum and Maximum Packet Size must not be 0 (MQTT 5 §3.1.2.11)"
                        .into(),
                ),
                out,
            );
        }
        let mut client_id = connect.client_id;
        let mut assigned = None;
        if client_id.is_empty() {
            // MQTT 5 lets the server pick one; AWS does, and says which in CONNACK.
            client_id = format!("jitpilot-{}", hex::encode(rand::random::<[u8; 8]>()));
            assigned = Some(client_id.clone());
        }
        if client_id.len() > MAX_CLIENT_ID_BYTES {
            return self.close_with(
                Some(CLIENT_IDENTIFIER_NOT_VALID),
                CloseReason::ClientError(format!(
                    "clientId must be 1..={MAX_CLIENT_ID_BYTES} bytes (got {})",
                    client_id.len()
                )),
                out,
            );
        }
        let will = match will {
            Some(will) => match will_message(will, Instant::now()) {
                Ok(will) => Some(will),
                Err((code, why)) => {
                    return self.close_with(Some(code), CloseReason::ClientError(why), out)
                }
            },
            None => None,
        };
        let requested = properties.session_expiry_interval.unwrap_or(0);
        let expiry = requested.min(MAX_SESSION_EXPIRY_SECONDS);
        if let Some(max) = properties.receive_maximum {
            self.max_inflight = self.max_inflight.min(usize::from(max)).max(1);
        }
        let state = self.state();
        state.problem_info = properties.request_problem_info != Some(0);
        state.max_packet_to_client = properties.max_packet_size.map(|n| n as usize);
        state.session_expiry = expiry;
        state.session_expiry_adjusted = expiry != requested;
        state.assigned_client_id = assigned;
        self.client_id = client_id.clone();
        self.keep_alive = connect.keep_alive;
        self.will = will.clone();
        self.phase = Phase::Authorizing;
        out.push(Effect::Connect(ConnectRequest {
            client_id,
            clean_session: connect.clean_start,
            level: MqttLevel::V5,
            session_expiry: Some(expiry),
            keep_alive: connect.keep_alive,
            will,
        }));
    }

    /// CONNACK 0x00 with what the endpoint supports, as AWS IoT Core
    /// advertises it.
    pub(super) fn connack_v5(&mut self, session_present: bool, out: &mut Vec<Effect>) {
        let max_inflight = self.max_inflight;
        let state = self.state();
        let properties = ConnAckProperties {
            session_expiry_interval: state
                .session_expiry_adjusted
                .then_some(state.session_expiry),
            receive_max: Some(u16::try_from(max_inflight).unwrap_or(u16::MAX)),
            max_qos: Some(1),
            retain_available: Some(1),
            max_packet_size: Some(MAX_PACKET_BYTES as u32 + 5),
            assigned_client_identifier: state.assigned_client_id.clone(),
            topic_alias_max: Some(TOPIC_ALIAS_MAXIMUM),
            wildcard_subscription_available: Some(1),
            subscription_identifiers_available: Some(0),
            shared_subscription_available: Some(1),
            ..connack_properties()
        };
        out.push(Effect::Send5(mqtt5::Packet::ConnAck(ConnAck5 {
            session_present,
            code: Connect5Code::Success,
            properties: Some(properties),
        })));
    }

    /// CONNACK or DISCONNECT with `code` and the reason in words.
    pub(super) fn tell_v5_client(&mut self, code: u8, reason: &CloseReason, out: &mut Vec<Effect>) {
        let why = Some(reason.describe());
        match self.phase {
            Phase::Connected => out.push(Effect::Send5(mqtt5::Packet::Disconnect(Disconnect {
                reason_code: disconnect_code(code),
                properties: Some(DisconnectProperties {
                    session_expiry_interval: None,
                    reason_string: why,
                    user_properties: Vec::new(),
                    server_reference: None,
                }),
            }))),
            Phase::AwaitingConnect | Phase::Authorizing => {
                out.push(Effect::Send5(mqtt5::Packet::ConnAck(ConnAck5 {
                    session_present: false,
                    code: connack_code(code),
                    properties: Some(ConnAckProperties {
                        reason_string: why,
                        ..connack_properties()
                    }),
                })))
            }
            Phase::Closed => {}
        }
    }

    /// A refused PUBLISH: PUBACK with `code` for QoS 1 (the connection
    /// stays up, as on AWS); a QoS 0 one cannot be answered, so the
    /// connection is closed with DISCONNECT `code`.
    fn refuse_publish(
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

    fn handle_publish_v5(
        &mut self,
        publish: Publish5,
        authz: &dyn Authorize,
        out: &mut Vec<Effect>,
    ) {
        if publish.qos == QoS5::ExactlyOnce {
            return self.close_with(
                Some(QOS_NOT_SUPPORTED),
                CloseReason::ClientError("PUBLISH with QoS 2: AWS IoT supports QoS 0 and 1".into()),
                out,
            );
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
        if publish.payload.len() > self.max_payload {
            return self.close_with(
                Some(PACKET_TOO_LARGE),
                CloseReason::ClientError(format!(
                    "payload of {} bytes exceeds the limit of {} bytes (AWS: 128 KiB)",
                    publish.payload.len(),
                    self.max_payload
                )),
                out,
            );
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
        if !authz.may_publish(&topic) {
            return self.refuse_publish(
                pkid,
                NOT_AUTHORIZED,
                CloseReason::AuthorizationError(format!(
                    "iot:Publish on topic/{topic} is not allowed by the certificate's policies"
                )),
                out,
            );
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

    fn handle_subscribe_v5(
        &mut self,
        subscribe: mqtt5::Subscribe,
        authz: &dyn Authorize,
        out: &mut Vec<Effect>,
    ) {
        if subscribe
            .properties
            .as_ref()
            .is_some_and(|p| p.id.is_some())
        {
            return self.close_with(
                Some(SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED),
                CloseReason::ClientError(
                    "Subscription Identifiers: AWS IoT does not support them".into(),
                ),
                out,
            );
        }
        let too_many = subscribe.filters.len() > self.max_filters;
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut granted = Vec::new();
        let mut reasons = Vec::new();
        for filter in subscribe.filters {
            if too_many {
                codes.push(Sub5Code::QuotaExceeded);
                reasons.push(format!(
                    "SUBSCRIBE with more than {} filters (AWS's limit)",
                    self.max_filters
                ));
                continue;
            }
            if let Err(why) = check_filter(&filter.path) {
                codes.push(Sub5Code::TopicFilterInvalid);
                reasons.push(why);
                continue;
            }
            if filter.nolocal && filter.path.starts_with("$share/") {
                return self.close(
                    CloseReason::ClientError(
                        "No Local on a shared subscription (MQTT 5 §3.8.3.1)".into(),
                    ),
                    out,
                );
            }
            if !authz.may_subscribe(&filter.path) {
                codes.push(Sub5Code::NotAuthorized);
                reasons.push(format!(
                    "iot:Subscribe on topicfilter/{} is not allowed by the certificate's policies",
                    filter.path
                ));
                continue;
            }
            // No QoS 2 on AWS IoT: grant at most QoS 1.
            let qos = match filter.qos {
                QoS5::AtMostOnce => QoS::AtMostOnce,
                _ => QoS::AtLeastOnce,
            };
            codes.push(Sub5Code::Success(qos_to_v5(qos)));
            granted.push((filter.path, qos));
        }
        let why = (!reasons.is_empty())
            .then(|| reasons.join("; "))
            .and_then(|r| self.ack_reason(&r));
        out.push(Effect::Send5(mqtt5::Packet::SubAck(SubAck5 {
            pkid: subscribe.pkid,
            return_codes: codes,
            properties: why.map(|reason_string| SubAckProperties {
                reason_string: Some(reason_string),
                user_properties: Vec::new(),
            }),
        })));
        if !granted.is_empty() {
            out.push(Effect::Subscribe(granted));
        }
    }

    fn handle_disconnect_v5(&mut self, disconnect: Disconnect, out: &mut Vec<Effect>) {
        if let Some(expiry) = disconnect
            .properties
            .as_ref()
            .and_then(|p| p.session_expiry_interval)
        {
            let state = self.state();
            if state.session_expiry == 0 && expiry > 0 {
                return self.close(
                    CloseReason::ClientError(
                        "DISCONNECT sets a Session Expiry Interval after CONNECT set 0 (MQTT 5 §3.14.2.2.2)"
                            .into(),
                    ),
                    out,
                );
            }
            state.session_expiry = expiry.min(MAX_SESSION_EXPIRY_SECONDS);
        }
        let reason = match disconnect.reason_code {
            DisconnectReasonCode::NormalDisconnection => CloseReason::ClientInitiated,
            // 0x04, and any error the client reports: the will is published.
            _ => CloseReason::ClientInitiatedWithWill,
        };
        self.close(reason, out);
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
fn will_message(will: mqtt5::LastWill, now: Instant) -> Result<Message, (u8, String)> {
    if will.qos == QoS5::ExactlyOnce {
        return Err((
            QOS_NOT_SUPPORTED,
            "last will with QoS 2: AWS IoT supports QoS 0 and 1".into(),
        ));
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

#[cfg(test)]
#[path = "session_v5_tests.rs"]
mod tests;
