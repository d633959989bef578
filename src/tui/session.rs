//! The session: the cloud the TUI drives and the devices it runs, opened
//! before the first frame and shut down after the last.
//!
//! On the local backend this opens the data dir (taking its lock), starts
//! the embedded cloud's endpoint on `--mqtt-addr` and its AWS API on
//! `--api-addr`, and runs devices
//! in-process with the device agent. On AWS it opens [`crate::cloud::aws::AwsCloud`] (the
//! standard credential chain, `--region`, `--endpoint-url`), starts the
//! observer whose subscription feeds the traffic pane, and runs devices
//! against the account's endpoint. Every failure comes back as words for
//! the screen: the TUI shows them with what to do instead of crashing.

use super::agent::{self, DeviceTarget};
use super::app::Header;
use super::worker::DeviceRunner;
use crate::cli::GlobalArgs;
use crate::cloud::aws::observer::Observer;
use crate::cloud::local::endpoint::EndpointConfig;
use crate::cloud::local::runtime::{self, RunningCloud, RuntimeError};
use crate::cloud::local::LocalCloud;
use crate::cloud::{Cloud, EventBus};
use std::sync::{Arc, Mutex};

/// Something to shut down cleanly on quit: the local endpoint, or the AWS
/// observer.
#[async_trait::async_trait]
pub trait Shutdown: Send {
    /// Local: closes sessions, flushes the store, removes the endpoint
    /// address file. AWS: the observer disconnects.
    async fn shutdown(self: Box<Self>);
}

/// What the TUI runs on.
pub struct Session {
    pub cloud: Arc<dyn Cloud>,
    pub devices: Arc<dyn DeviceRunner>,
    pub header: Header,
    /// The running cloud (local) or observer (AWS), shut down on quit.
    pub running: Option<Box<dyn Shutdown>>,
}

/// Opens the session for `global`, or explains why it cannot.
pub async fn open(global: &GlobalArgs) -> Result<Session, String> {
    match global.backend {
        crate::cli::Backend::Aws => open_aws(global).await,
        crate::cli::Backend::Local => open_local(global).await,
    }
}

/// The AWS backend: no call to AWS is made here, so a missing credential or
/// a denied permission shows up on the first refresh, in the status line,
/// with what to do; only what stops every call (no region, a broken fleet
/// file) is a full-screen explanation.
async fn open_aws(global: &GlobalArgs) -> Result<Session, String> {
    let cloud = crate::cli::backend::open_aws(global, EventBus::default())
        .await
        .map_err(|e| {
            format!(
                "Cannot open the AWS backend:\n\n{e}\n\nThe TUI uses the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO) and --region; --endpoint-url points it at an emulator. Or run jitpilot without --backend aws for the embedded local cloud."
            )
        })?;
    let observer = Observer::start(cloud.clone());
    let header = Header {
        backend: format!("aws {}", cloud.clients().region),
        endpoint: cloud.device_endpoint().map(|e| e.addr),
        api: None,
        data_dir: Some(global.data_dir().display().to_string()),
        observer: Some(observer.state().borrow().clone()),
        tls_refused: 0,
    };
    let shared: Arc<dyn Cloud> = Arc::new(cloud.clone());
    let devices = Arc::new(
        agent::AgentRunner::with_target(
            cloud.options().data_dir.join("devices"),
            DeviceTarget::Cloud(shared.clone()),
        )
        .with_mqtt(global.mqtt),
    );
    Ok(Session {
        cloud: shared,
        devices,
        header,
        running: Some(Box::new(Watching(observer))),
    })
}

/// The AWS observer, disconnected on quit.
struct Watching(Observer);

#[async_trait::async_trait]
impl Shutdown for Watching {
    async fn shutdown(self: Box<Self>) {
        self.0.stop().await;
    }
}

async fn open_local(global: &GlobalArgs) -> Result<Session, String> {
    let data_dir = global.data_dir();
    let cloud = LocalCloud::open(&data_dir, EventBus::default()).map_err(|e| {
        format!(
            "Cannot open the local cloud in {}:\n\n{e}\n\nIf another jitpilot (TUI, serve, fleet) owns this data dir, stop it or pick another with --data-dir.",
            data_dir.display()
        )
    })?;
    let endpoint = EndpointConfig {
        addr: global.mqtt_addr.clone(),
        ..EndpointConfig::default()
    };
    let running = runtime::start_serving(&cloud, endpoint, global.api_config())
        .await
        .map_err(|e| match e {
            RuntimeError::Api(_) => format!(
                "The local cloud's AWS API could not start on {}:\n\n{e}",
                global.api_addr
            ),
            e => format!(
                // The error itself names the flag to change.
                "The MQTT endpoint could not start on {}:\n\n{e}",
                global.mqtt_addr
            ),
        })?;
    let header = Header {
        backend: "local".into(),
        endpoint: Some(running.local_addr().to_string()),
        api: running
            .api_addr()
            .map(|a| crate::cli::env::endpoint_url(&a.to_string())),
        data_dir: Some(data_dir.display().to_string()),
        observer: None,
        tls_refused: 0,
    };
    let devices = Arc::new(
        agent::AgentRunner::new(
            cloud.data_dir().devices_dir(),
            running.local_addr().to_string(),
        )
        .with_mqtt(global.mqtt),
    );
    Ok(Session {
        cloud: Arc::new(cloud),
        devices,
        header,
        running: Some(Box::new(Running(Mutex::new(Some(running))))),
    })
}

/// The running endpoint, shut down on quit. The endpoint reloads its topic
/// rules itself after a deploy or teardown (the local cloud tells it), so
/// the TUI drives the plain [`LocalCloud`].
struct Running(Mutex<Option<RunningCloud>>);

#[async_trait::async_trait]
impl Shutdown for Running {
    async fn shutdown(self: Box<Self>) {
        let running = self.0.lock().ok().and_then(|mut r| r.take());
        if let Some(running) = running {
            running.shutdown().await;
        }
    }
}
