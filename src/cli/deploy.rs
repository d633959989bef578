//! `jitpilot deploy`: the sample's `deploy_cf.bash`. Creates or updates the
//! stack from `cfn/cert-rotation.json`, printing stack events to stderr as
//! they happen, then the result (or `--json`) on stdout.
//! `--parameter-overrides CsrKeyReuse=warn` sets stack parameters, as
//! `aws cloudformation deploy` does.
//!
//! `--function-code PATH` makes the local stack's rotation function run that
//! code (a `bootstrap.zip`, a `bootstrap` binary or a package directory)
//! through the Lambda Runtime API instead of the built-in function;
//! `--function-code builtin` goes back to the built-in.

use super::{Backend, GlobalArgs};
use crate::cloud::{CloudEvent, EventBus, EventKind, ParameterOverrides};
use color_eyre::eyre::{bail, eyre};
use std::path::PathBuf;

/// `jitpilot deploy`'s options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeployArgs {
    /// Stack parameters to set, as `aws cloudformation deploy` takes them:
    /// `Key=Value` pairs, e.g. `--parameter-overrides CsrKeyReuse=warn`.
    /// Parameters not named keep their current value.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE", value_parser = parse_override)]
    pub parameter_overrides: Vec<(String, String)>,
    /// Local cloud only: run the stack's function from this code (a
    /// `bootstrap.zip` as scripts/package-lambda makes it, a `bootstrap`
    /// binary, or a package directory) instead of the built-in function;
    /// `builtin` goes back to the built-in (the fast path).
    #[arg(long, value_name = "PATH|builtin", env = "JITPILOT_FUNCTION_CODE")]
    pub function_code: Option<PathBuf>,
}

/// One `Key=Value` of `--parameter-overrides`.
fn parse_override(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not Key=Value; write e.g. --parameter-overrides CsrKeyReuse=warn"
        )),
    }
}

/// Runs `jitpilot deploy`.
pub async fn run(global: &GlobalArgs, args: &DeployArgs) -> color_eyre::Result<()> {
    if args.function_code.is_some() && global.backend == Backend::Aws {
        bail!("--function-code is for the local cloud; on AWS the function always runs its package (JITPILOT_LAMBDA_PACKAGE)");
    }
    let _log = crate::logging::init_file_logging(&global.data_dir());
    let overrides: ParameterOverrides = args.parameter_overrides.iter().cloned().collect();
    let bus = EventBus::default();
    let printer = print_stack_events(&bus);
    let cloud = global.open_cloud(bus).await?;
    let result = cloud.deploy_with_parameters(&overrides).await;
    // Dropping every sender ends the printer once it has drained the events.
    drop(cloud);
    let _ = printer.await;
    let report = result.map_err(|e| eyre!("deploy failed: {e}"))?;
    if let Some(code) = &args.function_code {
        for line in
            crate::cloud::open::set_local_function_code(&global.data_dir(), &report.resources, code)
                .map_err(|e| eyre!("{e}"))?
        {
            eprintln!("{line}");
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_key_value_pairs() {
        assert_eq!(
            parse_override("CsrKeyReuse=warn"),
            Ok(("CsrKeyReuse".to_string(), "warn".to_string()))
        );
        assert_eq!(
            parse_override("A=b=c"),
            Ok(("A".to_string(), "b=c".to_string()))
        );
        for bad in ["CsrKeyReuse", "=warn", ""] {
            let err = parse_override(bad).expect_err(bad);
            assert!(err.contains("Key=Value"), "{err}");
        }
    }
}
