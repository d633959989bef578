//! Opening the cloud the walkthrough runs on — one way for every command
//! and the TUI, whichever backend `--backend` names.
//!
//! - [`open`]: the control plane only (`deploy`, `init`, `cleanup`,
//!   `teardown`): the local cloud owning its data dir, or the AWS backend.
//! - [`open_to_read`]: `status`, beside a running TUI or `serve`.
//! - [`Connected`]: a cloud devices connect to (`device`, `fleet`, the
//!   TUI): on the local cloud the endpoint of the process that owns the data
//!   dir, or one this process runs; on AWS the account's `iot:Data-ATS`
//!   endpoint (or `--iot-endpoint`), with the TUI's observer.
//!
//! Above this module nothing names the local cloud's or the AWS backend's
//! internals: what a caller needs of either is here or on [`Cloud`].

use super::aws::observer::Observer;
use super::aws::{AwsCloud, AwsOptions};
use super::local::endpoint::EndpointConfig;
use super::local::runtime::{self, RunningCloud, RuntimeError};
use super::local::LocalCloud;
use super::{Cloud, CloudError, CloudResult, DeviceEndpoint, EventBus};
use crate::datadir::{DataDir, DataDirError};
use crate::fleet::Fleet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::aws::observer::ObserverState;
pub use super::aws::pacing::{RegistrationPacer, DEFAULT_AWS_RATE};
pub use super::local::api::server::ApiConfig;
pub use super::local::lambda_runtime::deploy::set_function_code as set_local_function_code;

/// The local cloud's AWS API as outside clients sign for it (`jitpilot
/// env`): the data dir's access key and the region it answers for.
pub mod local_api {
    pub use crate::cloud::local::api::credentials::{load as load_keys, CREDENTIALS_FILE};
    pub use crate::cloud::local::LOCAL_REGION as REGION;
}

/// Which cloud the walkthrough runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The embedded local cloud (offline, no account).
    #[default]
    Local,
    /// A real AWS account (or an emulator) through aws-sdk-rust.
    Aws,
}

/// Everything needed to open a cloud: the global options of every command.
#[derive(Debug, Clone, Default)]
pub struct CloudOptions {
    pub backend: Backend,
    /// Where jitpilot keeps its state.
    pub data_dir: PathBuf,
    /// AWS only: region, API endpoint override, MQTT data endpoint
    /// `HOST[:PORT]`, and a CA that endpoint chains to.
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub iot_endpoint: Option<String>,
    pub iot_root_ca: Option<PathBuf>,
}

impl CloudOptions {
    async fn aws(&self, bus: EventBus) -> CloudResult<AwsCloud> {
        let mut options = AwsOptions::new(
            self.data_dir.clone(),
            self.region.clone(),
            self.endpoint_url.clone(),
        );
        options.iot_endpoint = self.iot_endpoint.clone();
        options.iot_root_ca = self.iot_root_ca.clone();
        AwsCloud::connect(options, bus).await
    }
}

/// Opens the cloud for the control plane. The local cloud takes the data
/// dir's lock for writing (a second writer gets an error naming the owner);
/// the AWS backend keeps only device credentials, the observer identity and
/// the endpoint name in the data dir.
pub async fn open(options: &CloudOptions, bus: EventBus) -> CloudResult<Box<dyn Cloud>> {
    Ok(match options.backend {
        Backend::Local => Box::new(LocalCloud::open(&options.data_dir, bus)?),
        Backend::Aws => Box::new(options.aws(bus).await?),
    })
}

/// Opens the cloud to read it back, beside whichever process owns it: the
/// local cloud read-only (never created: a missing database is an error).
pub async fn open_to_read(options: &CloudOptions) -> CloudResult<Box<dyn Cloud>> {
    Ok(match options.backend {
        Backend::Local => Box::new(LocalCloud::open_read_only(&options.data_dir)?),
        Backend::Aws => Box::new(options.aws(EventBus::default()).await?),
    })
}

/// Where this process runs the local cloud's endpoint and AWS API (the TUI).
#[derive(Debug, Clone)]
pub struct Serve {
    /// `host:port` of the MQTT endpoint.
    pub mqtt_addr: String,
    /// The AWS API's settings; `None` for `--api-addr off`.
    pub api: Option<ApiConfig>,
}

