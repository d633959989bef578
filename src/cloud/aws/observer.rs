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

mod identity;
mod traffic;

pub use identity::ObserverIdentity;
pub use traffic::observed_event;

use super::{init, split_host_port, AwsCloud};
use crate::cloud::{Cloud, CloudEvent, EventKind};
use crate::vocabulary::{CERT_ROTATION_FILTER, MAX_PACKET_BYTES};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the observer subscribes to: lifecycle events and the rotation topics.
pub const OBSERVED_FILTERS: [&str; 2] = ["$aws/events/#", CERT_ROTATION_FILTER];
/// The identity's files in `<data-dir>/aws/observer/`, as `init` writes them.
pub use crate::vocabulary::{
    OBSERVER_CERT_FILE as CERT_FILE, OBSERVER_KEY_FILE as KEY_FILE, ROOT_CA_FILE,
};
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
                format!("observer failed, retrying: {reason}")
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
    /// It was subscribed, then the connection was lost: the backoff
    /// starts again from its first, shortest delay.
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
        // Listen for init's events before looking: an identity created
        // between the look and the wait is not missed. Dropped as soon as
        // the identity is there, so a long session holds no backlog.
        let mut wake = Some(cloud.events());
        let outcome = match ObserverIdentity::load(&identity_dir(&cloud)) {
            Ok(identity) => {
                wake = None;
                // A repeated failure keeps its state: no flood of rows
                // alternating "connecting" and "failed".
                let retrying = matches!(*report.tx.borrow(), ObserverState::Failed { .. });
                if !retrying {
                    report.set(ObserverState::Connecting {
                        endpoint: cloud
                            .device_endpoint()
                            .map(|e| e.addr)
                            .unwrap_or_else(|| "the iot:Data-ATS endpoint".into()),
                    });
                }
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
        // Equal jitter: several TUIs on one account that lost the
        // endpoint together do not come back in lockstep.
        let delay = retry_delay(failures).mul_f64(0.5 + rand::random::<f64>() / 2.0);
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

/// The ceiling of the exponential backoff: 0.5 s, 1 s, 2 s, ... up to
/// [`RETRY_CAP`]; a lost connection (failures = 1 after a success) starts
/// again at the base delay. The wait itself is jittered below the ceiling.
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

#[cfg(test)]
mod tests;
