//! `jitpilot status`.

use super::GlobalArgs;

/// Runs `jitpilot status`.
pub async fn run(_global: &GlobalArgs) -> color_eyre::Result<()> {
    color_eyre::eyre::bail!("`jitpilot status` is not implemented yet")
}
