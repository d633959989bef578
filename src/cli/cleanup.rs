//! `jitpilot cleanup`: the sample's `certs_etc.py --delete`.

use super::GlobalArgs;
use crate::cloud::EventBus;
use color_eyre::eyre::eyre;

/// Runs `jitpilot cleanup`.
pub async fn run(global: &GlobalArgs) -> color_eyre::Result<()> {
    let _log = crate::logging::init_file_logging(&global.data_dir());
    let cloud = global.open_cloud(EventBus::default()).await?;
    let report = cloud
        .cleanup()
        .await
        .map_err(|e| eyre!("cleanup failed: {e}"))?;
    if global.json {
        return super::print_json(&report);
    }
    let rows = [
        ("things", report.things),
        ("certificates", report.certificates),
        ("CA certificates", report.cas),
        ("CA key parameters", report.parameters),
        ("device table rows", report.table_rows),
        ("device folders", report.device_folders),
    ];
    if rows.iter().all(|(_, n)| *n == 0) {
        println!("Nothing to clean up.");
        return Ok(());
    }
    println!("Deleted:");
    for (what, n) in rows {
        println!("  {n:>6}  {what}");
    }
    Ok(())
}
