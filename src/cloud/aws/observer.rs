//! The observer: the traffic pane's window on an account's MQTT traffic.
//!
//! On the local cloud every packet passes through jitpilot's own endpoint,
//! which reports it on the event stream. On AWS nothing of jitpilot sits
//! between the devices and IoT Core, so the TUI *subscribes* instead, with
//! an identity of its own that `init` creates (`<data-dir>/aws/observer/`:
//! `cert.pem`, `key.pem`, `root-ca.pem`; policy `JitpilotObserverPolicy`,
//! clientIds `jitpilot-observer-*`, subscribe and receive only):
//!
//! - `$aws/events/#`: presence (connected, disconnected), subscriptions, and
//!   JITP's trigger `certificates/registered/<caCertificateId>`;
//! - `/cert-rotation/#`: every request a device sends (`.../rqst`) and every
//!   answer the rotation function publishes (`.../rspn`).
//!
//! Each message becomes the [`CloudEvent`] the local endpoint emits for the
//! same thing ([`observed_event`]), so the traffic pane, the device
//! timelines and the lifecycle views work unchanged.
//!
//! The observer reconnects with backoff, and reports where it is
//! ([`ObserverState`]) on the same event stream, as a `CONN` row the header
//! and status line pick up. What it lacks is said with what to do: no
//! identity yet ("run init"), an endpoint that does not answer, a server
//! certificate its `root-ca.pem` does not trust.

use super::{init, split_host_port, AwsCloud};
use crate::cloud::local::endpoint::limits::{MAX_PACKET_BYTES, PAYLOAD_PREVIEW_BYTES};
use crate::cloud::{Cloud, CloudEvent, EventKind};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the observer subscribes to: lifecycle events and the rotation topics.
pub const OBSERVED_FILTERS: [&str; 2] = ["$aws/events/#", "/cert-rotation/#"];
/// The identity's files in `<data-dir>/aws/observer/`, as `init` writes them.
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";
pub const ROOT_CA_FILE: &str = "root-ca.pem";
/// What the detail of a state event is keyed by.
const STATE_KEY: &str = "observer";
/// First retry delay; doubled per failure up to [`RETRY_CAP`].
const RETRY_BASE: Duration = Duration::from_millis(500);
/// No retry waits longer: a fixed endpoint comes back within this.
const RETRY_CAP: Duration = Duration::from_secs(10);
/// How long quitting waits for the DISCONNECT to go out.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// Why the observer cannot watch. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    #[error("no observer identity yet ({} is missing): run init (key i in the TUI, or `jitpilot --backend aws init`) to create it", path.display())]
    MissingIdentity { path: PathBuf },
    #[error("{} holds no usable {what} ({reason}): run init again (key i, or `jitpilot --backend aws init`) to recreate the observer identity", path.display())]
    BadIdentity {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the observer's TLS setup failed ({0}): run init again to recreate its identity")]
    Tls(#[from] rustls::Error),
    #[error("the account's MQTT endpoint is unknown: {0}")]
    Endpoint(String),
    #[error("{endpoint}: {reason}")]
    Connection { endpoint: String, reason: String },
    #[error("{endpoint} refused the subscription to {filters}: the policy {policy} must allow iot:Subscribe and iot:Receive on them; run init again to recreate it", filters = OBSERVED_FILTERS.join(" and "), policy = init::OBSERVER_POLICY)]
    SubscriptionRefused { endpoint: String },
}

/// Where the observer is, as the header and the status line show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ObserverState {
    /// Something it needs is missing (the identity); `reason` says what to do.
    Waiting { reason: String },
    /// Dialling the endpoint.
    Connecting { endpoint: String },
    /// Connected and subscribed: traffic flows into the pane.
    Subscribed { endpoint: String, client_id: String },
    /// The last attempt failed; it retries with backoff. `reason` says what to do.
    Failed { reason: String },
    /// Stopped on quit.
    Stopped,
}

