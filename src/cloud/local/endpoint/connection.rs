//! One client connection after the TLS handshake: the async shell around
//! the pure [`Session`]. It moves bytes between the socket and the session
//! and deliveries from the router into it, keeps the clocks (keepalive,
//! CONNECT deadline, throttling), and carries out the session's effects —
//! one small function each, in `connection/effects.rs`: registry
//! enforcement and JITP on CONNECT, routing, subscriptions, lifecycle
//! events.
//!
//! The loop: write what the session produced, wait for the next [`Event`]
//! (bytes, a delivery, eviction, deactivation, shutdown, a deadline), hand
//! it to the session, carry out the effects; then, once closed, flush,
//! close the socket and tell the router and the event stream.
//!
//! An idle connection holds as little as it can (issue 16: thousands of
//! devices sit connected doing nothing): bytes are handed to the session
//! straight from rustls's decrypted record (`fill_buf`), so there is no read
//! buffer of our own; the write buffer starts empty and a large one is let
//! go once written; deliveries are boxed, so the router's channel to the
//! connection is small while empty.

mod effects;

use super::admission::{admit, Admission};
use super::authz::ConnectionPolicy;
use super::lifecycle::{self, Presence};
use super::message::{Message, Origin};
use super::session::{
    reason, Authorize, CloseReason, Effect, MqttLevel, PacketSummary, Phase, Session,
};
use super::shared::Shared;
use super::throttle::{Throttle, Throttled};
use crate::cloud::events::{CloudEvent, EventKind};
use bytes::BytesMut;
use futures::FutureExt;
use serde_json::json;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Longest wait for the client to take our bytes before it counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection whose certificate is refused is kept open for its
/// CONNECT, so an MQTT 5 client can be told why (CONNACK 0x86).
const REFUSED_LINGER: Duration = Duration::from_secs(2);
/// The last bytes (a CONNACK refusal, a DISCONNECT) and the TLS close get
/// this long.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes handled before the acknowledgements are written (and the other
/// events looked at), when the client sends faster than it is served.
const READ_BATCH: usize = 4096;
/// A write buffer larger than this is let go once written, not kept for
/// the next packets (a burst of deliveries must not stay with an idle client).
const WRITE_BUFFER_KEPT: usize = 1024;

/// What the connection holds once CONNECT is accepted.
struct Online {
    conn_id: u64,
    policy: Arc<ConnectionPolicy>,
    /// AWS's `versionNumber` of this connection's lifecycle events.
    version: u64,
    /// Deliveries from the router (boxed: the channel's slots stay small).
    deliveries: mpsc::Receiver<Box<Message>>,
    /// Cancelled when a newer connection takes over the clientId (or at shutdown).
    evict: CancellationToken,
    /// Cancelled when the certificate is set INACTIVE or REVOKED.
    deactivated: CancellationToken,
}

/// What woke the connection up.
enum Event<'s> {
    /// Decrypted bytes from the client, still in rustls's buffer (empty:
    /// closed by the client).
    Read(std::io::Result<&'s [u8]>),
    /// The throttle's wait is over: read again.
    Resume,
    /// The router delivers a message.
    Delivery(Box<Message>),
    /// A newer connection took over the clientId, or the endpoint stops.
    Evicted,
    /// The certificate is no longer ACTIVE.
    Deactivated,
    /// The endpoint stops.
    Shutdown,
    /// Nothing heard within the keepalive (or, before CONNECT, the connect timeout).
    Deadline,
}

/// One connection's shell: the session and everything around it.
struct Connection {
    shared: Arc<Shared>,
    admission: Admission,
    cert_id: String,
    peer: SocketAddr,
    /// AWS's `sessionIdentifier` of the lifecycle events.
    session_identifier: String,
    shutdown: CancellationToken,
    session: Session,
    throttle: Throttle,
    /// Set while the client is over its rate: its socket is not read until then.
    throttled_until: Option<Instant>,
    /// Set when the throttle gives up on the client: closed once what was
    /// read is handled.
    over_rate: Option<String>,
    online: Option<Online>,
    /// Packets waiting to be written.
    write_buf: BytesMut,
    effects: Vec<Effect>,
    /// Set once the connection is to close; nothing is sent or routed after.
    closed: Option<CloseReason>,
    last_heard: Instant,
}

