//! `jitpilot teardown`.

use super::GlobalArgs;

/// Runs `jitpilot teardown`.
pub async fn run(_global: &GlobalArgs) -> color_eyre::Result<()> {
    color_eyre::eyre::bail!("`jitpilot teardown` is not implemented yet")
}
