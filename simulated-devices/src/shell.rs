//! The thin async shell around [`DeviceMachine`]: it owns the MQTT
//! connection (rumqttc over rustls), the one timer and the credential folder,
//! turns what happens into [`Input`]s and carries out the [`Command`]s.
//! No onboarding decision is made here.
//!
//! One device is one future, not a thread: a fleet of thousands runs on a
//! couple of runtime threads. Per device it holds one connection, one timer
//! and a few short strings.

use crate::backoff::RetryPolicy;
use crate::creds::{CredentialFolder, CredentialsError, Durability};
use crate::machine::{Command, DeviceFailure, DeviceMachine, Goal, Identity, Input, MachineConfig};
use crate::mqtt_version::MqttVersion;
use crate::report::{DeviceOutcome, DeviceReport, Progress, Step, StepOutcome};
use crate::tls::{self, TlsSetupError};
use rumqttc::{AsyncClient, MqttOptions, TlsConfiguration, Transport};
use rustls::RootCertStore;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

mod connection;
use connection::{poll_connection, Client, Connection};

/// How to run one device.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Serial number = clientId = cert CN = thing name.
    pub serial: String,
    /// The device's credential folder (DESIGN §2.3).
    pub creds_dir: PathBuf,
    /// `host:port` of the MQTT endpoint.
    pub endpoint: String,
    /// Name to verify in the server cert, when it differs from the host
    /// dialled (e.g. dial `127.0.0.1`, verify `localhost`).
    pub server_name: Option<String>,
    /// ALPN protocol to offer (`x-amzn-mqtt-ca` for AWS IoT on port 443).
    pub alpn: Option<String>,
    /// Backoff and attempt bounds.
    pub retry: RetryPolicy,
    /// Fraction of cloud responses to drop, to exercise retries (0.0–1.0).
    pub loss: f64,
    /// Drop exactly the next N responses (a deterministic fault, unlike
    /// `loss`): the device times out and asks again.
    pub drop_responses: u32,
    /// How long to wait for a response before asking again.
    pub response_timeout: Duration,
    /// Seed of jitter and loss draws; random when `None`.
    pub seed: Option<u64>,
    /// What the device's credential writes survive.
    pub durability: Durability,
    /// MQTT 3.1.1 (default) or 5.
    pub mqtt: MqttVersion,
}

impl DeviceConfig {
    /// A device with default retry settings and no loss.
    pub fn new(
        serial: impl Into<String>,
        creds_dir: impl Into<PathBuf>,
        endpoint: impl Into<String>,
    ) -> Self {
        DeviceConfig {
            serial: serial.into(),
            creds_dir: creds_dir.into(),
            endpoint: endpoint.into(),
            server_name: None,
            alpn: None,
            retry: RetryPolicy::default(),
            loss: 0.0,
            drop_responses: 0,
            response_timeout: Duration::from_secs(3),
            seed: None,
            durability: Durability::default(),
            mqtt: MqttVersion::default(),
        }
    }
}

/// Why a device run ended without reaching its goal.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device {serial}: {source}")]
    Failed {
        serial: String,
        #[source]
        source: DeviceFailure,
    },
    #[error("device {serial}: {source}")]
    Credentials {
        serial: String,
        #[source]
        source: CredentialsError,
    },
    #[error("device {serial}: {source}")]
    Tls {
        serial: String,
        #[source]
        source: TlsSetupError,
    },
    #[error("invalid endpoint {0:?}: expected HOST:PORT, e.g. 127.0.0.1:8883")]
    Endpoint(String),
    #[error("device {0}: the state machine is waiting with no connection and no timer; this is a bug in simulated-devices")]
    Stalled(String),
}

