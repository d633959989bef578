//! `jitpilot deploy`: the sample's `deploy_cf.bash`. Creates or updates the
//! stack from `cfn/cert-rotation.json`, printing stack events to stderr as
//! they happen, then the result (or `--json`) on stdout.

use super::{Backend, GlobalArgs};
use crate::cloud::local::LocalCloud;
use crate::cloud::{Cloud, CloudEvent, EventBus, EventKind};
use color_eyre::eyre::{bail, eyre};

/// Runs `jitpilot deploy`.
pub async fn run(global: &GlobalArgs) -> color_eyre::Result<()> {
    let _log = crate::logging::init_file_logging(&global.data_dir());
    let bus = EventBus::default();
    let printer = print_stack_events(&bus);
    let cloud = open_local_cloud(global, bus)?;
    let result = cloud.deploy().await;
    // Dropping every sender ends the printer once it has drained the events.
    drop(cloud);
    let _ = printer.await;
    let report = result.map_err(|e| eyre!("deploy failed: {e}"))?;
    if global.json {
        return super::print_json(&report);
    }
    println!(
        "Stack {}: {}{}",
        report.stack,
        report.status,
        if report.changed { "" } else { " (no changes)" }
    );
    let width = report
        .resources
        .iter()
        .map(|r| r.logical_id.len())
        .max()
        .unwrap_or(0);
    for r in &report.resources {
        println!(
            "  {:<width$}  {:<28}  {:<16}  {}",
            r.logical_id, r.resource_type, r.status, r.physical_id
        );
    }
    Ok(())
}

/// Opens the embedded local cloud for a headless command, owning the data dir.
pub(crate) fn open_local_cloud(
    global: &GlobalArgs,
    bus: EventBus,
) -> color_eyre::Result<LocalCloud> {
    require_local(global)?;
    LocalCloud::open(&global.data_dir(), bus).map_err(|e| eyre!("{e}"))
}

/// The AWS backend is not part of this build yet: say so instead of
/// silently using the local cloud.
pub(crate) fn require_local(global: &GlobalArgs) -> color_eyre::Result<()> {
    if global.backend == Backend::Aws {
        bail!("the AWS backend is not available in this build yet; run without `--backend aws` to use the local cloud");
    }
    Ok(())
}

/// Prints each stack event to stderr, CloudFormation style, as it arrives.
fn print_stack_events(bus: &EventBus) -> tokio::task::JoinHandle<()> {
    let mut events = bus.subscribe();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if event.kind == EventKind::Stack {
                eprintln!("{}", stack_event_line(&event));
            }
        }
    })
}

fn stack_event_line(event: &CloudEvent) -> String {
    let field = |name: &str| event.detail.get(name).and_then(|v| v.as_str());
    match (field("status"), field("resourceType"), field("logicalId")) {
        (Some(status), Some(kind), Some(id)) => {
            let reason = field("reason")
                .map(|r| format!("  {r}"))
                .unwrap_or_default();
            format!("  {status:<20}  {kind:<28}  {id}{reason}")
        }
        _ => format!("  {}", event.summary),
    }
}
