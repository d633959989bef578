//! One client connection after the TLS handshake: the async shell around
//! the pure [`Session`]. It moves bytes between the socket and the session,
//! deliveries from the router into it, and carries out its effects:
//! registry enforcement and JITP on CONNECT, routing, subscriptions,
//! lifecycle events, keepalive and eviction.

use super::admission::{admit, Admission};
use super::authz::ConnectionPolicy;
use super::lifecycle::{self, Presence};
use super::limits::DELIVERY_CHANNEL;
use super::router::{Link, Origin};
use super::session::{
    CloseReason, ConnectRequest, Effect, Message, MqttLevel, PacketSummary, Phase, Session,
};
use super::throttle::{Throttle, Throttled};
use super::Shared;
use crate::cloud::events::{CloudEvent, EventKind};
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::QoS;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// What the connection knows once CONNECT is accepted.
struct Online {
    conn_id: u64,
    policy: Arc<ConnectionPolicy>,
    version: u64,
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
    let cert_id = admission.cert_id().to_string();
    if let Admission::Refused { reason, .. } = &admission {
        shared.refused(peer, None, &cert_id, reason);
        answer_refused(&shared, &mut stream, reason).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
        return;
    }

    let session_identifier = hex::encode(rand::random::<[u8; 16]>());
    let mut session = Session::with_limits(&shared.limits);
    let mut throttle = Throttle::new(
        shared.limits.publishes_per_second,
        shared.limits.bytes_per_second,
        Instant::now(),
    );
    // Set while the client is over its rate: its socket is not read until then.
    let mut throttled_until: Option<Instant> = None;
    let mut online: Option<Online> = None;
    // Deliveries from the router and the eviction signal, once connected.
    let mut deliveries: Option<mpsc::Receiver<Message>> = None;
    let mut evict: Option<CancellationToken> = None;
    let mut deactivated: Option<CancellationToken> = None;
    let mut read_buf = BytesMut::with_capacity(4096);
    let mut write_buf = BytesMut::with_capacity(4096);
    let mut effects = Vec::new();
    let mut close_reason = None;
    let mut last_heard = Instant::now();
    let nothing_yet = AllowNone;
    // Set when the throttle gives up on the client: closed once what was
    // read is handled.
    let mut over_rate: Option<String> = None;

