//! The session's effects, carried out: one small function each. The
//! session decided *what* (send this packet, route this message, this
//! client wants to connect); these say *how* — the socket's write buffer,
//! the registry and JITP, the router, the lifecycle events.

use super::{Connection, Online};
use crate::cloud::events::{CloudEvent, EventKind};
use crate::cloud::local::endpoint::admission::{connection_policy, run_jitp, Admission};
use crate::cloud::local::endpoint::authz::ConnectionPolicy;
use crate::cloud::local::endpoint::lifecycle;
use crate::cloud::local::endpoint::limits::DELIVERY_CHANNEL;
use crate::cloud::local::endpoint::message::{Message, Origin};
use crate::cloud::local::endpoint::router::{Link, SessionStart};
use crate::cloud::local::endpoint::session::{
    reason, CloseReason, ConnectRequest, Effect, PacketSummary,
};
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5 as mqtt5;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

impl Connection {
    /// Carries out one effect.
    pub(super) async fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Send(packet) => self.send(packet),
            Effect::Send5(packet) => self.send5(packet),
            Effect::Received(summary) => self.received(&summary),
            Effect::Connect(request) => self.connect(request).await,
            Effect::Publish(message) => self.publish(message),
            Effect::Publish5 { message, pkid } => self.publish5(message, pkid),
            Effect::Subscribe(filters) => self.subscribe(filters),
            Effect::Unsubscribe(filters) => self.unsubscribe(filters),
            Effect::Close(reason) => self.closed = Some(reason),
        }
    }

    /// An MQTT 3.1.1 packet to the client: into the write buffer.
    fn send(&mut self, packet: Packet) {
        if self.shared.bus.enabled() {
            self.sent(&PacketSummary::of(&packet));
        }
        if let Err(e) = packet.write(&mut self.write_buf, usize::MAX) {
            tracing::warn!(error = %e, "could not encode a packet");
        }
    }

    /// An MQTT 5 packet to the client: into the write buffer.
    fn send5(&mut self, packet: mqtt5::Packet) {
        if self.shared.bus.enabled() {
            self.sent(&PacketSummary::of5(&packet));
        }
        if let Err(e) = packet.write(&mut self.write_buf, None) {
            tracing::warn!(error = %e, "could not encode a packet");
        }
    }

    /// A packet out, on the event stream.
    fn sent(&self, summary: &PacketSummary) {
        self.shared
            .packet_event(false, self.session.client_id(), summary);
    }

    /// A packet in, on the event stream.
    fn received(&self, summary: &PacketSummary) {
        self.shared
            .packet_event(true, self.session.client_id(), summary);
    }

    /// A well-formed CONNECT: decided by the registry, JITP and `iot:Connect`.
    async fn connect(&mut self, request: ConnectRequest) {
        match self.authorize(&request).await {
            Ok(policy) => self.go_online(&request, Arc::new(policy)),
            Err(reason) => self.refuse(&request, reason),
        }
    }

    /// JITP for a new certificate (always ending the connection), else
    /// `iot:Connect` with the certificate's policies.
    async fn authorize(&self, request: &ConnectRequest) -> Result<ConnectionPolicy, CloseReason> {
        let (cert_id, common_name) = match &self.admission {
            Admission::Refused { reason, .. } => return Err(reason.clone()),
            Admission::Jitp { .. } => {
                return Err(run_jitp(&self.shared, &self.admission, &request.client_id).await)
            }
            Admission::Active {
                cert_id,
                common_name,
            } => (cert_id, common_name),
        };
        let policy = connection_policy(
            &self.shared,
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
        Ok(policy)
    }

    /// CONNECT accepted: the session is attached to the router (evicting
    /// an older connection with the same clientId), CONNACK goes out, the
    /// connected event is published.
    fn go_online(&mut self, request: &ConnectRequest, policy: Arc<ConnectionPolicy>) {
        let shared = self.shared.clone();
        let (tx, deliveries) = mpsc::channel(DELIVERY_CHANNEL);
        let evict = CancellationToken::new();
        let deactivated = CancellationToken::new();
        let conn_id = shared.router.next_conn_id();
        let attached = shared.router.attach_session(
            &request.client_id,
            session_start(request),
            Link {
                conn_id,
                tx,
                evict: evict.clone(),
                policy: policy.clone(),
                principal: self.cert_id.clone(),
                deactivated: deactivated.clone(),
            },
        );
        self.session.accept(
            attached.session_present,
            attached.resumed,
            policy.as_ref(),
            &mut self.effects,
        );
        self.online = Some(Online {
            conn_id,
            policy,
            version: attached.version,
            deliveries,
            evict,
            deactivated,
        });
        shared.counters.connected.fetch_add(1, Ordering::Relaxed);
        let (topic, body) = lifecycle::connected(&self.presence(attached.version));
        shared.publish_event(topic, body);
        let (cert_id, ip) = (&self.cert_id, self.peer.ip().to_string());
        shared.bus.emit_with(|| {
            CloudEvent::new(EventKind::Connection, format!("{} connected", request.client_id))
                .client(request.client_id.clone())
                .detail(json!({"certificateId": cert_id, "ipAddress": ip, "cleanSession": request.clean_session}))
        });
    }

    /// CONNECT refused: logged and reported; the session closes (with a
    /// CONNACK for an MQTT 5 client, except after JITP).
    fn refuse(&mut self, request: &ConnectRequest, reason: CloseReason) {
        self.shared
            .refused(self.peer, Some(&request.client_id), &self.cert_id, &reason);
        // AWS drops a JITP connection without a word.
        let answer = !matches!(self.admission, Admission::Jitp { .. });
        self.session
            .refuse_connect(reason, answer, &mut self.effects);
    }

    /// Where the client's own messages come from.
    fn origin(&self) -> Origin {
        Origin::client(self.session.client_id(), &self.cert_id)
    }

    /// An authorized MQTT 3.1.1 PUBLISH: routed. A retained one the
    /// retained store refuses closes the connection (3.1.1 cannot say why).
    fn publish(&mut self, message: Message) {
        if let Err(why) = self.shared.router.route_checked(message, self.origin()) {
            let reason = CloseReason::ClientError(why);
            self.session.close(reason.clone(), &mut self.effects);
            self.closed = Some(reason);
        }
    }

    /// An authorized MQTT 5 PUBLISH: routed, then acknowledged — MQTT 5
    /// can say a publish was refused and stay up.
    fn publish5(&mut self, message: Message, pkid: Option<u16>) {
        let routed = self
            .shared
            .router
            .route_checked(message, self.origin())
            .map_err(|why| (reason::QUOTA_EXCEEDED, why));
        self.session.publish_routed(pkid, routed, &mut self.effects);
    }

    /// Granted subscriptions: into the router; the retained messages they
    /// match are delivered now; the subscribed event is published. Over
    /// AWS's subscription limit the connection is closed.
    fn subscribe(&mut self, filters: Vec<(String, QoS)>) {
        let shared = self.shared.clone();
        match shared.router.subscribe(self.session.client_id(), &filters) {
            Ok(retained) => {
                for message in retained {
                    self.session.deliver(message, &mut self.effects);
                }
                let topics: Vec<String> = filters.into_iter().map(|(f, _)| f).collect();
                self.subscriptions_event(true, &topics);
            }
            Err(why) => self.session.close_with(
                Some(reason::QUOTA_EXCEEDED),
                CloseReason::ClientError(why),
                &mut self.effects,
            ),
        }
    }

    /// Filters the client left: out of the router; the unsubscribed event.
    fn unsubscribe(&mut self, filters: Vec<String>) {
        self.shared
            .router
            .unsubscribe(self.session.client_id(), &filters);
        self.subscriptions_event(false, &filters);
    }

    /// `$aws/events/subscriptions/(un)subscribed/<clientId>`.
    fn subscriptions_event(&self, subscribed: bool, topics: &[String]) {
        if let Some(online) = &self.online {
            let presence = self.presence(online.version);
            let (topic, body) = lifecycle::subscriptions(&presence, subscribed, topics);
            self.shared.publish_event(topic, body);
        }
    }
}

/// How the CONNECT starts its session: 3.1.1's Clean Session, or MQTT 5's
/// Clean Start and Session Expiry Interval.
fn session_start(request: &ConnectRequest) -> SessionStart {
    match request.session_expiry {
        None => SessionStart::clean_session(request.clean_session),
        Some(seconds) => SessionStart {
            clean_start: request.clean_session,
            persistent: seconds > 0,
            expiry: Some(Duration::from_secs(u64::from(seconds))),
        },
    }
}
