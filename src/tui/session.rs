//! The session: the cloud the TUI drives and the devices it runs, opened
//! before the first frame and shut down after the last.
//!
//! Opened the one way every command opens a cloud
//! ([`crate::cloud::Connected::for_cockpit`]): on the local backend the data
//! dir (taking its lock), the embedded cloud's endpoint on `--mqtt-addr` and
//! its AWS API on `--api-addr`, devices run in-process with the device
//! agent; on AWS the account (the standard credential chain, `--region`,
//! `--endpoint-url`), the observer whose subscription feeds the traffic
//! pane, devices run against the account's endpoint. Every failure comes
//! back as words for the screen: the TUI shows them with what to do instead
//! of crashing.

use super::agent::{self, DeviceTarget};
use super::app::Header;
use super::worker::DeviceRunner;
use crate::cli::GlobalArgs;
use crate::cloud::open::OpenError;
use crate::cloud::{Cloud, Connected};
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
///
/// On AWS no call is made here, so a missing credential or a denied
/// permission shows up on the first refresh, in the status line, with what
/// to do; only what stops every call (no region, a broken fleet file) is a
/// full-screen explanation.
pub async fn open(global: &GlobalArgs) -> Result<Session, String> {
    let options = global.cloud_options();
    let connected = Connected::for_cockpit(&options, &global.serve())
        .await
        .map_err(|e| explain(global, &e))?;
    let cloud = connected.cloud();
    let header = Header {
        backend: connected.backend_label().to_string(),
        endpoint: connected.device_endpoint().map(|e| e.addr),
        api: connected
            .api_addr()
            .map(|a| crate::cli::env::endpoint_url(&a.to_string())),
        data_dir: Some(options.data_dir.display().to_string()),
        observer: connected
            .observer_state()
            .map(|state| state.borrow().clone()),
        tls_refused: 0,
    };
    // The local endpoint's address is known now; AWS's `iot:Data-ATS` host
    // may be learned only after init or a refresh: looked up per device.
    let target = match connected.device_endpoint() {
        Some(endpoint) if !connected.is_aws() => DeviceTarget::Local {
            addr: endpoint.addr,
            server_name: endpoint.server_name,
        },
        _ => DeviceTarget::Cloud(cloud.clone()),
    };
    let devices = Arc::new(
        agent::AgentRunner::with_target(connected.devices_dir().to_path_buf(), target)
            .with_mqtt(global.mqtt),
    );
    Ok(Session {
        cloud,
        devices,
        header,
        running: Some(Box::new(Running(Mutex::new(Some(connected))))),
    })
}

/// The words the TUI shows full-screen when the session cannot open.
fn explain(global: &GlobalArgs, e: &OpenError) -> String {
    let data_dir = global.data_dir();
    match (global.backend, e) {
        (crate::cli::Backend::Aws, e) => format!(
            "Cannot open the AWS backend:\n\n{e}\n\nThe TUI uses the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO) and --region; --endpoint-url points it at an emulator. Or run jitpilot without --backend aws for the embedded local cloud."
        ),
        (_, OpenError::Cloud(e)) => format!(
            "Cannot open the local cloud in {}:\n\n{e}\n\nIf another jitpilot (TUI, serve, fleet) owns this data dir, stop it or pick another with --data-dir.",
            data_dir.display()
        ),
        (_, OpenError::Api(e)) => format!(
            "The local cloud's AWS API could not start on {}:\n\n{e}",
            global.api_addr
        ),
        // The error itself names the flag to change.
        (_, OpenError::Endpoint(e)) => format!(
            "The MQTT endpoint could not start on {}:\n\n{e}",
            global.mqtt_addr
        ),
    }
}

/// The local endpoint or the AWS observer, shut down on quit. The endpoint
/// reloads its topic rules itself after a deploy or teardown (the local
/// cloud tells it), so the TUI drives the plain cloud.
struct Running(Mutex<Option<Connected>>);

#[async_trait::async_trait]
impl Shutdown for Running {
    async fn shutdown(self: Box<Self>) {
        let connected = self.0.lock().ok().and_then(|mut c| c.take());
        if let Some(connected) = connected {
            connected.shutdown().await;
        }
    }
}