/// Serves one connection until it closes. Never panics on client input;
/// every end is logged with its reason.
pub async fn serve(
    shared: Arc<Shared>,
    mut stream: TlsStream<TcpStream>,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let chain: Vec<_> = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let admission = admit(&shared, &chain);
    if let Admission::Refused { reason, cert_id } = &admission {
        shared.refused(peer, None, cert_id, reason);
        answer_refused(&shared, &mut stream, reason).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
        return;
    }
    let mut conn = Connection::new(shared, admission, peer, shutdown);
    while conn.closed.is_none() {
        if !conn.write(&mut stream).await {
            break;
        }
        let event = conn.next_event(&mut stream).await;
        let consumed = conn.on_event(event);
        conn.read_on(&mut stream, consumed);
        conn.run_effects().await;
    }
    conn.close(stream).await;
}

impl Connection {
    fn new(
        shared: Arc<Shared>,
        admission: Admission,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) -> Connection {
        let now = Instant::now();
        Connection {
            session: Session::with_limits(&shared.limits),
            throttle: Throttle::new(
                shared.limits.publishes_per_second,
                shared.limits.bytes_per_second,
                now,
            ),
            cert_id: admission.cert_id().to_string(),
            session_identifier: hex::encode(rand::random::<[u8; 16]>()),
            shared,
            admission,
            peer,
            shutdown,
            throttled_until: None,
            over_rate: None,
            online: None,
            write_buf: BytesMut::new(),
            effects: Vec::new(),
            closed: None,
            last_heard: now,
        }
    }

