//! The terminal UI.

use crate::cli::GlobalArgs;

/// Runs the TUI (`demo` = guided workshop mode).
pub async fn run(_global: &GlobalArgs, _mouse: bool, _demo: bool) -> color_eyre::Result<()> {
    color_eyre::eyre::bail!("the TUI is not implemented yet")
}
