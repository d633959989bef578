//! One client's MQTT session — 3.1.1 or 5, told apart by the CONNECT's
//! protocol level — as a pure state machine.
//!
//! Like rumqttc's `state.rs`, this "modifies state without doing any network
//! operations": bytes and router deliveries go in, [`Effect`]s come out, and
//! the async shell in `connection.rs` moves them to the socket, the router and
//! the registry. That is what lets the unit and property tests below feed it
//! any bytes at all without a socket.
//!
//! AWS IoT's behaviour on MQTT 3.1.1 is what this follows: no QoS 2 (a QoS 2
//! PUBLISH disconnects, a QoS 2 subscription is granted QoS 1), an
//! unauthorized PUBLISH or SUBSCRIBE disconnects, and AWS's size limits.
//! MQTT 5 (`session_v5.rs`) answers with AWS's reason codes instead where
//! AWS documents one: a refused PUBLISH gets PUBACK 0x87, a refused
//! filter SUBACK 0x87, and a closed connection a DISCONNECT saying why.

use super::limits::{
    Limits, MAX_CLIENT_ID_BYTES, MAX_PACKET_BYTES, MAX_QUEUED_MESSAGES, MAX_TOPIC_BYTES,
};
use super::topics;
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, LastWill, Packet, PubAck, Publish, SubAck, SubscribeReasonCode,
    UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, Protocol, QoS};
use rumqttc::v5::mqttbytes::v5 as mqtt5;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::time::Instant;

pub use super::close_reason::CloseReason;

/// What the connection's certificate may do, decided by its IoT policies.
/// The session asks before acting; the shell supplies the real policy
/// evaluation (`authz.rs`).
pub trait Authorize {
    /// `iot:Publish` on `topic/<topic>`.
    fn may_publish(&self, topic: &str) -> bool;
    /// `iot:Subscribe` on `topicfilter/<filter>`.
    fn may_subscribe(&self, filter: &str) -> bool;
}

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

/// Which MQTT a client speaks, from its CONNECT's protocol level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MqttLevel {
    /// MQTT 3.1.1 (level 4).
    #[default]
    V311,
    /// MQTT 5 (level 5).
    V5,
}

/// A CONNECT the session has checked for form; the shell decides the rest
/// (certificate status, JITP, `iot:Connect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub client_id: String,
    /// 3.1.1's Clean Session; MQTT 5's Clean Start.
    pub clean_session: bool,
    pub level: MqttLevel,
    /// MQTT 5's Session Expiry Interval in seconds, capped at AWS's
    /// maximum (0: the session ends with the connection). `None` on 3.1.1:
    /// a persistent session is kept while the endpoint runs.
    pub session_expiry: Option<u32>,
    /// Seconds; 0 = no keepalive.
    pub keep_alive: u16,
    pub will: Option<Message>,
}

