//! `jitpilot device SERIAL jitp|create-cert|ack-cert|onboard`.

use super::GlobalArgs;

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

/// Runs one device step.
pub async fn run(_global: &GlobalArgs, _serial: &str, _step: DeviceStep) -> color_eyre::Result<()> {
    color_eyre::eyre::bail!("`jitpilot device` is not implemented yet")
}
