//! `jitpilot cleanup`.

use super::GlobalArgs;

/// Runs `jitpilot cleanup`.
pub async fn run(_global: &GlobalArgs) -> color_eyre::Result<()> {
    color_eyre::eyre::bail!("`jitpilot cleanup` is not implemented yet")
}
