//! Devices run in-process by the TUI, with the device agent of the
//! `simulated-devices` crate: each device uses only its credential folder
//! (`<data-dir>/devices/<serial>/`) and the endpoint address, exactly like
//! `sim-device` or a real device would.

use super::action::{DeviceProgress, ProgressState, WalkStep};
use super::worker::DeviceRunner;
use crate::cloud::local::endpoint_ca::SERVER_NAME;
use simulated_devices::{run_device, DeviceConfig, DeviceReport, Goal, Progress, Step};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Runs devices with the device agent against the local endpoint.
pub struct AgentRunner {
    devices_dir: PathBuf,
    endpoint: String,
}

impl AgentRunner {
    /// Devices whose folders are under `devices_dir`, connecting to `endpoint`.
    pub fn new(devices_dir: PathBuf, endpoint: String) -> AgentRunner {
        AgentRunner {
            devices_dir,
            endpoint,
        }
    }
}

fn walk_step(step: Step) -> WalkStep {
    match step {
        Step::Jitp => WalkStep::Jitp,
        Step::CreateCert => WalkStep::CreateCert,
        Step::AckCert => WalkStep::AckCert,
    }
}

/// The agent's report in the TUI's terms.
pub fn progress_of(report: DeviceReport) -> DeviceProgress {
    let state = match report.state {
        Progress::Started | Progress::Info | Progress::Retrying => ProgressState::Running,
        Progress::Completed | Progress::Skipped => ProgressState::StepDone,
        Progress::Failed => ProgressState::Failed,
    };
    DeviceProgress {
        serial: report.serial,
        step: walk_step(report.step),
        state,
        attempt: report.attempt,
        message: report.message,
        at: report.at,
    }
}

#[async_trait::async_trait]
impl DeviceRunner for AgentRunner {
    async fn run(
        &self,
        serial: String,
        step: Option<WalkStep>,
        drop_next_response: bool,
        progress: mpsc::UnboundedSender<DeviceProgress>,
    ) -> Result<(), String> {
        let mut config = DeviceConfig::new(
            serial.clone(),
            self.devices_dir.join(&serial),
            self.endpoint.clone(),
        );
        config.server_name = Some(SERVER_NAME.to_string());
        if drop_next_response {
            // Exactly the next response is lost: the device times out and
            // asks again, and the rotation function answers the repeat identically.
            config.drop_responses = 1;
        }
        // One step at a time, like the sample's `mqtt_client.py --jitp`,
        // `--create_cert`, `--ack_cert`; `None` is the whole onboarding.
        let goal = match step {
            Some(WalkStep::Jitp) => Goal::Jitp,
            Some(WalkStep::CreateCert) => Goal::CreateCert,
            Some(WalkStep::AckCert) => Goal::AckCert,
            None => Goal::Onboard,
        };
        // Convert the agent's reports on the way through, without blocking it.
        let (tx, mut rx) = mpsc::unbounded_channel::<DeviceReport>();
        let forward = tokio::spawn(async move {
            while let Some(report) = rx.recv().await {
                if progress.send(progress_of(report)).is_err() {
                    break;
                }
            }
        });
        let result = run_device(config, goal, Some(tx)).await;
        // The sender went with `run_device`: the forwarder ends after the last report.
        let _ = forward.await;
        result.map(|_| ()).map_err(|e| e.to_string())
    }
}