impl ObserverState {
    /// A few words for the header: `subscribed`, `connecting`, ...
    pub fn label(&self) -> &'static str {
        match self {
            ObserverState::Waiting { .. } => "waiting: run init",
            ObserverState::Connecting { .. } => "connecting",
            ObserverState::Subscribed { .. } => "subscribed",
            ObserverState::Failed { .. } => "retrying (see status line)",
            ObserverState::Stopped => "stopped",
        }
    }

    /// True when the user has something to do (init, a flag, the network).
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            ObserverState::Waiting { .. } | ObserverState::Failed { .. }
        )
    }

    /// One line for the traffic pane and the status line.
    pub fn describe(&self) -> String {
        match self {
            ObserverState::Waiting { reason } => format!("observer waiting: {reason}"),
            ObserverState::Connecting { endpoint } => format!("observer connecting to {endpoint}"),
            ObserverState::Subscribed { endpoint, .. } => format!(
                "observer subscribed to {} at {endpoint}",
                OBSERVED_FILTERS.join(" and ")
            ),
            ObserverState::Failed { reason } => {
                format!("observer failed, retrying with backoff: {reason}")
            }
            ObserverState::Stopped => "observer stopped".into(),
        }
    }

    /// The state as an event of the stream (a `CONN` row of the observer).
    pub fn event(&self, client_id: &str) -> CloudEvent {
        CloudEvent::new(EventKind::Connection, self.describe())
            .client(client_id)
            .detail(json!({ STATE_KEY: self }))
    }

    /// The state an event of [`ObserverState::event`] carries, if it is one.
    pub fn from_event(ev: &CloudEvent) -> Option<ObserverState> {
        if ev.kind != EventKind::Connection {
            return None;
        }
        serde_json::from_value(ev.detail.get(STATE_KEY)?.clone()).ok()
    }
}

/// The observer's certificate, key and trusted roots, read from its folder.
pub struct ObserverIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: RootCertStore,
}

