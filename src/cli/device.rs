//! `jitpilot device SERIAL jitp|create-cert|ack-cert|onboard`: the sample's
//! `mqtt_client.py --jitp/--create_cert/--ack_cert`, run by the same device
//! agent the TUI and `fleet` use (`simulated-devices`).
//!
//! On the local cloud, the device connects to the running `serve` (or TUI)
//! when `<data-dir>/endpoint.addr` names one that answers; otherwise this
//! command starts the local cloud in-process on a free port for the run.
//! With `--backend aws` it connects to the account's `iot:Data-ATS`
//! endpoint (or `--iot-endpoint HOST[:PORT]`), trusting the `root-ca.pem`
//! init put in its folder (Amazon's root CAs), and reads its `CrState`
//! from DynamoDB.

use super::{Backend, GlobalArgs};
use crate::cloud::aws::{table, AwsCloud};
use crate::cloud::local::runtime::{self, RunningCloud};
use crate::cloud::local::{endpoint_ca, LocalCloud};
use crate::cloud::{Cloud, EventBus};
use crate::fleet::Fleet;
use crate::rotation::wire::Item;
use crate::vocabulary::ATTR_CR_STATE;
use crate::vocabulary::{DEVICE_TABLE, STACK_NAME};
use color_eyre::eyre::{bail, eyre};
use simulated_devices::{run_device, DeviceConfig, DeviceOutcome, DeviceReport, Goal, Progress};
use std::path::PathBuf;

/// The walkthrough step to run for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceStep {
    /// 3a: connect with the vendor cert until JITP has provisioned it.
    Jitp,
    /// 3b: send a CSR, receive and store the manufacturer cert.
    CreateCert,
    /// 3c: connect with the manufacturer cert and acknowledge it.
    AckCert,
    /// 3a, 3b and 3c.
    Onboard,
}

impl DeviceStep {
    /// The device agent's goal for this step.
    pub fn goal(self) -> Goal {
        match self {
            DeviceStep::Jitp => Goal::Jitp,
            DeviceStep::CreateCert => Goal::CreateCert,
            DeviceStep::AckCert => Goal::AckCert,
            DeviceStep::Onboard => Goal::Onboard,
        }
    }
}

/// The cloud a device command reads state from.
// One per command: the running cloud's size (endpoint, AWS API, functions) does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum TargetCloud {
    /// The local cloud: writable when it runs in this process, read-only
    /// beside `serve`; `running` is the in-process endpoint, if started.
    Local {
        cloud: LocalCloud,
        running: Option<RunningCloud>,
    },
    /// An AWS account: devices connect to its `iot:Data-ATS` endpoint (or
    /// `--iot-endpoint`), state is read from DynamoDB.
    Aws(AwsCloud),
}

/// Where devices connect for this command, and the cloud to read state from.
pub(crate) struct Target {
    /// `host:port` of the MQTT endpoint.
    pub addr: String,
    /// The name the endpoint's server certificate is verified against.
    server_name: String,
    /// `<data-dir>/devices`: one credential folder per serial.
    devices_dir: PathBuf,
    pub cloud: TargetCloud,
}

impl Target {
    /// The endpoint of `--backend`: on the local cloud, a running endpoint
    /// or one started in-process (`prepare` runs on the writable cloud
    /// before it starts, e.g. `init` for fleet); on AWS, the account's
    /// data endpoint.
    pub async fn resolve(
        global: &GlobalArgs,
        prepare: impl FnOnce(&LocalCloud) -> color_eyre::Result<()>,
    ) -> color_eyre::Result<Target> {
        match global.backend {
            Backend::Local => Target::resolve_local(global, prepare).await,
            Backend::Aws => Target::resolve_aws(global).await,
        }
    }

