//! `jitpilot init`.

use super::GlobalArgs;

/// Runs `jitpilot init`.
pub async fn run(_global: &GlobalArgs, _devices: usize) -> color_eyre::Result<()> {
    color_eyre::eyre::bail!("`jitpilot init` is not implemented yet")
}
