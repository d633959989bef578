//! Devices run in-process by the TUI, with the device agent of the
//! `simulated-devices` crate: each device uses only its credential folder
//! (`<data-dir>/devices/<serial>/`) and the endpoint address, exactly like
//! `sim-device` or a real device would.

use super::action::{DeviceProgress, WalkStep};
use super::worker::DeviceRunner;
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

#[async_trait::async_trait]
impl DeviceRunner for AgentRunner {
    async fn run(
        &self,
        serial: String,
        step: Option<WalkStep>,
        drop_next_response: bool,
        progress: mpsc::UnboundedSender<DeviceProgress>,
    ) -> Result<(), String> {
        let _ = (step, drop_next_response, progress);
        Err(format!(
            "the device agent (simulated-devices) is not in this build yet: run {serial} with `sim-device --endpoint {} --creds {}` once it is",
            self.endpoint,
            self.devices_dir.join(&serial).display()
        ))
    }
}
