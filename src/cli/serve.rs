//! `jitpilot serve`.

use super::GlobalArgs;

/// Runs `jitpilot serve`.
pub async fn run(_global: &GlobalArgs) -> color_eyre::Result<()> {
    color_eyre::eyre::bail!("`jitpilot serve` is not implemented yet")
}
