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
//! Here: framing, CONNECT/CONNACK, SUBSCRIBE, DISCONNECT and telling a
//! client why it is closed; PUBLISH both ways is in `v5_publish.rs`, the
//! reason codes in `reason.rs`. The codec does not reject a property given
//! twice, which MQTT 5 makes a protocol error; `frame.rs` checks the
//! packets that carry properties before they are decoded.

use super::checks::{self, FilterRefused};
use super::frame::{duplicate_property, fixed_header};
use super::reason::*;
use super::v5_publish::will_message;
use super::*;
use crate::cloud::local::endpoint::limits::{
    MAX_PACKET_BYTES, MAX_SESSION_EXPIRY_SECONDS, TOPIC_ALIAS_MAXIMUM,
};
use crate::cloud::local::endpoint::topics::check_filter;
use mqtt5::{
    ConnAck as ConnAck5, ConnAckProperties, ConnectReturnCode as Connect5Code, Disconnect,
    DisconnectProperties, DisconnectReasonCode, SubAck as SubAck5, SubAckProperties,
    SubscribeReasonCode as Sub5Code, UnsubAck as UnsubAck5, UnsubAckReason,
};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use std::collections::HashMap;

/// What only an MQTT 5 connection keeps.
#[derive(Debug, Default)]
pub struct State {
    /// The client's topic aliases (alias → topic), at most AWS's 8.
    pub(super) topic_aliases: HashMap<u16, String>,
    /// Request Problem Information: 0 asks for no reason strings on acks.
    pub(super) problem_info: bool,
    /// The client's Maximum Packet Size: larger deliveries are dropped.
    pub(super) max_packet_to_client: Option<usize>,
    /// Seconds the session outlives the connection (after AWS's cap; the
    /// DISCONNECT may change it).
    pub(super) session_expiry: u32,
    /// What the client asked for, when the cap lowered it (CONNACK says so).
    pub(super) session_expiry_adjusted: bool,
    /// A clientId the endpoint made up for an empty one (CONNACK says it).
    pub(super) assigned_client_id: Option<String>,
}

impl Session {
    /// The seconds an MQTT 5 session outlives its connection (after the
    /// DISCONNECT changed it), when the client speaks MQTT 5.
    pub fn session_expiry(&self) -> Option<u32> {
        self.v5.as_ref().map(|s| s.session_expiry)
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

/// The codec's QoS types differ by MQTT version; the values do not.
pub fn qos_from_v5(qos: QoS5) -> QoS {
    match qos {
        QoS5::AtMostOnce => QoS::AtMostOnce,
        QoS5::AtLeastOnce => QoS::AtLeastOnce,
        QoS5::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// [`qos_from_v5`] the other way.
pub fn qos_to_v5(qos: QoS) -> QoS5 {
    match qos {
        QoS::AtMostOnce => QoS5::AtMostOnce,
        QoS::AtLeastOnce => QoS5::AtLeastOnce,
        QoS::ExactlyOnce => QoS5::ExactlyOnce,
    }
}

impl Session {
    pub(super) fn state(&mut self) -> &mut State {
        self.v5.get_or_insert_with(Box::default)
    }

    /// The reason string for an ack, unless the client asked for none.
    pub(super) fn ack_reason(&self, why: &str) -> Option<String> {
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
            let normal = Disconnect::new(DisconnectReasonCode::NormalDisconnection);
            self.short_disconnect(normal, out);
            return true;
        }
        if self.buf.first().is_some_and(|b| b >> 4 == 15) {
            self.close(no_auth(), out);
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
                Ok(code) => self.short_disconnect(Disconnect::new(code), out),
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

    /// A DISCONNECT shorter than the codec reads (no property length),
    /// decoded here.
    fn short_disconnect(&mut self, disconnect: Disconnect, out: &mut Vec<Effect>) {
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
                    checks::before_connect(PacketSummary::of5(&other).packet),
                    out,
                ),
            }
            return;
        }
        match packet {
            P::Connect(..) => self.close(checks::second_connect(), out),
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
            P::PubRec(_) | P::PubRel(_) | P::PubComp(_) => self.close(checks::qos2_flow(), out),
            P::Auth(_) => self.close(no_auth(), out),
            other @ (P::ConnAck(_) | P::SubAck(_) | P::UnsubAck(_) | P::PingResp(_)) => self.close(
                checks::sent_by_brokers(PacketSummary::of5(&other).packet),
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
                CloseReason::ClientError(format!(
                    "Authentication Method: {}",
                    checks::NO_ENHANCED_AUTH
                )),
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
        if let Err(reason) = checks::check_client_id(&client_id) {
            return self.close_with(Some(CLIENT_IDENTIFIER_NOT_VALID), reason, out);
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
        let request = ConnectRequest {
            client_id,
            clean_session: connect.clean_start,
            level: MqttLevel::V5,
            session_expiry: Some(expiry),
            keep_alive: connect.keep_alive,
            will,
        };
        self.authorizing(request, out);
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
            // A protocol error, checked once the filter itself is valid.
            let shared = filter.path.starts_with("$share/") && check_filter(&filter.path).is_ok();
            if filter.nolocal && shared {
                return self.close(
                    CloseReason::ClientError(
                        "No Local on a shared subscription (MQTT 5 §3.8.3.1)".into(),
                    ),
                    out,
                );
            }
            match checks::grant(&filter.path, filter.qos == QoS5::AtMostOnce, authz) {
                Ok(qos) => {
                    codes.push(Sub5Code::Success(qos_to_v5(qos)));
                    granted.push((filter.path, qos));
                }
                Err(FilterRefused::Invalid(why)) => {
                    codes.push(Sub5Code::TopicFilterInvalid);
                    reasons.push(why);
                }
                Err(FilterRefused::NotAuthorized(why)) => {
                    codes.push(Sub5Code::NotAuthorized);
                    reasons.push(why);
                }
            }
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
}

/// AUTH: not supported.
fn no_auth() -> CloseReason {
    CloseReason::ClientError(format!("AUTH: {}", checks::NO_ENHANCED_AUTH))
}

#[cfg(test)]
#[path = "v5_tests.rs"]
mod tests;