impl ObserverIdentity {
    /// Reads `cert.pem`, `key.pem` and `root-ca.pem` from `dir`.
    pub fn load(dir: &Path) -> Result<ObserverIdentity, ObserverError> {
        let read = |file: &str| {
            let path = dir.join(file);
            match std::fs::read(&path) {
                Ok(bytes) => Ok((path, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(ObserverError::MissingIdentity { path })
                }
                Err(source) => Err(ObserverError::Read { path, source }),
            }
        };
        let bad = |path: &Path, what: &'static str, reason: String| ObserverError::BadIdentity {
            path: path.to_path_buf(),
            what,
            reason,
        };
        let (cert_path, cert_pem) = read(CERT_FILE)?;
        let (key_path, key_pem) = read(KEY_FILE)?;
        let (roots_path, roots_pem) = read(ROOT_CA_FILE)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&cert_path, "certificate", e.to_string()))?;
        if chain.is_empty() {
            return Err(bad(&cert_path, "certificate", "no CERTIFICATE block".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| bad(&key_path, "private key", e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&roots_pem) {
            let cert = cert.map_err(|e| bad(&roots_path, "CA certificate", e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| bad(&roots_path, "CA certificate", e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad(&roots_path, "CA certificate", "empty".into()));
        }
        Ok(ObserverIdentity { chain, key, roots })
    }

    /// Mutual TLS with this identity: the server is verified against
    /// `root-ca.pem` and the host dialled (AWS: the `iot:Data-ATS` name).
    pub fn client_config(self) -> Result<ClientConfig, ObserverError> {
        // aws-lc-rs, chosen explicitly like the device agent's: no
        // process-wide default provider has to be installed first.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots)
            .with_client_auth_cert(self.chain, self.key)?;
        Ok(config)
    }
}

/// The running observer. Stop it with [`Observer::stop`] (on quit).
pub struct Observer {
    client_id: String,
    state: watch::Receiver<ObserverState>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Starts watching `cloud`'s MQTT endpoint (`--iot-endpoint`, else
    /// DescribeEndpoint `iot:Data-ATS`) in the background. The first state
    /// is known at once: waiting for an identity, or connecting.
    pub fn start(cloud: AwsCloud) -> Observer {
        let client_id = format!(
            "{}{:08x}",
            init::OBSERVER_CLIENT_PREFIX,
            rand::random::<u32>()
        );
        let first = match ObserverIdentity::load(&identity_dir(&cloud)) {
            Err(e) => ObserverState::Waiting {
                reason: e.to_string(),
            },
            Ok(_) => ObserverState::Connecting {
                endpoint: cloud
                    .device_endpoint()
                    .map(|e| e.addr)
                    .unwrap_or_else(|| "the iot:Data-ATS endpoint".into()),
            },
        };
        let (tx, state) = watch::channel(first);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(cloud, client_id.clone(), tx, stop.clone()));
        Observer {
            client_id,
            state,
            stop,
            task,
        }
    }

    /// The MQTT clientId it connects with (`jitpilot-observer-<random>`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Its state, now and as it changes.
    pub fn state(&self) -> watch::Receiver<ObserverState> {
        self.state.clone()
    }

    /// Disconnects cleanly (bounded) and ends the task.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// `<data-dir>/aws/observer/`.
fn identity_dir(cloud: &AwsCloud) -> PathBuf {
    init::observer_dir(cloud)
}

/// Publishes a state change: to the watch and, as an event, to the stream.
struct StateReport {
    cloud: AwsCloud,
    client_id: String,
    tx: watch::Sender<ObserverState>,
}

impl StateReport {
    fn set(&self, state: ObserverState) {
        let changed = self.tx.send_if_modified(|current| {
            if *current == state {
                return false;
            }
            *current = state.clone();
            true
        });
        if changed {
            tracing::info!(client_id = %self.client_id, "{}", state.describe());
            self.cloud.emit(state.event(&self.client_id));
        }
    }
}

/// How one connection ended.
enum Ended {
    /// Asked to stop.
    Stopped,
    /// It was subscribed, then the connection was lost: retry at once.
    Lost(ObserverError),
}

async fn run(
    cloud: AwsCloud,
    client_id: String,
    tx: watch::Sender<ObserverState>,
    stop: CancellationToken,
) {
    let report = StateReport {
        cloud: cloud.clone(),
        client_id: client_id.clone(),
        tx,
    };
    let mut failures = 0u32;
    loop {
        // A repeated failure keeps its state: no flood of identical rows.
        if !matches!(*report.tx.borrow(), ObserverState::Failed { .. }) {
            report.set(ObserverState::Connecting {
                endpoint: cloud
                    .device_endpoint()
                    .map(|e| e.addr)
                    .unwrap_or_else(|| "the iot:Data-ATS endpoint".into()),
            });
        }
        // Listen for init's events before looking: an identity created
        // between the look and the wait is not missed. Dropped as soon as
        // the identity is there, so a long session holds no backlog.
        let mut wake = Some(cloud.events());
        let outcome = match ObserverIdentity::load(&identity_dir(&cloud)) {
            Ok(identity) => {
                wake = None;
                watch_once(&cloud, identity, &client_id, &report, &stop).await
            }
            Err(e) => Err(e),
        };
        let error = match outcome {
            Ok(Ended::Stopped) => break,
            Ok(Ended::Lost(e)) => {
                failures = 0;
                e
            }
            Err(e) => e,
        };
        failures = failures.saturating_add(1);
        let missing = matches!(error, ObserverError::MissingIdentity { .. });
        report.set(if missing {
            ObserverState::Waiting {
                reason: error.to_string(),
            }
        } else {
            ObserverState::Failed {
                reason: error.to_string(),
            }
        });
        let delay = retry_delay(failures);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
            // Init reports the identity it creates as a registry change:
            // try again at once instead of at the next backoff.
            () = registry_change(wake.as_mut()), if missing => {}
        }
    }
    report.set(ObserverState::Stopped);
}

/// The next registry change on the stream (init creating the identity).
async fn registry_change(events: Option<&mut crate::cloud::EventReceiver>) {
    if let Some(events) = events {
        while let Some(ev) = events.recv().await {
            if ev.kind == EventKind::Registry {
                return;
            }
        }
    }
    std::future::pending::<()>().await;
}

/// Exponential backoff: 0.5 s, 1 s, 2 s, ... up to [`RETRY_CAP`]; a lost
/// connection (failures = 1 after a success) retries after the base delay.
fn retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    RETRY_BASE.saturating_mul(1u32 << exp).min(RETRY_CAP)
}

/// One connection: connect, subscribe, forward messages until it ends.
async fn watch_once(
    cloud: &AwsCloud,
    identity: ObserverIdentity,
    client_id: &str,
    report: &StateReport,
    stop: &CancellationToken,
) -> Result<Ended, ObserverError> {
    let endpoint = match cloud.device_endpoint() {
        Some(e) => e,
        None => {
            // Not known yet (no init, no status so far): ask AWS once.
            cloud
                .data_ats_host()
                .await
                .map_err(|e| ObserverError::Endpoint(e.to_string()))?;
            cloud.device_endpoint().ok_or_else(|| {
                ObserverError::Endpoint(
                    "DescribeEndpoint gave no address; pass --iot-endpoint HOST[:PORT]".into(),
                )
            })?
        }
    };
    let (host, port) = split_host_port(&endpoint.addr);
    let tls = identity.client_config()?;
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET_BYTES, 4096)
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    // Queued now, sent right after CONNACK.
    let filters = OBSERVED_FILTERS.map(|f| SubscribeFilter::new(f.to_string(), QoS::AtMostOnce));
    client
        .try_subscribe_many(filters)
        .map_err(|e| ObserverError::Connection {
            endpoint: endpoint.addr.clone(),
            reason: e.to_string(),
        })?;
    let roots_file = identity_dir(cloud).join(ROOT_CA_FILE);
    let mut subscribed = false;
    loop {
        let polled = tokio::select! {
            biased;
            () = stop.cancelled() => {
                disconnect(&client, &mut eventloop, subscribed).await;
                return Ok(Ended::Stopped);
            }
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    return Err(ObserverError::SubscriptionRefused {
                        endpoint: endpoint.addr.clone(),
                    });
                }
                subscribed = true;
                report.set(ObserverState::Subscribed {
                    endpoint: endpoint.addr.clone(),
                    client_id: client_id.to_string(),
                });
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                cloud.emit(observed_event(&p.topic, &p.payload));
            }
            Ok(_) => {}
            Err(e) => {
                let error = ObserverError::Connection {
                    endpoint: endpoint.addr.clone(),
                    reason: describe(&e, &roots_file, subscribed),
                };
                // rumqttc would reconnect on the next poll by itself; the
                // backoff is ours, so this connection is dropped here.
                return if subscribed {
                    Ok(Ended::Lost(error))
                } else {
                    Err(error)
                };
            }
        }
    }
}