/// What the shell must do after feeding the session.
#[derive(Debug, Clone, PartialEq, Eq)]
// Effects live for one batch of reads; boxing every MQTT 5 packet would
// cost an allocation per packet on the hot path.
#[allow(clippy::large_enum_variant)]
pub enum Effect {
    /// Write this packet to the client (MQTT 3.1.1).
    Send(Packet),
    /// Write this packet to the client (MQTT 5).
    Send5(mqtt5::Packet),
    /// A well-formed CONNECT: authorize it, then call [`Session::accept`] or close.
    Connect(ConnectRequest),
    /// An authorized PUBLISH: route it (subscribers, retained store, rules).
    Publish(Message),
    /// An authorized MQTT 5 PUBLISH: route it, then acknowledge it with
    /// [`Session::publish_routed`] (a full retained store is PUBACK 0x97).
    Publish5 { message: Message, pkid: Option<u16> },
    /// Authorized subscriptions, already acknowledged (filter, granted QoS).
    Subscribe(Vec<(String, QoS)>),
    /// Filters the client unsubscribed from, already acknowledged.
    Unsubscribe(Vec<String>),
    /// Close the connection (without a CONNACK if none was sent).
    Close(CloseReason),
    /// A packet was decoded (only when observing, for the event stream).
    Received(PacketSummary),
}

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
            Packet::Subscribe(s) => (
                Some(
                    s.filters
                        .iter()
                        .map(|f| f.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                None,
            ),
            Packet::Unsubscribe(u) => (Some(u.topics.join(", ")), None),
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
}

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Only CONNECT is allowed.
    AwaitingConnect,
    /// CONNECT received; the shell is deciding. Further bytes wait, unread.
    Authorizing,
    /// CONNACK sent.
    Connected,
    /// Closed; everything else is ignored.
    Closed,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    /// Bytes received but not yet framed into a packet.
    buf: BytesMut,
    client_id: String,
    keep_alive: u16,
    will: Option<Message>,
    /// Packet id for the next QoS 1 delivery (1..=65535, never 0).
    next_pkid: u16,
    /// QoS 1 deliveries sent and not yet acknowledged, by packet id, in the
    /// order sent: redelivered on reconnect of a persistent session.
    inflight: BTreeMap<u16, Message>,
    /// QoS 1 deliveries waiting for room in the in-flight window.
    pending: VecDeque<Message>,
    /// QoS 1 deliveries dropped because `pending` was full (observability).
    dropped: u64,
    /// Emit [`Effect::Received`] for every decoded packet (someone watches).
    observe: bool,
    /// Largest PUBLISH payload accepted (AWS: 128 KiB).
    max_payload: usize,
    /// Most filters in one SUBSCRIBE (AWS: 8).
    max_filters: usize,
    /// QoS 1 deliveries in flight before the rest wait (AWS: 100; an
    /// MQTT 5 client's Receive Maximum when lower).
    max_inflight: usize,
    /// 3.1.1 until a level-5 CONNECT says otherwise.
    level: MqttLevel,
    /// What only an MQTT 5 connection keeps (topic aliases, its limits).
    v5: Option<Box<v5::State>>,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    /// A fresh session waiting for CONNECT, with AWS's limits.
    pub fn new() -> Session {
        Session::with_limits(&Limits::default())
    }

    /// A fresh session waiting for CONNECT, bounded by `limits`.
    pub fn with_limits(limits: &Limits) -> Session {
        Session {
            max_payload: limits.payload_bytes,
            max_filters: limits.filters_per_subscribe,
            max_inflight: limits.inflight.max(1),
            phase: Phase::AwaitingConnect,
            buf: BytesMut::new(),
            client_id: String::new(),
            keep_alive: 0,
            will: None,
            next_pkid: 1,
            inflight: BTreeMap::new(),
            pending: VecDeque::new(),
            dropped: 0,
            observe: false,
            level: MqttLevel::V311,
            v5: None,
        }
    }

    /// The MQTT level the client speaks (3.1.1 until its CONNECT says 5).
    pub fn level(&self) -> MqttLevel {
        self.level
    }

    /// Turns [`Effect::Received`] on or off (on while the event stream has subscribers).
    pub fn set_observe(&mut self, on: bool) {
        self.observe = on;
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The clientId from CONNECT (empty before).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Keepalive in seconds from CONNECT; 0 = none.
    pub fn keep_alive(&self) -> u16 {
        self.keep_alive
    }

    /// The last will, to publish when the connection ends badly.
    pub fn will(&self) -> Option<&Message> {
        self.will.as_ref()
    }

    /// QoS 1 deliveries dropped because the client could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Feeds bytes from the socket; decodes and handles every complete packet.
    /// In `Authorizing`, bytes are buffered until [`Session::accept`].
    pub fn handle_bytes(&mut self, data: &[u8], authz: &dyn Authorize, out: &mut Vec<Effect>) {
        if self.phase == Phase::Closed {
            return;
        }
        self.buf.extend_from_slice(data);
        while matches!(self.phase, Phase::AwaitingConnect | Phase::Connected) {
            if let Err(why) = check_fixed_header_flags(&self.buf) {
                return self.close_with(
                    Some(v5::MALFORMED_PACKET),
                    CloseReason::ClientError(why),
                    out,
                );
            }
            if self.phase == Phase::AwaitingConnect && v5::is_v5_connect(&self.buf) {
                self.level = MqttLevel::V5;
            }
            let more = match self.level {
                MqttLevel::V311 => self.next_packet_v4(authz, out),
                MqttLevel::V5 => self.next_packet_v5(authz, out),
            };
            if !more {
                break;
            }
        }
    }

    /// Decodes and handles one 3.1.1 packet; false when more bytes are needed.
    fn next_packet_v4(&mut self, authz: &dyn Authorize, out: &mut Vec<Effect>) -> bool {
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

    /// The shell accepted the CONNECT: sends CONNACK, then handles any bytes
    /// that arrived meanwhile. `resumed` are the QoS 1 messages a persistent
    /// session left unacknowledged or queued; they are redelivered now.
    pub fn accept(
        &mut self,
        session_present: bool,
        resumed: Vec<Message>,
        authz: &dyn Authorize,
        out: &mut Vec<Effect>,
    ) {
        if self.phase != Phase::Authorizing {
            return;
        }
        self.phase = Phase::Connected;
        match self.level {
            MqttLevel::V311 => out.push(Effect::Send(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                session_present,
            )))),
            MqttLevel::V5 => self.connack_v5(session_present, out),
        }
        for message in resumed {
            self.deliver(message, out);
        }
        self.handle_bytes(&[], authz, out);
    }

    /// The shell refused the CONNECT. AWS closes without CONNACK for
    /// certificate and policy refusals; `code` sends one first (e.g. a bad clientId).
    pub fn refuse(
        &mut self,
        code: Option<ConnectReturnCode>,
        reason: CloseReason,
        out: &mut Vec<Effect>,
    ) {
        if let Some(code) = code {
            out.push(Effect::Send(Packet::ConnAck(ConnAck::new(code, false))));
        }
        self.close(reason, out);
    }

    /// The shell refused the CONNECT for `reason`. 3.1.1 clients get no
    /// CONNACK (AWS closes the connection); an MQTT 5 client gets CONNACK
    /// with AWS's reason code and the reason string when `answer` — not
    /// after JITP, where AWS drops the connection without one.
    pub fn refuse_connect(&mut self, reason: CloseReason, answer: bool, out: &mut Vec<Effect>) {
        if answer {
            self.close(reason, out);
        } else {
            self.close_with(None, reason, out);
        }
    }

    /// Delivers a routed message to the client: QoS 0 goes out now, QoS 1
    /// gets a packet id and waits for PUBACK (or for room in the window).
    /// An expired message (MQTT 5 Message Expiry Interval) is dropped.
    pub fn deliver(&mut self, message: Message, out: &mut Vec<Effect>) {
        if self.phase != Phase::Connected {
            return;
        }
        let now = Instant::now();
        if message.expired(now) {
            // AWS: undelivered within its Message Expiry Interval, it is
            // removed — for 3.1.1 subscribers too.
            self.dropped += 1;
            return;
        }
        if message.qos == QoS::AtMostOnce {
            if let Some(packet) = self.publish_packet(&message, 0, now) {
                out.push(packet);
            }
            return;
        }
        if self.inflight.len() >= self.max_inflight {
            if self.pending.len() >= MAX_QUEUED_MESSAGES {
                self.pending.pop_front();
                self.dropped += 1;
            }
            self.pending.push_back(message);
            return;
        }
        let pkid = self.allocate_pkid();
        match self.publish_packet(&message, pkid, now) {
            Some(packet) => {
                out.push(packet);
                self.inflight.insert(pkid, message);
            }
            None => self.dropped += 1,
        }
    }

    /// The PUBLISH of a delivery in the client's MQTT; `None` when an MQTT 5
    /// client said it cannot take a packet that large (it is dropped).
    fn publish_packet(&self, message: &Message, pkid: u16, now: Instant) -> Option<Effect> {
        match self.level {
            MqttLevel::V311 => Some(Effect::Send(Packet::Publish(to_publish(
                message, pkid, false,
            )))),
            MqttLevel::V5 => self
                .publish_v5(message, pkid, now)
                .map(|p| Effect::Send5(mqtt5::Packet::Publish(p))),
        }
    }

    /// Everything not yet acknowledged, oldest first: kept by the router for
    /// a persistent session and redelivered on its next connection.
    pub fn take_unacked(&mut self) -> Vec<Message> {
        let mut messages: Vec<Message> = std::mem::take(&mut self.inflight).into_values().collect();
        messages.extend(self.pending.drain(..));
        messages
    }

    /// Marks the session closed (the shell closes the socket). An MQTT 5
    /// client is told why first: DISCONNECT with the reason code that fits
    /// `reason` (CONNACK with it, before the CONNECT was accepted).
    pub fn close(&mut self, reason: CloseReason, out: &mut Vec<Effect>) {
        let code = v5::reason_code_for(&reason);
        self.close_with(code, reason, out);
    }

    /// [`Session::close`] with an MQTT 5 reason code chosen by the caller
    /// (`None`: close without telling an MQTT 5 client anything).
    pub fn close_with(&mut self, code: Option<u8>, reason: CloseReason, out: &mut Vec<Effect>) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.level == MqttLevel::V5 {
            if let Some(code) = code {
                self.tell_v5_client(code, &reason, out);
            }
        }
        self.phase = Phase::Closed;
        self.buf.clear();
        out.push(Effect::Close(reason));
    }

    /// The client acknowledged `pkid`: the next waiting delivery goes out.
    fn acknowledged(&mut self, pkid: u16, out: &mut Vec<Effect>) {
        // An unknown id is harmless (a duplicate ack after redelivery).
        if self.inflight.remove(&pkid).is_some() {
            while let Some(next) = self.pending.pop_front() {
                let was = self.inflight.len();
                self.deliver(next, out);
                if self.inflight.len() > was {
                    break;
                }
            }
        }
    }

    fn allocate_pkid(&mut self) -> u16 {
        // Skip ids still in flight; the window is far smaller than 65535.
        loop {
            let pkid = self.next_pkid;
            self.next_pkid = if self.next_pkid == u16::MAX {
                1
            } else {
                self.next_pkid + 1
            };
            if !self.inflight.contains_key(&pkid) {
                return pkid;
            }
        }
    }

    fn handle_packet(&mut self, packet: Packet, authz: &dyn Authorize, out: &mut Vec<Effect>) {
        if self.phase == Phase::AwaitingConnect {
            match packet {
                Packet::Connect(connect) => self.handle_connect(connect, out),
                other => self.close(
                    CloseReason::ClientError(format!(
                        "{} before CONNECT; the first packet must be CONNECT",
                        packet_name(&other)
                    )),
                    out,
                ),
            }
            return;
        }
        match packet {
            Packet::Connect(_) => self.close(
                CloseReason::ClientError("second CONNECT on one connection".into()),
                out,
            ),
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
                    if let Err(why) = check_filter(&filter.path) {
                        return self.close(CloseReason::ClientError(why), out);
                    }
                    if !authz.may_subscribe(&filter.path) {
                        return self.close(
                            CloseReason::AuthorizationError(format!(
                                "iot:Subscribe on topicfilter/{} is not allowed by the certificate's policies",
                                filter.path
                            )),
                            out,
                        );
                    }
                    // No QoS 2 on AWS IoT: grant at most QoS 1.
                    let qos = if filter.qos == QoS::AtMostOnce {
                        QoS::AtMostOnce
                    } else {
                        QoS::AtLeastOnce
                    };
                    granted.push((filter.path, qos));
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
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => self.close(
                CloseReason::ClientError(
                    "QoS 2 flow packets: AWS IoT does not support QoS 2".into(),
                ),
                out,
            ),
            other @ (Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp) => self.close(
                CloseReason::ClientError(format!(
                    "{} is sent by brokers, not clients",
                    packet_name(&other)
                )),
                out,
            ),
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
        if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_BYTES {
            return self.refuse(
                Some(ConnectReturnCode::BadClientId),
                CloseReason::ClientError(format!(
                    "clientId must be 1..={MAX_CLIENT_ID_BYTES} bytes (got {})",
                    client_id.len()
                )),
                out,
            );
        }
        let will = match connect.last_will {
            Some(will) => match check_will(will) {
                Ok(will) => Some(will),
                Err(why) => return self.close(CloseReason::ClientError(why), out),
            },
            None => None,
        };
        self.client_id = client_id.clone();
        self.keep_alive = connect.keep_alive;
        self.will = will.clone();
        self.phase = Phase::Authorizing;
        out.push(Effect::Connect(ConnectRequest {
            client_id,
            clean_session: connect.clean_session,
            level: MqttLevel::V311,
            session_expiry: None,
            keep_alive: connect.keep_alive,
            will,
        }));
    }

    fn handle_publish(&mut self, publish: Publish, authz: &dyn Authorize, out: &mut Vec<Effect>) {
        if publish.qos == QoS::ExactlyOnce {
            return self.close(
                CloseReason::ClientError("PUBLISH with QoS 2: AWS IoT supports QoS 0 and 1".into()),
                out,
            );
        }
        if let Err(why) = check_topic_name(&publish.topic) {
            return self.close(CloseReason::ClientError(why), out);
        }
        if publish.payload.len() > self.max_payload {
            return self.close(
                CloseReason::ClientError(format!(
                    "payload of {} bytes exceeds the limit of {} bytes (AWS: 128 KiB)",
                    publish.payload.len(),
                    self.max_payload
                )),
                out,
            );
        }
        if !authz.may_publish(&publish.topic) {
            return self.close(
                CloseReason::AuthorizationError(format!(
                    "iot:Publish on topic/{} is not allowed by the certificate's policies",
                    publish.topic
                )),
                out,
            );
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

/// MQTT 3.1.1 §2.2.2: the fixed header's low four bits are reserved and
/// fixed for every packet but PUBLISH — `0010` for PUBREL, SUBSCRIBE and
/// UNSUBSCRIBE, `0000` for the rest; anything else is malformed and the
/// connection must be closed (§3.8.1 for SUBSCRIBE). The codec does not
/// check this, so the session does, on the first byte of the next packet.
fn check_fixed_header_flags(buf: &[u8]) -> Result<(), String> {
    let Some(&first) = buf.first() else {
        return Ok(());
    };
    let (kind, flags) = (first >> 4, first & 0x0F);
    let expected = match kind {
        3 => return Ok(()), // PUBLISH: DUP, QoS, RETAIN
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags == expected {
        return Ok(());
    }
    let name = match kind {
        6 => "PUBREL",
        8 => "SUBSCRIBE",
        10 => "UNSUBSCRIBE",
        _ => "packet",
    };
    Err(format!(
        "{name} (type {kind}) with reserved header flags {flags:#06b}, must be {expected:#06b} (MQTT 3.1.1 §2.2.2)"
    ))
}

/// The PUBLISH packet for a delivery.
fn to_publish(message: &Message, pkid: u16, dup: bool) -> Publish {
    let mut publish =
        Publish::from_bytes(message.topic.clone(), message.qos, message.payload.clone());
    publish.pkid = pkid;
    publish.dup = dup;
    publish.retain = message.retain;
    publish
}

/// A topic name a client may publish to: AWS's length limit, then the
/// MQTT rules (non-empty, no wildcards).
pub fn check_topic_name(topic: &str) -> Result<(), String> {
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "topic of {} bytes exceeds AWS's {MAX_TOPIC_BYTES}",
            topic.len()
        ));
    }
    topics::validate_topic_name(topic)
}

/// A topic filter a client may subscribe to; a shared subscription's
/// `$share/{ShareName}/{filter}` too (AWS: a share name of 1..=128 bytes
/// without `/`, `+` or `#`, then a filter of at most 256 bytes).
pub fn check_filter(filter: &str) -> Result<(), String> {
    if let Some(rest) = filter.strip_prefix("$share/") {
        let Some((share, inner)) = rest.split_once('/') else {
            return Err(format!(
                "shared subscription {filter:?} must be $share/{{ShareName}}/{{filter}}"
            ));
        };
        if share.is_empty() || share.len() > 128 || share.contains(['+', '#']) {
            return Err(format!(
                "shared subscription {filter:?}: the share name must be 1..=128 bytes without + or #"
            ));
        }
        return check_filter(inner).map_err(|why| format!("shared subscription: {why}"));
    }
    if filter == "$share" {
        return Err("shared subscription \"$share\" needs a share name and a filter".into());
    }
    if filter.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "topic filter of {} bytes exceeds AWS's {MAX_TOPIC_BYTES}",
            filter.len()
        ));
    }
    topics::validate_filter(filter)
}

fn check_will(will: LastWill) -> Result<Message, String> {
    if will.qos == QoS::ExactlyOnce {
        return Err("last will with QoS 2: AWS IoT supports QoS 0 and 1".into());
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

#[path = "session_v5.rs"]
mod v5;

/// The MQTT 5 reason codes the shell chooses itself, and their names.
pub mod reason {
    pub use super::v5::{
        reason_name, ADMINISTRATIVE_ACTION, BAD_USER_NAME_OR_PASSWORD, MESSAGE_RATE_TOO_HIGH,
        NOT_AUTHORIZED, QUOTA_EXCEEDED,
    };
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