    async fn resolve_local(
        global: &GlobalArgs,
        prepare: impl FnOnce(&LocalCloud) -> color_eyre::Result<()>,
    ) -> color_eyre::Result<Target> {
        let data_dir = global.data_dir();
        let server_name = endpoint_ca::SERVER_NAME.to_string();
        if let Some(addr) = serving_endpoint(&data_dir)? {
            let cloud = LocalCloud::open_read_only(&data_dir).map_err(|e| eyre!("{e}"))?;
            return Ok(Target {
                addr,
                server_name,
                devices_dir: cloud.data_dir().devices_dir(),
                cloud: TargetCloud::Local {
                    cloud,
                    running: None,
                },
            });
        }
        let cloud = LocalCloud::open(&data_dir, EventBus::default()).map_err(|e| eyre!("{e}"))?;
        if cloud.store().get_stack(STACK_NAME)?.is_none() {
            bail!(
                "the stack is not deployed in {}: run `jitpilot deploy` first",
                data_dir.display()
            );
        }
        prepare(&cloud)?;
        // Port 0: an in-process endpoint never collides with another one.
        let running = runtime::start(&cloud, "127.0.0.1:0").await?;
        Ok(Target {
            addr: running.local_addr().to_string(),
            server_name,
            devices_dir: cloud.data_dir().devices_dir(),
            cloud: TargetCloud::Local {
                cloud,
                running: Some(running),
            },
        })
    }

    async fn resolve_aws(global: &GlobalArgs) -> color_eyre::Result<Target> {
        let cloud = super::backend::open_aws(global, EventBus::default()).await?;
        let endpoint = match cloud.device_endpoint() {
            Some(endpoint) => endpoint,
            None => {
                // Not remembered yet (init was run elsewhere): ask once.
                cloud.data_ats_host().await.map_err(|e| eyre!("{e}"))?;
                cloud.device_endpoint().ok_or_else(|| {
                    eyre!("the account's iot:Data-ATS endpoint is unknown; give it with --iot-endpoint HOST[:PORT]")
                })?
            }
        };
        Ok(Target {
            addr: endpoint.addr,
            server_name: endpoint.server_name,
            devices_dir: global.data_dir().join("devices"),
            cloud: TargetCloud::Aws(cloud),
        })
    }

    /// True when the endpoint runs in this process.
    pub fn in_process(&self) -> bool {
        matches!(
            self.cloud,
            TargetCloud::Local {
                running: Some(_),
                ..
            }
        )
    }

    /// The fleet definition (serials, subjects).
    pub fn fleet(&self) -> &Fleet {
        match &self.cloud {
            TargetCloud::Local { cloud, .. } => cloud.fleet(),
            TargetCloud::Aws(cloud) => cloud.fleet(),
        }
    }

    /// The credential folder of `serial`.
    pub fn device_dir(&self, serial: &str) -> PathBuf {
        self.devices_dir.join(serial)
    }

    /// A device config for `serial` against this endpoint.
    pub fn device_config(&self, serial: &str) -> DeviceConfig {
        let mut config = DeviceConfig::new(serial, self.device_dir(serial), self.addr.clone());
        config.server_name = Some(self.server_name.clone());
        config
    }

    /// The device's `CrState` in the device table, if it has a row.
    pub async fn cr_state(&self, serial: &str) -> color_eyre::Result<Option<String>> {
        let item = match &self.cloud {
            TargetCloud::Local { cloud, .. } => cloud.store().get_item(DEVICE_TABLE, serial)?,
            TargetCloud::Aws(cloud) => table::get(cloud, DEVICE_TABLE, serial)
                .await
                .map_err(|e| eyre!("{e}"))?,
        };
        Ok(item.and_then(|item| {
            item.get(ATTR_CR_STATE)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        }))
    }

    /// Every row of the device table.
    pub async fn table_rows(&self) -> color_eyre::Result<Vec<Item>> {
        match &self.cloud {
            TargetCloud::Local { cloud, .. } => Ok(cloud.store().scan(DEVICE_TABLE)?),
            TargetCloud::Aws(cloud) => table::scan(cloud, DEVICE_TABLE)
                .await
                .map_err(|e| eyre!("{e}")),
        }
    }