/// Why a cloud for devices could not be opened, in the words the TUI
/// shows full-screen.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The cloud itself: the data dir's lock, the database, AWS settings.
    #[error("{0}")]
    Cloud(#[from] CloudError),
    /// The local MQTT endpoint could not listen (the message names the flag).
    #[error("{0}")]
    Endpoint(String),
    /// The local AWS API could not listen.
    #[error("{0}")]
    Api(String),
}

/// What keeps running for devices until [`Connected::shutdown`].
enum Running {
    /// Nothing of ours: devices connect to another process or to AWS.
    Nothing,
    /// The local cloud's endpoint (and API) in this process.
    Local(RunningCloud),
    /// The AWS observer feeding the TUI's traffic pane.
    Observer(Observer),
}

/// A cloud that devices connect to, with what they need: the fleet, their
/// credential folders, the endpoint.
pub struct Connected {
    cloud: Arc<dyn Cloud>,
    fleet: Fleet,
    devices_dir: PathBuf,
    backend_label: String,
    running: Running,
}

impl Connected {
    /// For `device` and `fleet`. On the local cloud: the endpoint of the
    /// process that owns the data dir (`serve`, the TUI), read-only beside
    /// it; otherwise the cloud opened here, `init` run for `init_devices`
    /// when given, and its endpoint started in-process on a free port. On
    /// AWS: the account's endpoint, `init` run for `init_devices` when given.
    pub async fn for_devices(
        options: &CloudOptions,
        init_devices: Option<usize>,
    ) -> CloudResult<Connected> {
        match options.backend {
            Backend::Local => Connected::local_for_devices(options, init_devices).await,
            Backend::Aws => {
                let cloud = options.aws(EventBus::default()).await?;
                if cloud.device_endpoint().is_none() {
                    // Not remembered yet (init was run elsewhere): ask once.
                    cloud.data_ats_host().await?;
                }
                if cloud.device_endpoint().is_none() {
                    return Err(CloudError::Other("the account's iot:Data-ATS endpoint is unknown; give it with --iot-endpoint HOST[:PORT]".into()));
                }
                if let Some(devices) = init_devices {
                    // Idempotent: whitelists and issues factory credentials
                    // only for serials that lack them.
                    cloud.init(devices).await?;
                }
                Ok(Connected::aws(cloud, Running::Nothing))
            }
        }
    }

    async fn local_for_devices(
        options: &CloudOptions,
        init_devices: Option<usize>,
    ) -> CloudResult<Connected> {
        let data_dir = &options.data_dir;
        if serving_endpoint(data_dir)?.is_some() {
            let cloud = LocalCloud::open_read_only(data_dir)?;
            return Ok(Connected::local(cloud, Running::Nothing));
        }
        let cloud = LocalCloud::open(data_dir, EventBus::default())?;
        if cloud
            .store()
            .get_stack(crate::vocabulary::STACK_NAME)?
            .is_none()
        {
            return Err(CloudError::Other(format!(
                "the stack is not deployed in {}: run `jitpilot deploy` first",
                data_dir.display()
            )));
        }
        if let Some(devices) = init_devices {
            cloud.init(devices).await?;
        }
        // Port 0: an in-process endpoint never collides with another one.
        let running = runtime::start(&cloud, "127.0.0.1:0")
            .await
            .map_err(|e| CloudError::Other(e.to_string()))?;
        Ok(Connected::local(cloud, Running::Local(running)))
    }

    /// For the TUI and `serve`: the local cloud owning its data dir with its
    /// endpoint and AWS API on `serve`'s addresses; or the AWS backend with the
    /// observer whose subscription feeds the traffic pane (no AWS call is
    /// made here: a missing credential shows on the first refresh).
    pub async fn for_cockpit(
        options: &CloudOptions,
        serve: &Serve,
    ) -> Result<Connected, OpenError> {
        match options.backend {
            Backend::Aws => {
                let cloud = options.aws(EventBus::default()).await?;
                let observer = Observer::start(cloud.clone());
                Ok(Connected::aws(cloud, Running::Observer(observer)))
            }
            Backend::Local => {
                let cloud = LocalCloud::open(&options.data_dir, EventBus::default())?;
                let endpoint = EndpointConfig {
                    addr: serve.mqtt_addr.clone(),
                    ..EndpointConfig::default()
                };
                let running = runtime::start_serving(&cloud, endpoint, serve.api.clone())
                    .await
                    .map_err(|e| match e {
                        RuntimeError::Api(_) => OpenError::Api(e.to_string()),
                        e => OpenError::Endpoint(e.to_string()),
                    })?;
                Ok(Connected::local(cloud, Running::Local(running)))
            }
        }
    }

