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
//! MQTT 5 (`session/v5.rs`) answers with AWS's reason codes instead where
//! AWS documents one: a refused PUBLISH gets PUBACK 0x87, a refused
//! filter SUBACK 0x87, and a closed connection a DISCONNECT saying why.
//!
//! ## Layout
//!
//! - `session.rs`            the state machine both versions share: phases,
//!   framing loop, CONNACK/refusal, QoS 1 deliveries and their window, close
//! - `session/checks.rs`     the checks both versions make, in AWS's words
//! - `session/frame.rs`      framing checks the codec does not make
//! - `session/v4.rs`         MQTT 3.1.1 packets
//! - `session/v5.rs`         MQTT 5 packets: CONNECT, SUBSCRIBE, DISCONNECT
//! - `session/v5_publish.rs` MQTT 5 PUBLISH both ways, properties, topic aliases
//! - `session/reason.rs`     MQTT 5 reason codes and their names
//! - `session/summary.rs`    a decoded packet as the traffic pane shows it

mod checks;
mod frame;
pub mod reason;
mod summary;
mod v4;
mod v5;
mod v5_publish;

use super::limits::{Limits, MAX_QUEUED_MESSAGES};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet};
use rumqttc::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5 as mqtt5;
use std::collections::{BTreeMap, VecDeque};
use tokio::time::Instant;

pub use super::close_reason::CloseReason;
use super::message::{Message, MessageProperties};
pub use summary::PacketSummary;

/// What the connection's certificate may do, decided by its IoT policies.
/// The session asks before acting; the shell supplies the real policy
/// evaluation (`authz.rs`).
pub trait Authorize {
    /// `iot:Publish` on `topic/<topic>`.
    fn may_publish(&self, topic: &str) -> bool;
    /// `iot:Subscribe` on `topicfilter/<filter>`.
    fn may_subscribe(&self, filter: &str) -> bool;
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
            if let Err(why) = frame::check_fixed_header_flags(&self.buf) {
                return self.close_with(
                    Some(reason::MALFORMED_PACKET),
                    CloseReason::ClientError(why),
                    out,
                );
            }
            if self.phase == Phase::AwaitingConnect && frame::is_v5_connect(&self.buf) {
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
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            // Every packet framed: the buffer is let go, so an idle
            // connection holds none (a burst's must not stay with it).
            self.buf = BytesMut::new();
        }
    }

    /// A well-formed CONNECT: remembered, and handed to the shell to decide
    /// ([`Effect::Connect`]); further bytes wait until it does.
    fn authorizing(&mut self, request: ConnectRequest, out: &mut Vec<Effect>) {
        self.client_id = request.client_id.clone();
        self.keep_alive = request.keep_alive;
        self.will = request.will.clone();
        self.phase = Phase::Authorizing;
        out.push(Effect::Connect(request));
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
            MqttLevel::V311 => Some(Effect::Send(Packet::Publish(v4::to_publish(
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
        let code = reason::reason_code_for(&reason);
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
}

#[cfg(test)]
mod tests;
