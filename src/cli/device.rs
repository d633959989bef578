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

use super::GlobalArgs;
use crate::cloud::{Connected, DeviceEndpoint};
use crate::rotation::wire::DeviceRow;
use crate::vocabulary::CrState;
use color_eyre::eyre::{bail, eyre};
use simulated_devices::{run_device, DeviceConfig, DeviceOutcome, DeviceReport, Goal, Progress};
use std::path::Path;

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

/// Where `connected`'s devices connect, or what to do when it is unknown.
pub(crate) fn endpoint_of(connected: &Connected) -> color_eyre::Result<DeviceEndpoint> {
    connected.device_endpoint().ok_or_else(|| {
        eyre!("the MQTT endpoint is unknown; start `jitpilot serve`, or with --backend aws give it with --iot-endpoint HOST[:PORT]")
    })
}

/// A device's configuration: its folder under `devices_dir`, the
/// endpoint's address and the name its certificate is verified against.
pub(crate) fn device_config(
    devices_dir: &Path,
    endpoint: &DeviceEndpoint,
    serial: &str,
) -> DeviceConfig {
    let mut config = DeviceConfig::new(serial, devices_dir.join(serial), endpoint.addr.clone());
    config.server_name = Some(endpoint.server_name.clone());
    config
}

/// Why the device in `folder` cannot run, when the device table says it
/// completed its rotation but the folder holds no manufacturer certificate:
/// another client (or an earlier folder) rotated it, its vendor certificate
/// was retired at 3c, and nothing here can connect any more. Without this
/// the device only reports its refused connects.
pub(crate) fn rotated_elsewhere(folder: &Path, state: Option<&str>) -> Option<String> {
    let completed = state == Some(CrState::CertRotationCompleted.as_str());
    let has_cert = folder
        .join(simulated_devices::creds::MANUFACTURER_CERT)
        .exists();
    (completed && !has_cert).then(|| {
        format!(
            "the device table says {} completed its rotation ({}), but {} holds no manufacturer certificate: another client or folder rotated it, and its vendor certificate was retired at 3c, so this folder cannot connect; restore the folder that rotated it, or start over with `jitpilot cleanup` and `jitpilot init`",
            folder
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            CrState::CertRotationCompleted,
            folder.display()
        )
    })
}

/// The device's `CrState` in the device table, if it has a row.
async fn cr_state(connected: &Connected, serial: &str) -> color_eyre::Result<Option<String>> {
    let rows = connected
        .cloud()
        .device_rows()
        .await
        .map_err(|e| eyre!("{e}"))?;
    Ok(rows
        .into_iter()
        .map(DeviceRow::from_item)
        .find(|row| row.serial() == Some(serial))
        .and_then(|row| row.raw_state().map(str::to_string)))
}

/// How long a completed step waits for the device table to show it. 3a's
/// row is written by the rotation function when JITP's registered event
/// reaches it (rule_jitp), which may be after the device has connected —
/// on AWS too; the other steps' rows are written before the device's answer.
const SETTLE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// The `CrState` the device table shows once the step that reached `goal`
/// is recorded.
fn recorded_state(goal: Goal) -> CrState {
    match goal {
        Goal::Jitp => CrState::ThingCreated,
        Goal::CreateCert => CrState::ManCertCreated,
        Goal::AckCert | Goal::Onboard => CrState::CertRotationCompleted,
    }
}

/// The device's `CrState` once it shows `reached` or a later state, or
/// anything else it shows at [`SETTLE_DEADLINE`]. Waiting also keeps an
/// in-process cloud up until the function's write is done.
async fn settled_cr_state(
    connected: &Connected,
    serial: &str,
    reached: CrState,
) -> color_eyre::Result<Option<String>> {
    let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        let state = cr_state(connected, serial).await?;
        let settled = match state.as_deref().map(CrState::parse) {
            Some(Some(now)) => now >= reached,
            // No row, or a state the walkthrough does not have: nothing to wait for.
            _ => true,
        };
        if settled || tokio::time::Instant::now() >= deadline {
            return Ok(state);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(500));
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
    let target = Connected::for_devices(&global.cloud_options(), None)
        .await
        .map_err(|e| eyre!("{e}"))?;
    let endpoint = match endpoint_of(&target) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            target.shutdown().await;
            return Err(e);
        }
    };
    let mut config = device_config(target.devices_dir(), &endpoint, serial);
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
            "no credentials for {serial} in {}: run `jitpilot init` (with `--devices N` for a fleet of N)",
            config.creds_dir.display()
        );
    }

    let state_before = cr_state(&target, serial).await.ok().flatten();
    if let Some(why) = rotated_elsewhere(&config.creds_dir, state_before.as_deref()) {
        target.shutdown().await;
        bail!("{why}");
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
    let cr_state = match &result {
        Ok(_) => settled_cr_state(&target, serial, recorded_state(step.goal())).await,
        Err(_) => cr_state(&target, serial).await,
    }
    .ok()
    .flatten();
    let summary = DeviceSummary {
        serial: serial.to_string(),
        endpoint: endpoint.addr.clone(),
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