    /// Writes what the session produced; false (and closed) when the
    /// client is gone or stopped reading for [`WRITE_TIMEOUT`].
    async fn write(&mut self, stream: &mut TlsStream<TcpStream>) -> bool {
        if self.write_buf.is_empty() {
            return true;
        }
        let write = async {
            stream.write_all(&self.write_buf).await?;
            stream.flush().await
        };
        if !matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(()))) {
            self.closed = Some(CloseReason::ConnectionLost);
            return false;
        }
        if self.write_buf.capacity() > WRITE_BUFFER_KEPT {
            self.write_buf = BytesMut::new();
        } else {
            self.write_buf.clear();
        }
        true
    }

    /// After `consumed` bytes were handled: handles what rustls has already
    /// decrypted too (a client pipelining its packets), up to [`READ_BATCH`]
    /// bytes, so that their acknowledgements go out in one write.
    fn read_on(&mut self, stream: &mut TlsStream<TcpStream>, mut consumed: usize) {
        let mut batch = consumed;
        while consumed > 0 {
            Pin::new(&mut *stream).consume(consumed);
            let reading =
                self.closed.is_none() && self.throttled_until.is_none() && self.over_rate.is_none();
            if !reading || batch >= READ_BATCH {
                return;
            }
            consumed = match stream.fill_buf().now_or_never() {
                Some(read) => self.on_event(Event::Read(read)),
                None => 0,
            };
            batch += consumed;
        }
    }

    /// When the client counts as gone if nothing more is heard.
    fn deadline(&self) -> Instant {
        match (&self.online, self.session.keep_alive()) {
            (None, _) => self.last_heard + self.shared.config.connect_timeout,
            (Some(_), 0) => self.last_heard + Duration::from_secs(24 * 3600),
            // MQTT 3.1.1 §3.1.2.10: one and a half keepalive periods.
            (Some(_), ka) => self.last_heard + Duration::from_millis(u64::from(ka) * 1500),
        }
    }

    /// Waits for whatever comes first.
    async fn next_event<'s>(&mut self, stream: &'s mut TlsStream<TcpStream>) -> Event<'s> {
        let deadline = self.deadline();
        let throttled = self.throttled_until.is_some();
        let resume_reading = self.throttled_until.unwrap_or_else(Instant::now);
        let (deliveries, evict, deactivated) = match &mut self.online {
            Some(o) => (
                Some(&mut o.deliveries),
                Some(&o.evict),
                Some(&o.deactivated),
            ),
            None => (None, None, None),
        };
        tokio::select! {
            read = stream.fill_buf(), if !throttled => Event::Read(read),
            _ = tokio::time::sleep_until(resume_reading), if throttled => Event::Resume,
            Some(message) = recv(deliveries) => Event::Delivery(message),
            _ = cancelled(evict) => Event::Evicted,
            _ = cancelled(deactivated) => Event::Deactivated,
            _ = self.shutdown.cancelled() => Event::Shutdown,
            // Not while throttled: the client is waiting on us then.
            _ = tokio::time::sleep_until(deadline), if !throttled => Event::Deadline,
        }
    }

    /// Hands the event to the session; its effects wait in `self.effects`.
    /// Returns how many bytes of rustls's buffer were used.
    fn on_event(&mut self, event: Event<'_>) -> usize {
        let out = &mut self.effects;
        match event {
            Event::Read(Ok([])) | Event::Read(Err(_)) => {
                self.closed = Some(CloseReason::ConnectionLost)
            }
            Event::Read(Ok(bytes)) => {
                self.on_bytes(bytes);
                return bytes.len();
            }
            Event::Resume => {
                // The allowance has refilled; the keepalive clock restarts
                // (the client may have been waiting on us).
                self.throttled_until = None;
                self.last_heard = Instant::now();
            }
            Event::Delivery(message) => self.session.deliver(*message, out),
            Event::Evicted => {
                let reason = if self.shutdown.is_cancelled() {
                    CloseReason::ServerInitiated
                } else {
                    CloseReason::DuplicateClientId
                };
                self.session.close(reason, out)
            }
            Event::Deactivated => self.session.close_with(
                Some(reason::ADMINISTRATIVE_ACTION),
                CloseReason::AuthenticationError(format!(
                    "certificate {} is no longer ACTIVE",
                    self.cert_id
                )),
                out,
            ),
            Event::Shutdown => self.session.close(CloseReason::ServerInitiated, out),
            Event::Deadline => {
                let reason = if self.online.is_some() {
                    CloseReason::KeepAliveTimeout
                } else {
                    CloseReason::ClientError("no CONNECT within the connect timeout".into())
                };
                self.session.close(reason, out)
            }
        }
        0
    }

    /// Bytes were read: the session decodes them, the throttle counts them.
    fn on_bytes(&mut self, bytes: &[u8]) {
        self.last_heard = Instant::now();
        self.session.set_observe(self.shared.bus.enabled());
        let authz: &dyn Authorize = match &self.online {
            Some(o) => o.policy.as_ref(),
            None => &AllowNone,
        };
        self.session.handle_bytes(bytes, authz, &mut self.effects);
        let publishes = self
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::Publish(_) | Effect::Publish5 { .. }))
            .count();
        match self.throttle.spend(publishes, bytes.len(), self.last_heard) {
            Throttled::No => {}
            Throttled::Until(at) => self.throttled_until = Some(at),
            Throttled::Disconnect(why) => {
                self.shared
                    .counters
                    .throttled_disconnects
                    .fetch_add(1, Ordering::Relaxed);
                // What was read is still handled (acknowledged and routed)
                // before the close.
                self.over_rate = Some(why);
            }
        }
    }

    /// Carries out the session's effects; some (CONNECT, subscriptions)
    /// produce more. A client over its rate is closed after them.
    async fn run_effects(&mut self) {
        loop {
            while !self.effects.is_empty() {
                for effect in std::mem::take(&mut self.effects) {
                    if self.closed.is_some() && !matches!(effect, Effect::Received(_)) {
                        // Closed: nothing after it is sent or routed (e.g. the
                        // PUBACK of a publish the router refused).
                        continue;
                    }
                    self.apply(effect).await;
                }
            }
            let Some(why) = self.over_rate.take() else {
                return;
            };
            // AWS: 0x96 Message rate too high.
            self.session.close_with(
                Some(reason::MESSAGE_RATE_TOO_HIGH),
                CloseReason::ClientError(why),
                &mut self.effects,
            );
        }
    }

    /// Flushes what is left (e.g. a CONNACK refusal code), closes the
    /// socket, then tells the router and the event stream.
    async fn close(mut self, mut stream: TlsStream<TcpStream>) {
        if !self.write_buf.is_empty() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.write_all(&self.write_buf)).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
        let reason = self.closed.take().unwrap_or(CloseReason::ConnectionLost);
        match self.online.take() {
            Some(online) => self.went_offline(online, &reason),
            None => self.never_online(&reason),
        }
    }

    /// Closed before CONNECT was accepted: a protocol error is a refusal.
    fn never_online(&self, reason: &CloseReason) {
        if let CloseReason::ClientError(_) = reason {
            let client_id = self.session.client_id();
            let client_id = Some(client_id).filter(|c| !c.is_empty());
            self.shared
                .refused(self.peer, client_id, &self.cert_id, reason);
        }
    }

    /// After an accepted connection closed: hand unacknowledged messages
    /// back to the router, publish the last will and the disconnected event.
    fn went_offline(&mut self, online: Online, reason: &CloseReason) {
        let shared = &self.shared;
        let client_id = self.session.client_id().to_string();
        if let Some(expiry) = self.session.session_expiry() {
            // MQTT 5: the DISCONNECT may have changed how long the session lives.
            shared
                .router
                .set_session_expiry(&client_id, online.conn_id, expiry);
        }
        shared
            .router
            .detach(&client_id, online.conn_id, self.session.take_unacked());
        if reason.publishes_will() {
            if let Some(will) = self.session.will().cloned() {
                if online.policy.may_publish(&will.topic) {
                    shared
                        .router
                        .route(will, Origin::client(&client_id, &self.cert_id));
                }
            }
        }
        let client_initiated = matches!(
            reason,
            CloseReason::ClientInitiated | CloseReason::ClientInitiatedWithWill
        );
        let presence = self.presence(online.version);
        let (topic, body) =
            lifecycle::disconnected(&presence, reason.aws_reason(), client_initiated);
        shared.publish_event(topic, body);
        let cert_id = &self.cert_id;
        tracing::info!(client_id = ?client_id, reason = ?reason.describe(), "disconnected");
        shared.bus.emit_with(|| {
            CloudEvent::new(EventKind::Connection, format!("{client_id} disconnected: {}", reason.describe()))
                .client(client_id.clone())
                .detail(json!({"certificateId": cert_id, "disconnectReason": reason.aws_reason(), "why": reason.describe()}))
        });
        if matches!(
            reason,
            CloseReason::AuthorizationError(_) | CloseReason::ClientError(_)
        ) {
            let detail = json!({"clientId": client_id, "certificateId": cert_id, "reason": reason.describe()});
            if let Err(e) = shared
                .store
                .append_event("endpoint.disconnected", &client_id, &detail)
            {
                tracing::warn!(error = %e, "event log write failed");
            }
        }
    }

    /// Who the lifecycle events of this connection are about.
    fn presence(&self, version: u64) -> Presence<'_> {
        Presence {
            client_id: self.session.client_id(),
            session_identifier: &self.session_identifier,
            principal_identifier: &self.cert_id,
            ip_address: self.peer.ip().to_string(),
            version_number: version,
        }
    }
}