    /// Stops the in-process endpoint, if any.
    pub async fn shutdown(self) {
        if let TargetCloud::Local {
            running: Some(running),
            ..
        } = self.cloud
        {
            running.shutdown().await;
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
fn serving_endpoint(data_dir: &std::path::Path) -> color_eyre::Result<Option<String>> {
    use crate::datadir::{DataDir, DataDirError};
    let dir = DataDir::new(data_dir);
    if !data_dir.exists() {
        return Ok(None);
    }
    match dir.lock("jitpilot device (checking for a running cloud)") {
        // Nobody owns it: no endpoint runs. Released at once for our own open.
        Ok(_lock) => Ok(None),
        Err(DataDirError::Locked { owner, .. }) => match dir.read_endpoint_addr() {
            Some(addr) => Ok(Some(addr)),
            None => bail!(
                "the data dir {} is in use by {owner}, which runs no MQTT endpoint; wait for it to finish, or start `jitpilot serve` when it has",
                data_dir.display()
            ),
        },
        Err(e) => Err(eyre!("{e}")),
    }
}

/// What `jitpilot device --json` prints.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceSummary {
    serial: String,
    endpoint: String,
    /// True when the command started the local cloud itself.
    in_process: bool,
    /// `CrState` in the device table after the run.
    cr_state: Option<String>,
    outcome: Option<DeviceOutcome>,
    error: Option<String>,
    reports: Vec<DeviceReport>,
}

/// Runs one device step.
pub async fn run(global: &GlobalArgs, serial: &str, step: DeviceStep) -> color_eyre::Result<()> {
    let _log = crate::logging::init_file_logging(&global.data_dir());
    let target = Target::resolve(global, |_| Ok(())).await?;
    let mut config = target.device_config(serial);
    config.mqtt = match global.mqtt {
        simulated_devices::FleetMqtt::All(version) => version,
        simulated_devices::FleetMqtt::Mixed { .. } => {
            target.shutdown().await;
            bail!("--mqtt mixed is for fleets and the TUI; one device speaks --mqtt 3 or --mqtt 5")
        }
    };
    if !config
        .creds_dir
        .join(simulated_devices::creds::VENDOR_CERT)
        .exists()
        && !config
            .creds_dir
            .join(simulated_devices::creds::MANUFACTURER_CERT)
            .exists()
    {
        target.shutdown().await;
        bail!(
            "no credentials for {serial} in {}: run `jitpilot init` (with `--devices N` for more serials)",
            config.creds_dir.display()
        );
    }

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DeviceReport>();
    let human = !global.json;
    let printer = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(report) = rx.recv().await {
            if human {
                println!("{}", report_line(&report));
            }
            all.push(report);
        }
        all
    });
    let result = run_device(config, step.goal(), Some(tx)).await;
    let reports = printer.await.unwrap_or_default();
    let cr_state = target.cr_state(serial).await.ok().flatten();
    let summary = DeviceSummary {
        serial: serial.to_string(),
        endpoint: target.addr.clone(),
        in_process: target.in_process(),
        cr_state,
        error: result.as_ref().err().map(|e| e.to_string()),
        outcome: result.ok(),
        reports,
    };
    target.shutdown().await;

    if global.json {
        super::print_json(&summary)?;
    } else if let Some(outcome) = &summary.outcome {
        for s in &outcome.steps {
            if s.ran {
                println!(
                    "step {} done in {:.1} ms ({} attempt{})",
                    s.step,
                    s.duration.as_secs_f64() * 1000.0,
                    s.attempts,
                    if s.attempts == 1 { "" } else { "s" }
                );
            }
        }
        if let Some(id) = &outcome.manufacturer_cert_id {
            println!("manufacturer cert {id}");
        }
        println!(
            "{serial}: CrState {}",
            summary
                .cr_state
                .as_deref()
                .unwrap_or("(no row in CertRotationDevices)")
        );
    }
    match summary.error {
        Some(error) => bail!("{error}"),
        None => Ok(()),
    }
}

/// One progress line: `3a retrying  (attempt 1) connection refused ...`.
fn report_line(report: &DeviceReport) -> String {
    let state = match report.state {
        Progress::Started => "started",
        Progress::Info => "",
        Progress::Retrying => "retrying",
        Progress::Completed => "done",
        Progress::Skipped => "skipped",
        Progress::Failed => "FAILED",
    };
    format!("{} {:<9} {}", report.step, state, report.message)
}