    fn local(cloud: LocalCloud, running: Running) -> Connected {
        Connected {
            fleet: cloud.fleet().clone(),
            devices_dir: cloud.data_dir().devices_dir(),
            backend_label: "local".into(),
            cloud: Arc::new(cloud),
            running,
        }
    }

    fn aws(cloud: AwsCloud, running: Running) -> Connected {
        Connected {
            fleet: cloud.fleet().clone(),
            devices_dir: crate::cloud::control::init::devices_dir(&cloud.options().data_dir),
            backend_label: format!("aws {}", cloud.clients().region),
            cloud: Arc::new(cloud),
            running,
        }
    }

    /// The cloud, for its operations and event stream.
    pub fn cloud(&self) -> Arc<dyn Cloud> {
        self.cloud.clone()
    }

    /// `local`, or `aws <region>`.
    pub fn backend_label(&self) -> &str {
        &self.backend_label
    }

    /// The fleet definition (serials, subjects).
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// `<data-dir>/devices`: one credential folder per serial.
    pub fn devices_dir(&self) -> &Path {
        &self.devices_dir
    }

    /// Where devices connect, as far as it is known now (on AWS the
    /// `iot:Data-ATS` host may be learned later).
    pub fn device_endpoint(&self) -> Option<DeviceEndpoint> {
        self.cloud.device_endpoint()
    }

    /// True when the local endpoint runs in this process.
    pub fn in_process(&self) -> bool {
        matches!(self.running, Running::Local(_))
    }

    /// True for the AWS backend: devices there wait seconds, not
    /// milliseconds, for JITP.
    pub fn is_aws(&self) -> bool {
        self.cloud.backend() == "aws"
    }

    /// The local AWS API's address, when this process runs it.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        match &self.running {
            Running::Local(running) => running.api_addr(),
            _ => None,
        }
    }

    /// The AWS observer's state, now and as it changes.
    pub fn observer_state(&self) -> Option<tokio::sync::watch::Receiver<ObserverState>> {
        match &self.running {
            Running::Observer(observer) => Some(observer.state()),
            _ => None,
        }
    }

    /// Stops what this process runs: the local endpoint (sessions closed,
    /// store flushed, the address file removed) or the AWS observer.
    pub async fn shutdown(self) {
        match self.running {
            Running::Nothing => {}
            Running::Local(running) => running.shutdown().await,
            Running::Observer(observer) => observer.stop().await,
        }
    }
}

/// The endpoint of the process that owns the data dir, if one does.
///
/// Decided by the data dir's lock, not by probing the port: a busy
/// endpoint (its backlog full of someone's idle sockets) may not answer a
/// probe in time, and must not be mistaken for none — the device's own
/// connect retries are the right way to wait for it. A lock held by a
/// process that runs no endpoint (e.g. `init`) is a clear error; a free
/// lock means no cloud runs, whatever a stale `endpoint.addr` says.
fn serving_endpoint(data_dir: &Path) -> CloudResult<Option<String>> {
    let dir = DataDir::new(data_dir);
    if !data_dir.exists() {
        return Ok(None);
    }
    match dir.lock("jitpilot device (checking for a running cloud)") {
        // Nobody owns it: no endpoint runs. Released at once for our own open.
        Ok(_lock) => Ok(None),
        Err(DataDirError::Locked { owner, .. }) => match dir.read_endpoint_addr() {
            Some(addr) => Ok(Some(addr)),
            None => Err(CloudError::Other(format!(
                "the data dir {} is in use by {owner}, which runs no MQTT endpoint; wait for it to finish, or start `jitpilot serve` when it has",
                data_dir.display()
            ))),
        },
        Err(e) => Err(CloudError::Other(e.to_string())),
    }
}
