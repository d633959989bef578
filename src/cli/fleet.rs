//! `jitpilot fleet --devices N [--concurrency C] [--loss P]`.

use super::GlobalArgs;

/// Options of `jitpilot fleet`.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// How many devices to onboard (whitelisted and given factory credentials if needed).
    #[arg(long, default_value_t = 10)]
    pub devices: usize,
    /// How many devices run at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Fraction of cloud responses the devices drop, to exercise retries (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
}

/// Runs a fleet.
pub async fn run(_global: &GlobalArgs, _args: &FleetArgs) -> color_eyre::Result<()> {
    color_eyre::eyre::bail!("`jitpilot fleet` is not implemented yet")
}
