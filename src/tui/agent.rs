//! Devices run in-process by the TUI, with the device agent of the
//! `simulated-devices` crate: each device uses only its credential folder
//! (`<data-dir>/devices/<serial>/`) and the endpoint address, exactly like
//! `sim-device` or a real device would.
//!
//! On the local cloud the endpoint is the one this process runs; on AWS it
//! is the account's `iot:Data-ATS` endpoint (or `--iot-endpoint`), looked up
//! when a device starts, because `init` or a refresh may learn it only
//! after the TUI opened.

use super::action::{DeviceProgress, ProgressState, WalkStep};
use super::worker::DeviceRunner;
use crate::cloud::Cloud;
use simulated_devices::{
    run_device, DeviceConfig, DeviceReport, FleetMqtt, Goal, Progress, RetryPolicy, Step,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where the devices connect.
pub enum DeviceTarget {
    /// The endpoint this process runs, at `addr`, its certificate
    /// verified against `server_name`.
    Local { addr: String, server_name: String },
    /// Wherever the cloud says devices connect (AWS: `iot:Data-ATS`), with
    /// the server's name verified against the certificate it presents.
    Cloud(Arc<dyn Cloud>),
}

/// Runs devices with the device agent against the target endpoint.
pub struct AgentRunner {
    devices_dir: PathBuf,
    target: DeviceTarget,
    /// The MQTT version each spawned device speaks (`jitpilot --mqtt`).
    mqtt: FleetMqtt,
}

impl AgentRunner {
    /// Devices whose folders are under `devices_dir`, connecting to `target`.
    pub fn with_target(devices_dir: PathBuf, target: DeviceTarget) -> AgentRunner {
        AgentRunner {
            devices_dir,
            target,
            mqtt: FleetMqtt::default(),
        }
    }

    /// Devices speak `mqtt` (3.1.1, 5, or a mix spread over the serials).
    pub fn with_mqtt(mut self, mqtt: FleetMqtt) -> AgentRunner {
        self.mqtt = mqtt;
        self
    }

    /// The device's configuration for this target, or why it cannot run yet.
    fn config(&self, serial: &str) -> Result<DeviceConfig, String> {
        let mut config = self.target_config(serial)?;
        // A stable spread of a mix over the serials: their trailing number.
        let index = serial.bytes().fold(0usize, |n, b| {
            n.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        config.mqtt = self.mqtt.for_device(index % 1000);
        Ok(config)
    }

    fn target_config(&self, serial: &str) -> Result<DeviceConfig, String> {
        let creds = self.devices_dir.join(serial);
        match &self.target {
            DeviceTarget::Local { addr, server_name } => {
                let mut config = DeviceConfig::new(serial, creds, addr.clone());
                config.server_name = Some(server_name.clone());
                Ok(config)
            }
            DeviceTarget::Cloud(cloud) => {
                let endpoint = cloud.device_endpoint().ok_or_else(|| {
                    "the account's MQTT endpoint (iot:Data-ATS) is not known yet: press r to look it up (DescribeEndpoint), or restart with --iot-endpoint HOST[:PORT]".to_string()
                })?;
                let mut config = DeviceConfig::new(serial, creds, endpoint.addr);
                config.server_name = Some(endpoint.server_name);
                // JITP on AWS takes seconds (registration, the template, the
                // rule's Lambda), not milliseconds: retry longer, wait longer.
                config.retry = RetryPolicy {
                    base: Duration::from_millis(500),
                    cap: Duration::from_secs(10),
                    max_connect_attempts: 12,
                    max_request_attempts: 6,
                };
                config.response_timeout = Duration::from_secs(15);
                Ok(config)
            }
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
        let mut config = self.config(&serial)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{Backend, CloudOptions, EventBus};

    async fn aws(dir: &std::path::Path, iot_endpoint: Option<&str>) -> Arc<dyn Cloud> {
        let options = CloudOptions {
            backend: Backend::Aws,
            data_dir: dir.to_path_buf(),
            region: Some("us-east-1".into()),
            endpoint_url: Some("http://127.0.0.1:9".into()),
            iot_endpoint: iot_endpoint.map(str::to_string),
            iot_root_ca: None,
        };
        Arc::from(
            crate::cloud::open::open(&options, EventBus::default())
                .await
                .expect("opens without calling AWS"),
        )
    }

    #[test]
    fn local_devices_verify_the_local_endpoints_name() {
        let runner = AgentRunner::with_target(
            "/d".into(),
            DeviceTarget::Local {
                addr: "127.0.0.1:8883".into(),
                server_name: "localhost".into(),
            },
        );
        let config = runner.config("dev1").expect("a config");
        assert_eq!(config.endpoint, "127.0.0.1:8883");
        assert_eq!(config.server_name.as_deref(), Some("localhost"));
        assert_eq!(config.creds_dir, PathBuf::from("/d/dev1"));
    }

    #[tokio::test]
    async fn aws_devices_dial_the_accounts_endpoint_and_verify_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runner = AgentRunner::with_target(
            dir.path().join("devices"),
            DeviceTarget::Cloud(aws(dir.path(), Some("a1-ats.iot.eu-west-1.amazonaws.com")).await),
        );
        let config = runner.config("dev1").expect("a config");
        assert_eq!(config.endpoint, "a1-ats.iot.eu-west-1.amazonaws.com:8883");
        assert_eq!(
            config.server_name.as_deref(),
            Some("a1-ats.iot.eu-west-1.amazonaws.com")
        );
        // JITP on AWS takes seconds: more patience than on the local cloud.
        assert!(config.retry.cap > RetryPolicy::default().cap);
        assert!(config.response_timeout > DeviceConfig::new("x", "/x", "h:1").response_timeout);
    }

    #[tokio::test]
    async fn aws_devices_without_a_known_endpoint_say_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runner = AgentRunner::with_target(
            dir.path().join("devices"),
            DeviceTarget::Cloud(aws(dir.path(), None).await),
        );
        let why = runner.config("dev1").expect_err("no endpoint yet");
        assert!(
            why.contains("press r") && why.contains("--iot-endpoint"),
            "{why}"
        );
    }
}