    while close_reason.is_none() {
        // Write what the session produced before waiting again.
        if !write_buf.is_empty() {
            // A client that stops reading must not hold its task forever.
            let write = async {
                stream.write_all(&write_buf).await?;
                stream.flush().await
            };
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    close_reason = Some(CloseReason::ConnectionLost);
                    break;
                }
            }
            write_buf.clear();
        }
        let deadline = match (&online, session.keep_alive()) {
            (None, _) => last_heard + shared.config.connect_timeout,
            (Some(_), 0) => last_heard + Duration::from_secs(24 * 3600),
            // MQTT 3.1.1 §3.1.2.10: one and a half keepalive periods.
            (Some(_), ka) => last_heard + Duration::from_millis(u64::from(ka) * 1500),
        };
        let resume_reading = throttled_until.unwrap_or_else(Instant::now);
        tokio::select! {
            read = stream.read_buf(&mut read_buf), if throttled_until.is_none() => match read {
                Ok(0) | Err(_) => close_reason = Some(CloseReason::ConnectionLost),
                Ok(n) => {
                    last_heard = Instant::now();
                    session.set_observe(shared.bus.enabled());
                    match &online {
                        Some(o) => session.handle_bytes(&read_buf, o.policy.as_ref(), &mut effects),
                        None => session.handle_bytes(&read_buf, &nothing_yet, &mut effects),
                    }
                    read_buf.clear();
                    let publishes = effects
                        .iter()
                        .filter(|e| matches!(e, Effect::Publish(_) | Effect::Publish5 { .. }))
                        .count();
                    match throttle.spend(publishes, n, last_heard) {
                        Throttled::No => {}
                        Throttled::Until(at) => throttled_until = Some(at),
                        Throttled::Disconnect(why) => {
                            shared.counters.throttled_disconnects.fetch_add(1, Ordering::Relaxed);
                            // What was read is still handled (acknowledged
                            // and routed) before the close.
                            over_rate = Some(why);
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(resume_reading), if throttled_until.is_some() => {
                // The allowance has refilled; the keepalive clock restarts
                // (the client may have been waiting on us).
                throttled_until = None;
                last_heard = Instant::now();
            }
            Some(message) = recv(&mut deliveries) => session.deliver(message, &mut effects),
            _ = evicted(&evict) => session.close(
                if shutdown.is_cancelled() { CloseReason::ServerInitiated } else { CloseReason::DuplicateClientId },
                &mut effects,
            ),
            _ = evicted(&deactivated) => session.close_with(
                Some(super::session::reason::ADMINISTRATIVE_ACTION),
                CloseReason::AuthenticationError(format!("certificate {cert_id} is no longer ACTIVE")),
                &mut effects,
            ),
            _ = shutdown.cancelled() => session.close(CloseReason::ServerInitiated, &mut effects),
            // Not while throttled: the client is waiting on us then.
            _ = tokio::time::sleep_until(deadline), if throttled_until.is_none() => session.close(
                if online.is_some() {
                    CloseReason::KeepAliveTimeout
                } else {
                    CloseReason::ClientError("no CONNECT within the connect timeout".into())
                },
                &mut effects,
            ),
        }
        // Carry out effects; some (CONNECT, subscriptions) produce more.
        loop {
            while !effects.is_empty() {
                for effect in std::mem::take(&mut effects) {
                    if close_reason.is_some() && !matches!(effect, Effect::Received(_)) {
                        // Closed: nothing after it is sent or routed (e.g. the
                        // PUBACK of a publish the router refused).
                        continue;
                    }
                    match effect {
                        Effect::Send(packet) => {
                            if shared.bus.enabled() {
                                let summary = PacketSummary::of(&packet);
                                shared.packet_event(false, session.client_id(), &summary);
                            }
                            if let Err(e) = packet.write(&mut write_buf, usize::MAX) {
                                tracing::warn!(error = %e, "could not encode a packet");
                            }
                        }
                        Effect::Send5(packet) => {
                            if shared.bus.enabled() {
                                let summary = PacketSummary::of5(&packet);
                                shared.packet_event(false, session.client_id(), &summary);
                            }
                            if let Err(e) = packet.write(&mut write_buf, None) {
                                tracing::warn!(error = %e, "could not encode a packet");
                            }
                        }
                        Effect::Received(summary) => {
                            shared.packet_event(true, session.client_id(), &summary)
                        }
                        Effect::Connect(request) => {
                            match on_connect(
                                &shared,
                                &admission,
                                &request,
                                peer,
                                &session_identifier,
                            )
                            .await
                            {
                                Ok((policy, link_rx, token, conn_id)) => {
                                    let deactivation = CancellationToken::new();
                                    let attached = shared.router.attach_session(
                                        &request.client_id,
                                        super::router::SessionStart::of(&request),
                                        Link {
                                            conn_id,
                                            tx: link_rx.0,
                                            evict: token.clone(),
                                            policy: policy.clone(),
                                            principal: cert_id.clone(),
                                            deactivated: deactivation.clone(),
                                        },
                                    );
                                    session.accept(
                                        attached.session_present,
                                        attached.resumed,
                                        policy.as_ref(),
                                        &mut effects,
                                    );
                                    online = Some(Online {
                                        conn_id,
                                        policy,
                                        version: attached.version,
                                    });
                                    deliveries = Some(link_rx.1);
                                    evict = Some(token);
                                    deactivated = Some(deactivation);
                                    shared.counters.connected.fetch_add(1, Ordering::Relaxed);
                                    let presence = presence(
                                        &request.client_id,
                                        &session_identifier,
                                        &cert_id,
                                        peer,
                                        attached.version,
                                    );
                                    let (topic, body) = lifecycle::connected(&presence);
                                    shared.publish_event(topic, body);
                                    shared.bus.emit_with(|| {
                                    CloudEvent::new(EventKind::Connection, format!("{} connected", request.client_id))
                                        .client(request.client_id.clone())
                                        .detail(json!({"certificateId": cert_id, "ipAddress": peer.ip().to_string(), "cleanSession": request.clean_session}))
                                });
                                }
                                Err(reason) => {
                                    shared.refused(
                                        peer,
                                        Some(&request.client_id),
                                        &cert_id,
                                        &reason,
                                    );
                                    // AWS drops a JITP connection without a word.
                                    let answer = !matches!(admission, Admission::Jitp { .. });
                                    session.refuse_connect(reason, answer, &mut effects);
                                }
                            }
                        }
                        Effect::Publish(message) => {
                            let origin = Origin {
                                client_id: Some(session.client_id().to_string()),
                                principal: Some(cert_id.clone()),
                                ..Origin::default()
                            };
                            if let Err(why) = shared.router.route_checked(message, origin) {
                                let reason = CloseReason::ClientError(why);
                                session.close(reason.clone(), &mut effects);
                                close_reason = Some(reason);
                            }
                        }
                        Effect::Publish5 { message, pkid } => {
                            let origin = Origin {
                                client_id: Some(session.client_id().to_string()),
                                principal: Some(cert_id.clone()),
                                ..Origin::default()
                            };
                            // MQTT 5 can say a publish was refused and stay up.
                            let routed = shared
                                .router
                                .route_checked(message, origin)
                                .map_err(|why| (super::session::reason::QUOTA_EXCEEDED, why));
                            session.publish_routed(pkid, routed, &mut effects);
                        }
                        Effect::Subscribe(filters) => {
                            let client_id = session.client_id().to_string();
                            match shared.router.subscribe(&client_id, &filters) {
                                Ok(retained) => {
                                    for message in retained {
                                        session.deliver(message, &mut effects);
                                    }
                                    if let Some(o) = &online {
                                        let topics: Vec<String> =
                                            filters.into_iter().map(|(f, _)| f).collect();
                                        let p = presence(
                                            &client_id,
                                            &session_identifier,
                                            &cert_id,
                                            peer,
                                            o.version,
                                        );
                                        let (topic, body) =
                                            lifecycle::subscriptions(&p, true, &topics);
                                        shared.publish_event(topic, body);
                                    }
                                }
                                Err(why) => session.close_with(
                                    Some(super::session::reason::QUOTA_EXCEEDED),
                                    CloseReason::ClientError(why),
                                    &mut effects,
                                ),
                            }
                        }
                        Effect::Unsubscribe(filters) => {
                            let client_id = session.client_id().to_string();
                            shared.router.unsubscribe(&client_id, &filters);
                            if let Some(o) = &online {
                                let p = presence(
                                    &client_id,
                                    &session_identifier,
                                    &cert_id,
                                    peer,
                                    o.version,
                                );
                                let (topic, body) = lifecycle::subscriptions(&p, false, &filters);
                                shared.publish_event(topic, body);
                            }
                        }
                        Effect::Close(reason) => close_reason = Some(reason),
                    }
                }
            }
            match over_rate.take() {
                // AWS: 0x96 Message rate too high.
                Some(why) => session.close_with(
                    Some(super::session::reason::MESSAGE_RATE_TOO_HIGH),
                    CloseReason::ClientError(why),
                    &mut effects,
                ),
                None => break,
            }
        }
    }

    // Flush what is left (e.g. a CONNACK refusal code), then close.
    if !write_buf.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&write_buf)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    let reason = close_reason.unwrap_or(CloseReason::ConnectionLost);
    finish(
        &shared,
        &mut session,
        online,
        &reason,
        &cert_id,
        &session_identifier,
        peer,
    );
}

/// After the socket is closed: hand unacknowledged messages back to the
/// router, publish the last will and the disconnected event.
fn finish(
    shared: &Arc<Shared>,
    session: &mut Session,
    online: Option<Online>,
    reason: &CloseReason,
    cert_id: &str,
    session_identifier: &str,
    peer: SocketAddr,
) {
    let client_id = session.client_id().to_string();
    let Some(online) = online else {
        if let CloseReason::ClientError(_) = reason {
            shared.refused(
                peer,
                Some(client_id.as_str()).filter(|c| !c.is_empty()),
                cert_id,
                reason,
            );
        }
        return;
    };
    if let Some(expiry) = session.session_expiry() {
        // MQTT 5: the DISCONNECT may have changed how long the session lives.
        shared
            .router
            .set_session_expiry(&client_id, online.conn_id, expiry);
    }
    shared
        .router
        .detach(&client_id, online.conn_id, session.take_unacked());
    if reason.publishes_will() {
        if let Some(will) = session.will().cloned() {
            use super::session::Authorize;
            if online.policy.may_publish(&will.topic) {
                let origin = Origin {
                    client_id: Some(client_id.clone()),
                    principal: Some(cert_id.to_string()),
                    ..Origin::default()
                };
                shared.router.route(will, origin);
            }
        }
    }
    let p = presence(
        &client_id,
        session_identifier,
        cert_id,
        peer,
        online.version,
    );
    let (topic, body) = lifecycle::disconnected(
        &p,
        reason.aws_reason(),
        matches!(
            reason,
            CloseReason::ClientInitiated | CloseReason::ClientInitiatedWithWill
        ),
    );
    shared.publish_event(topic, body);
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
        let detail =
            json!({"clientId": client_id, "certificateId": cert_id, "reason": reason.describe()});
        if let Err(e) = shared
            .store
            .append_event("endpoint.disconnected", &client_id, &detail)
        {
            tracing::warn!(error = %e, "event log write failed");
        }
    }
}

