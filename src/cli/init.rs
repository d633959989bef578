//! `jitpilot init`: the sample's `certs_etc.py --create`.

use super::GlobalArgs;
use crate::cloud::{CaSummary, EventBus};
use color_eyre::eyre::eyre;

/// Runs `jitpilot init`.
pub async fn run(global: &GlobalArgs, devices: usize) -> color_eyre::Result<()> {
    let _log = crate::logging::init_file_logging(&global.data_dir());
    let cloud = global.open_cloud(EventBus::default()).await?;
    let report = cloud
        .init(devices)
        .await
        .map_err(|e| eyre!("init failed: {e}"))?;
    if global.json {
        return super::print_json(&report);
    }
    if !report.created {
        println!("Already initialized; nothing new to create.");
    }
    for ca in &report.cas {
        print_ca(ca);
    }
    println!(
        "Manufacturer CA key: parameter {} (SecureString)",
        report.ca_key_parameter
    );
    println!(
        "Whitelisted in CertRotationDevices (CR_WHITELISTED): {} device(s)",
        report.whitelisted.len()
    );
    for serial in &report.whitelisted {
        println!("  {serial}");
    }
    println!("Factory credentials: {}", report.devices_dir.display());
    println!(
        "Next: run a device, e.g. `jitpilot device {} onboard`, or the TUI.",
        report
            .whitelisted
            .first()
            .map(String::as_str)
            .unwrap_or("SERIAL")
    );
    Ok(())
}

/// One CA, as the AWS console's CA page would summarize it.
pub(crate) fn print_ca(ca: &CaSummary) {
    println!("{} {}", ca.label, ca.id);
    println!("  status             {}", ca.status);
    println!("  subject            {}", ca.subject);
    println!(
        "  auto-registration  {}",
        if ca.auto_registration {
            "ENABLE"
        } else {
            "DISABLE"
        }
    );
    if let Some(template) = &ca.jitp_template {
        println!("  template           {template}");
    }
    if let Some(key) = &ca.key_parameter {
        println!("  key                parameter {key}");
    }
    if !ca.certificates.is_empty() {
        let counts: Vec<String> = ca
            .certificates
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        println!("  certificates       {}", counts.join(", "));
    }
}
