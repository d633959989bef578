//! `jitpilot deploy`.

use super::GlobalArgs;

/// Runs `jitpilot deploy`.
pub async fn run(_global: &GlobalArgs) -> color_eyre::Result<()> {
    color_eyre::eyre::bail!("`jitpilot deploy` is not implemented yet")
}