/// Sends DISCONNECT (so AWS logs a clean disconnect), bounded in time.
async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop, connected: bool) {
    if !connected || client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// A connection error in words, with what to do about the usual causes.
fn describe(e: &ConnectionError, roots_file: &Path, subscribed: bool) -> String {
    if let Some(tls) = rustls_error(e) {
        return match tls {
            rustls::Error::InvalidCertificate(why) => format!(
                "the endpoint's server certificate is not trusted ({why:?}): {} must hold the CA that issued it (Amazon's roots for AWS IoT; run init to rewrite them)",
                roots_file.display()
            ),
            rustls::Error::AlertReceived(alert) => format!(
                "the endpoint rejected the observer's certificate (TLS alert {alert:?}): it must be ACTIVE with {} attached; run init again",
                init::OBSERVER_POLICY
            ),
            other => format!("TLS handshake failed: {other}"),
        };
    }
    match e {
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "nothing accepts connections there: check --iot-endpoint, or your network".into()
        }
        ConnectionError::NetworkTimeout => {
            "the endpoint did not answer in time: check the network, --region and --iot-endpoint"
                .into()
        }
        ConnectionError::ConnectionRefused(code) => format!("CONNACK refused: {code:?}"),
        _ if !subscribed => format!(
            "the connection closed before the subscription was granted ({e}); on AWS this means {} does not allow the observer to connect or subscribe: run init again",
            init::OBSERVER_POLICY
        ),
        _ => format!("connection lost ({e})"),
    }
}

/// The rustls error behind a connection error, if TLS is what failed.
fn rustls_error(e: &ConnectionError) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An io::Error hides what it wraps from `source()`: look inside.
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        current = err.source();
    }
    None
}