type LinkChannel = (mpsc::Sender<Message>, mpsc::Receiver<Message>);

/// Decides a CONNECT: JITP for a new certificate (always ending the
/// connection), else `iot:Connect` with the certificate's policies.
async fn on_connect(
    shared: &Arc<Shared>,
    admission: &Admission,
    request: &ConnectRequest,
    _peer: SocketAddr,
    _session_identifier: &str,
) -> Result<(Arc<ConnectionPolicy>, LinkChannel, CancellationToken, u64), CloseReason> {
    match admission {
        Admission::Refused { reason, .. } => Err(reason.clone()),
        Admission::Jitp { .. } => {
            Err(super::admission::run_jitp(shared, admission, &request.client_id).await)
        }
        Admission::Active {
            cert_id,
            common_name,
        } => {
            let policy = super::admission::connection_policy(
                shared,
                cert_id,
                &request.client_id,
                common_name.clone(),
            )?;
            if !policy.may_connect() {
                return Err(CloseReason::AuthorizationError(format!(
                    "iot:Connect on client/{} is not allowed by the certificate's policies ({})",
                    request.client_id,
                    policy.names().join(", ")
                )));
            }
            let channel = mpsc::channel(DELIVERY_CHANNEL);
            Ok((
                Arc::new(policy),
                channel,
                CancellationToken::new(),
                shared.router.next_conn_id(),
            ))
        }
    }
}

async fn recv(deliveries: &mut Option<mpsc::Receiver<Message>>) -> Option<Message> {
    match deliveries {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn evicted(evict: &Option<CancellationToken>) {
    match evict {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

fn presence<'a>(
    client_id: &'a str,
    session: &'a str,
    cert_id: &'a str,
    peer: SocketAddr,
    version: u64,
) -> Presence<'a> {
    Presence {
        client_id,
        session_identifier: session,
        principal_identifier: cert_id,
        ip_address: peer.ip().to_string(),
        version_number: version,
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
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&write_buf)).await;
    }
}

/// Before CONNECT is decided nothing may be published or subscribed.
struct AllowNone;
impl super::session::Authorize for AllowNone {
    fn may_publish(&self, _: &str) -> bool {
        false
    }
    fn may_subscribe(&self, _: &str) -> bool {
        false
    }
}

pub use crate::cloud::events::payload_preview;

/// Publishes as the cloud: QoS 1 through the router (lifecycle events, JITP).
pub fn cloud_message(topic: String, body: &Value) -> Message {
    Message {
        topic,
        payload: Bytes::from(body.to_string().into_bytes()),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: None,
    }
}
