//! `jitpilot teardown`: the sample's `delete_cf.bash`.

use super::GlobalArgs;
use crate::cloud::EventBus;
use color_eyre::eyre::eyre;

/// Runs `jitpilot teardown`.
pub async fn run(global: &GlobalArgs) -> color_eyre::Result<()> {
    let _log = crate::logging::init_file_logging(&global.data_dir());
    let cloud = global.open_cloud(EventBus::default()).await?;
    let report = cloud
        .teardown()
        .await
        .map_err(|e| eyre!("teardown failed: {e}"))?;
    if global.json {
        return super::print_json(&report);
    }
    if !report.existed {
        println!("Stack {}: nothing to delete", report.stack);
        return Ok(());
    }
    println!("Stack {}: DELETE_COMPLETE", report.stack);
    for id in &report.deleted {
        println!("  deleted {id}");
    }
    Ok(())
}
