//! `jitpilot status`: the stack, CAs, certificates, things, parameters and
//! devices. Works beside a running TUI or `serve` (reads without the lock).
//!
//! A read-only command: it opens the database read-only and never creates
//! it, the data dir or anything else — a missing database is reported,
//! never replaced by an empty cloud.

use super::GlobalArgs;
use crate::cloud::{CloudError, StatusReport};
use crate::store::StoreError;
use crate::vocabulary::{ATTR_CR_STATE, ATTR_SERIAL_NUMBER};
use color_eyre::eyre::eyre;

/// Runs `jitpilot status`.
pub async fn run(global: &GlobalArgs) -> color_eyre::Result<()> {
    let data_dir = global.data_dir();
    // Logging only into a data dir that exists: status creates nothing.
    let _log = data_dir
        .join(crate::store::DB_FILE)
        .exists()
        .then(|| crate::logging::init_file_logging(&data_dir));
    let cloud = match crate::cloud::open::open_to_read(&global.cloud_options()).await {
        Ok(cloud) => cloud,
        Err(CloudError::Store(StoreError::NotFound { .. })) => {
            return Err(eyre!(
                "no jitpilot data in {}; run `jitpilot deploy` first",
                data_dir.display()
            ))
        }
        Err(e) => return Err(eyre!("{e}")),
    };
    let report = cloud
        .status()
        .await
        .map_err(|e| eyre!("status failed: {e}"))?;
    if global.json {
        return super::print_json(&report);
    }
    print_status(&report);
    Ok(())
}

fn print_status(report: &StatusReport) {
    if let Some(dir) = &report.data_dir {
        println!("Data dir   {}", dir.display());
    }
    println!(
        "Endpoint   {}",
        report
            .endpoint
            .as_deref()
            .unwrap_or("(not running; start `jitpilot serve` or the TUI)")
    );
    println!();
    if report.stack.is_none() {
        println!("Stack      (none; run `jitpilot deploy`)");
    }
    // jitpilot's own stack, then any other (e.g. the sample's CertRotationStack).
    for stack in report.stack.iter().chain(&report.other_stacks) {
        println!("Stack      {}  {}", stack.name, stack.status);
        let width = stack
            .resources
            .iter()
            .map(|r| r.logical_id.len())
            .max()
            .unwrap_or(0);
        for r in &stack.resources {
            println!(
                "  {:<width$}  {:<28}  {}",
                r.logical_id, r.resource_type, r.status
            );
        }
    }
    println!();
    if report.cas.is_empty() {
        println!("CAs        (none; run `jitpilot init`)");
    }
    for ca in &report.cas {
        super::init::print_ca(ca);
    }
    println!();
    println!("Certificates ({})", report.certificates.len());
    for cert in &report.certificates {
        println!(
            "  {}  {:<18}  CN={:<16}  things: {}  policies: {}",
            &cert.id[..cert.id.len().min(10)],
            cert.status,
            cert.common_name.as_deref().unwrap_or("-"),
            cert.things.join(","),
            cert.policies.join(",")
        );
    }
    println!("Things ({})", report.things.len());
    for (name, principals) in &report.things {
        let ids: Vec<&str> = principals.iter().map(|p| &p[..p.len().min(10)]).collect();
        println!("  {name:<20}  certificates: {}", ids.join(","));
    }
    println!("Policies ({})", report.policies.len());
    for (name, targets) in &report.policies {
        println!("  {name:<36}  {} target(s)", targets.len());
    }
    println!("Parameters ({})", report.parameters.len());
    for (name, kind) in &report.parameters {
        println!("  {name:<80}  {kind}");
    }
    println!("Devices in CertRotationDevices ({})", report.devices.len());
    for item in &report.devices {
        let get = |k: &str| item.get(k).and_then(|v| v.as_str()).unwrap_or("-");
        println!("  {:<20}  {}", get(ATTR_SERIAL_NUMBER), get(ATTR_CR_STATE));
    }
}