impl DeviceError {
    /// The machine's failure, when the device gave up (rather than could not start).
    pub fn failure(&self) -> Option<&DeviceFailure> {
        match self {
            DeviceError::Failed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Runs one device toward `goal`, resuming from its credential folder.
/// Progress goes to `reports` when given.
pub async fn run_device(
    config: DeviceConfig,
    goal: Goal,
    reports: Option<UnboundedSender<DeviceReport>>,
) -> Result<DeviceOutcome, DeviceError> {
    let started = Instant::now();
    let (host, port) = split_endpoint(&config.endpoint)?;
    let serial = config.serial.clone();
    let folder = CredentialFolder::new(&config.creds_dir).with_durability(config.durability);
    let creds_err = |source| DeviceError::Credentials {
        serial: serial.clone(),
        source,
    };
    let roots = Arc::new(tls::root_store(&folder).map_err(|source| DeviceError::Tls {
        serial: serial.clone(),
        source,
    })?);
    let stored = blocking(folder.clone(), |f| f.load_stored())
        .await
        .map_err(creds_err)?;

    let mut machine = DeviceMachine::new(MachineConfig {
        serial: serial.clone(),
        goal,
        policy: config.retry.clone(),
        loss: config.loss,
        drop_responses: config.drop_responses,
        response_timeout: config.response_timeout,
        seed: config.seed.unwrap_or_else(rand::random),
    });
    let mut shell = Shell {
        config: &config,
        host,
        port,
        folder,
        roots,
        reports,
        conn: None,
        timer: None,
        clock: StepClock::default(),
    };
    let mut queue: VecDeque<Command> = machine.handle(Input::Start(stored)).into();
    loop {
        while let Some(command) = queue.pop_front() {
            match shell.execute(command).await? {
                Executed::Continue => {}
                Executed::Input(input) => queue.extend(machine.handle(input)),
                Executed::Done(manufacturer_cert_id) => {
                    shell.close().await;
                    return Ok(DeviceOutcome {
                        serial,
                        steps: shell.clock.outcomes(),
                        manufacturer_cert_id,
                        elapsed: started.elapsed(),
                    });
                }
                Executed::Failed(source) => {
                    shell.close().await;
                    return Err(DeviceError::Failed { serial, source });
                }
            }
        }
        if shell.conn.is_none() && shell.timer.is_none() {
            return Err(DeviceError::Stalled(serial));
        }
        let input = shell.next_input().await;
        queue.extend(machine.handle(input));
    }
}

/// `host:port`, with `[v6]:port` accepted.
fn split_endpoint(endpoint: &str) -> Result<(String, u16), DeviceError> {
    let bad = || DeviceError::Endpoint(endpoint.to_string());
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Runs file IO off the async threads: fsync can take milliseconds.
async fn blocking<T: Send + 'static>(
    folder: CredentialFolder,
    f: impl FnOnce(&CredentialFolder) -> Result<T, CredentialsError> + Send + 'static,
) -> Result<T, CredentialsError> {
    match tokio::task::spawn_blocking(move || f(&folder)).await {
        Ok(result) => result,
        Err(e) => Err(CredentialsError::Write {
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// What executing one command led to.
enum Executed {
    Continue,
    /// The command failed in a way the machine must hear about.
    Input(Input),
    Done(Option<String>),
    Failed(DeviceFailure),
}

struct Shell<'a> {
    config: &'a DeviceConfig,
    host: String,
    port: u16,
    folder: CredentialFolder,
    roots: Arc<RootCertStore>,
    reports: Option<UnboundedSender<DeviceReport>>,
    conn: Option<Connection>,
    timer: Option<Instant>,
    clock: StepClock,
}

impl Shell<'_> {
    async fn execute(&mut self, command: Command) -> Result<Executed, DeviceError> {
        match command {
            Command::Connect(identity) => {
                self.close().await;
                self.conn = Some(self.open(identity)?);
            }
            Command::Disconnect => self.close().await,
            Command::Subscribe { topic } => {
                if let Some(conn) = &self.conn {
                    if let Err(reason) = conn.client.try_subscribe(topic) {
                        self.conn = None;
                        return Ok(Executed::Input(Input::Closed { reason }));
                    }
                }
            }
            Command::Publish { topic, payload } => {
                if let Some(conn) = &self.conn {
                    if let Err(reason) = conn.client.try_publish(topic, payload) {
                        self.conn = None;
                        return Ok(Executed::Input(Input::Closed { reason }));
                    }
                }
            }
            Command::Store(credential) => {
                blocking(self.folder.clone(), move |f| f.store(&credential))
                    .await
                    .map_err(|source| DeviceError::Credentials {
                        serial: self.config.serial.clone(),
                        source,
                    })?;
            }
            Command::StartTimer(after) => self.timer = Some(Instant::now() + after),
            Command::CancelTimer => self.timer = None,
            Command::Report {
                step,
                state,
                attempt,
                message,
            } => {
                self.clock.observe(step, state, attempt);
                if let Some(tx) = &self.reports {
                    // A closed receiver only means nobody watches any more.
                    let _ = tx.send(DeviceReport {
                        serial: self.config.serial.clone(),
                        step,
                        state,
                        attempt,
                        message,
                        at: now_millis(),
                    });
                }
            }
            Command::Done {
                manufacturer_cert_id,
            } => return Ok(Executed::Done(manufacturer_cert_id)),
            Command::Failed(failure) => return Ok(Executed::Failed(failure)),
        }
        Ok(Executed::Continue)
    }

    /// A new connection presenting `identity`; the TCP/TLS/MQTT connect
    /// happens on the first poll.
    fn open(&self, identity: Identity) -> Result<Connection, DeviceError> {
        let tls = tls::client_config(
            &self.folder,
            identity,
            self.roots.clone(),
            self.config.server_name.as_deref(),
            self.config.alpn.as_deref(),
        )
        .map_err(|source| DeviceError::Tls {
            serial: self.config.serial.clone(),
            source,
        })?;
        let transport = Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls)));
        if self.config.mqtt == MqttVersion::V5 {
            let mut options =
                rumqttc::v5::MqttOptions::new(&self.config.serial, &self.host, self.port);
            options
                .set_keep_alive(Duration::from_secs(30))
                .set_clean_start(true)
                .set_outgoing_inflight_upper_limit(4)
                .set_max_packet_size(Some(64 * 1024))
                .set_transport(transport);
            // Nagle off, as for 3.1.1 below.
            let mut network = options.network_options();
            network.set_tcp_nodelay(true);
            options.set_network_options(network);
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, 8);
            return Ok(Connection {
                client: Client::V5(client, Box::new(eventloop)),
                connected: false,
            });
        }
        let mut options = MqttOptions::new(&self.config.serial, &self.host, self.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_inflight(4)
            .set_max_packet_size(64 * 1024, 64 * 1024)
            .set_transport(transport);
        let (client, mut eventloop) = AsyncClient::new(options, 8);
        // rumqttc leaves Nagle on: a small SUBSCRIBE or PUBLISH written right
        // after another then waits for the endpoint's delayed ACK (~40 ms on
        // Linux), which made a single device's walkthrough ~3x slower.
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        Ok(Connection {
            client: Client::V311(client, Box::new(eventloop)),
            connected: false,
        })
    }

    /// Sends DISCONNECT on a live connection (so the cloud logs a clean
    /// disconnect, not a lost one) and drops it.
    async fn close(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !conn.connected || conn.client.try_disconnect().is_err() {
            return;
        }
        // Bounded: a peer that stopped reading must not hold the device.
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.client.flush_disconnect()).await;
    }

    /// Waits for the next thing that happens: a packet, a connection
    /// result or the timer.
    async fn next_input(&mut self) -> Input {
        let timer = self.timer;
        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let input = tokio::select! {
            input = poll_connection(self.conn.as_mut()) => input,
            () = sleep => {
                self.timer = None;
                Input::TimerFired
            }
        };
        if matches!(input, Input::ConnectFailed { .. } | Input::Closed { .. }) {
            // rumqttc would silently reconnect on the next poll; reconnects
            // are the machine's decision.
            self.conn = None;
        }
        input
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Per-step wall times, from the machine's `Started`/`Completed` reports.
#[derive(Default)]
struct StepClock {
    steps: Vec<(Step, Instant, StepOutcome)>,
}

impl StepClock {
    fn observe(&mut self, step: Step, state: Progress, attempt: u32) {
        let now = Instant::now();
        match state {
            Progress::Started | Progress::Skipped => {
                self.steps.retain(|(s, _, _)| *s != step);
                self.steps.push((
                    step,
                    now,
                    StepOutcome {
                        step,
                        ran: state == Progress::Started,
                        duration: Duration::ZERO,
                        attempts: attempt,
                    },
                ));
            }
            Progress::Completed => {
                if let Some((_, start, outcome)) =
                    self.steps.iter_mut().find(|(s, _, _)| *s == step)
                {
                    outcome.duration = now - *start;
                    outcome.attempts = attempt;
                }
            }
            _ => {}
        }
    }

    fn outcomes(&self) -> Vec<StepOutcome> {
        self.steps.iter().map(|(_, _, o)| o.clone()).collect()
    }
}