async fn recv(deliveries: Option<&mut mpsc::Receiver<Box<Message>>>) -> Option<Box<Message>> {
    match deliveries {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// A certificate the registry refuses: AWS closes the connection. An MQTT 5
/// client is told why first — CONNACK 0x86 Bad User Name or Password with
/// the reason string — when its CONNECT arrives within [`REFUSED_LINGER`];
/// a 3.1.1 client gets no CONNACK, as from AWS.
async fn answer_refused(shared: &Shared, stream: &mut TlsStream<TcpStream>, reason: &CloseReason) {
    let mut session = Session::with_limits(&shared.limits);
    let mut read_buf = BytesMut::with_capacity(1024);
    let deadline = Instant::now() + REFUSED_LINGER;
    let mut effects = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut read_buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
        session.handle_bytes(&read_buf, &AllowNone, &mut effects);
        read_buf.clear();
        if effects.iter().any(|e| matches!(e, Effect::Connect(_))) {
            if session.level() == MqttLevel::V5 {
                session.refuse_connect(reason.clone(), true, &mut effects);
            }
            break;
        }
        if session.phase() == Phase::Closed {
            break;
        }
    }
    let mut write_buf = BytesMut::new();
    for effect in effects {
        if let Effect::Send5(packet) = effect {
            if shared.bus.enabled() {
                shared.packet_event(false, session.client_id(), &PacketSummary::of5(&packet));
            }
            let _ = packet.write(&mut write_buf, None);
        }
    }
    if !write_buf.is_empty() {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.write_all(&write_buf)).await;
    }
}

/// Before CONNECT is decided nothing may be published or subscribed.
struct AllowNone;
impl Authorize for AllowNone {
    fn may_publish(&self, _: &str) -> bool {
        false
    }
    fn may_subscribe(&self, _: &str) -> bool {
        false
    }
}