/// A message the observer received, as the event the local endpoint emits
/// for the same traffic:
///
/// - `$aws/events/presence/connected|disconnected/<clientId>` → a `CONN`
///   event of that client (the local endpoint's "X connected");
/// - `$aws/events/subscriptions/...` → a `CONN` event of that client;
/// - `$aws/events/certificates/registered/<caId>` → a `JITP` event naming
///   the certificate (the devices pane finds its owner by `certificateId`);
/// - `/cert-rotation/<op>/<serial>/rqst` → `IN PUBLISH` from the device,
///   `.../rspn` → `OUT PUBLISH` to it;
/// - anything else → `OUT PUBLISH` for the cloud's `$aws/` topics, `IN
///   PUBLISH` otherwise.
pub fn observed_event(topic: &str, payload: &[u8]) -> CloudEvent {
    let body = payload_preview(payload);
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let size = payload.len();
    if let Some(rest) = topic.strip_prefix("$aws/events/presence/") {
        if let Some((what, client)) = rest.split_once('/') {
            let summary = match what {
                "disconnected" if !field("disconnectReason").is_empty() => {
                    format!("{client} disconnected: {}", field("disconnectReason"))
                }
                other => format!("{client} {other}"),
            };
            return CloudEvent::new(EventKind::Connection, summary)
                .client(client)
                .topic(topic)
                .detail(json!({
                    "certificateId": field("principalIdentifier"),
                    "ipAddress": body.get("ipAddress"),
                    "payload": body,
                }));
        }
    }
    if let Some(rest) = topic.strip_prefix("$aws/events/subscriptions/") {
        if let Some((what, client)) = rest.split_once('/') {
            let topics: Vec<&str> = body
                .get("topics")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            return CloudEvent::new(
                EventKind::Connection,
                format!("{client} {what} {}", topics.join(", ")),
            )
            .client(client)
            .topic(topic)
            .detail(json!({ "payload": body }));
        }
    }
    if let Some(ca_id) = topic.strip_prefix("$aws/events/certificates/registered/") {
        let cert_id = field("certificateId");
        return CloudEvent::new(
            EventKind::Jitp,
            format!(
                "certificate {} registered under CA {} ({})",
                short(cert_id),
                short(ca_id),
                field("certificateStatus")
            ),
        )
        .topic(topic)
        .detail(json!({
            "certificateId": cert_id,
            "caCertificateId": ca_id,
            "payload": body,
        }));
    }
    let serial = topic
        .strip_prefix("/cert-rotation/")
        .and_then(|rest| rest.split('/').nth(1));
    let from_device = match serial {
        Some(_) => topic.ends_with("/rqst"),
        None => !topic.starts_with("$aws/"),
    };
    let (kind, direction) = if from_device {
        (
            EventKind::PacketIn {
                packet: "PUBLISH",
                size,
            },
            "IN",
        )
    } else {
        (
            EventKind::PacketOut {
                packet: "PUBLISH",
                size,
            },
            "OUT",
        )
    };
    let mut event = CloudEvent::new(kind, format!("{direction} PUBLISH {topic}"))
        .topic(topic)
        .detail(json!({ "size": size, "payload": body }));
    if let Some(serial) = serial {
        event = event.client(serial);
    }
    event
}

/// The first ten characters of an id, as the panes show ids.
fn short(id: &str) -> &str {
    &id[..id.len().min(10)]
}

/// The payload as the traffic pane shows it: JSON if it parses, else text,
/// else its size; cut at [`PAYLOAD_PREVIEW_BYTES`] (as the local endpoint does).
fn payload_preview(payload: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(payload) {
        if payload.len() <= PAYLOAD_PREVIEW_BYTES {
            return v;
        }
    }
    match std::str::from_utf8(payload) {
        Ok(text) => {
            let mut end = text.len().min(PAYLOAD_PREVIEW_BYTES);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(text[..end].to_string())
        }
        Err(_) => Value::String(format!("<{} bytes of binary>", payload.len())),
    }
}

#[cfg(test)]
mod tests;
