//! The headless commands: one module per command, all sharing [`GlobalArgs`]
//! and the same cloud operations as the TUI.
//!
//! `--json` prints one JSON document on stdout; otherwise human text.
//! Logs never go to stdout. Exit code 0 only on success.

pub mod cleanup;
pub mod deploy;
pub mod device;
pub mod env;
pub mod fleet;
pub mod init;
pub mod serve;
pub mod status;
pub mod teardown;

use crate::cloud::open::{ApiConfig, Serve};
use crate::cloud::{Cloud, CloudOptions, EventBus};
use clap::{Args, ValueEnum};
use color_eyre::eyre::eyre;
use std::path::PathBuf;

/// Which cloud to run the walkthrough on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Backend {
    /// The embedded local cloud (offline, no account).
    #[default]
    Local,
    /// A real AWS account through aws-sdk-rust.
    Aws,
}

/// Options every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Where jitpilot keeps its state (database, keys, device credentials, logs).
    #[arg(long, global = true, env = "JITPILOT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The cloud to use.
    #[arg(long, global = true, value_enum, default_value_t = Backend::Local)]
    pub backend: Backend,
    /// AWS API endpoint override (for emulators), with `--backend aws`.
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// AWS region, with `--backend aws`.
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// MQTT data endpoint `HOST[:PORT]` with `--backend aws`, instead of the
    /// account's `iot:Data-ATS` (a custom domain, or a broker for testing).
    #[arg(long, global = true, env = "JITPILOT_IOT_ENDPOINT")]
    pub iot_endpoint: Option<String>,
    /// A CA certificate (PEM) the MQTT data endpoint chains to, trusted
    /// beside Amazon's roots with `--backend aws` (`jitpilot env` exports the
    /// local cloud's endpoint CA here).
    #[arg(long, global = true, env = "JITPILOT_IOT_ROOT_CA")]
    pub iot_root_ca: Option<PathBuf>,
    /// Print one machine-readable JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Address of the local MQTT endpoint (TUI and `serve`).
    #[arg(long, global = true, default_value = "127.0.0.1:8883")]
    pub mqtt_addr: String,
    /// Address of the local cloud's AWS API (TUI and `serve`); `off` disables it.
    #[arg(long, global = true, default_value = "127.0.0.1:4566")]
    pub api_addr: String,
    /// MQTT version the devices speak (`device`, `fleet`, the TUI's spawned
    /// devices): 3 (3.1.1), 5, or for a fleet `mixed` / `mixed:F` (a
    /// fraction F of MQTT 5 devices).
    #[arg(long, global = true, default_value = "3")]
    pub mqtt: simulated_devices::FleetMqtt,
}

impl GlobalArgs {
    /// The data dir: `--data-dir`, else `JITPILOT_DATA_DIR`, else the platform data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("jitpilot")
        })
    }
}

impl GlobalArgs {
    /// The AWS API's settings from `--api-addr`; `None` for `off`.
    pub fn api_config(&self) -> Option<ApiConfig> {
        let addr = self.api_addr.trim();
        if addr.eq_ignore_ascii_case("off") {
            return None;
        }
        Some(ApiConfig {
            addr: addr.to_string(),
            ..Default::default()
        })
    }

    /// What `--backend`, `--data-dir` and the AWS flags say to open.
    pub fn cloud_options(&self) -> CloudOptions {
        CloudOptions {
            backend: match self.backend {
                Backend::Local => crate::cloud::Backend::Local,
                Backend::Aws => crate::cloud::Backend::Aws,
            },
            data_dir: self.data_dir(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            iot_endpoint: self.iot_endpoint.clone(),
            iot_root_ca: self.iot_root_ca.clone(),
        }
    }

    /// Opens the cloud `--backend` names for a control-plane command
    /// (see [`crate::cloud::open::open`]).
    pub async fn open_cloud(&self, bus: EventBus) -> color_eyre::Result<Box<dyn Cloud>> {
        crate::cloud::open::open(&self.cloud_options(), bus)
            .await
            .map_err(|e| eyre!("{e}"))
    }

    /// Where the local cloud's endpoint and AWS API listen when this
    /// process runs them (`--mqtt-addr`, `--api-addr`).
    pub fn serve(&self) -> Serve {
        Serve {
            mqtt_addr: self.mqtt_addr.clone(),
            api: self.api_config(),
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> color_eyre::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
