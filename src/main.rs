//! The `jitpilot` binary: with no subcommand, the TUI on the embedded local
//! cloud; otherwise one headless command (DESIGN §3).

use clap::{Parser, Subcommand};
use jitpilot::cli::{self, deploy::DeployArgs, device::DeviceStep, fleet::FleetArgs, GlobalArgs};

#[derive(Debug, Parser)]
#[command(
    name = "jitpilot",
    version,
    about = "IoT fleet onboarding with JITP and certificate rotation: a terminal cockpit on an embedded local cloud or AWS"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    /// Enable mouse capture in the TUI (text is then not selectable).
    #[arg(long)]
    mouse: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the local cloud headless (MQTT endpoint, AWS API, rules, rotation function).
    Serve,
    /// Print the shell exports that point the aws CLI and boto3 at the running local cloud: `eval "$(jitpilot env)"`.
    Env,
    /// Create or update the stack from cfn/ (the sample's deploy_cf.bash).
    Deploy(DeployArgs),
    /// CAs, JITP template, CA key, whitelist, factory credentials (certs_etc.py --create).
    Init {
        /// How many devices to whitelist and issue factory credentials for,
        /// the sample's serial IUQWXALODJESC1 first.
        #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        devices: usize,
    },
    /// Run one device through a walkthrough step (mqtt_client.py --jitp/--create_cert/--ack_cert).
    Device {
        /// The device's serial number (= clientId = thing name).
        serial: String,
        #[arg(value_enum)]
        step: DeviceStep,
    },
    /// Onboard a whole fleet end to end and print a summary with timings.
    Fleet(FleetArgs),
    /// Show the stack, CAs, certificates, things and devices.
    Status,
    /// Delete devices, things, certificates, CAs, the CA key and table rows (certs_etc.py --delete).
    Cleanup,
    /// Delete the stack (delete_cf.bash).
    Teardown,
    /// The TUI in guided mode for workshops.
    Demo,
}

/// Threads for blocking work (file and SQLite calls off the async threads).
/// Tokio's default of 512 lets a 10,000-device fleet start hundreds of
/// threads for a burst of small file writes, each with its own allocator
/// heap; a few dozen keep up with the disk as well.
const MAX_BLOCKING_THREADS: usize = 32;

fn main() -> std::process::ExitCode {
    // color-eyre's panic hook (the TUI chains its terminal restore onto it).
    if let Err(e) = color_eyre::install() {
        eprintln!("error: {e}");
    }
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let g = &cli.global;
    let result = match &cli.command {
        None => jitpilot::tui::run(g, cli.mouse, false).await,
        Some(Command::Demo) => jitpilot::tui::run(g, cli.mouse, true).await,
        Some(Command::Serve) => cli::serve::run(g).await,
        Some(Command::Env) => cli::env::run(g),
        Some(Command::Deploy(args)) => cli::deploy::run(g, args).await,
        Some(Command::Init { devices }) => cli::init::run(g, *devices).await,
        Some(Command::Device { serial, step }) => cli::device::run(g, serial, *step).await,
        Some(Command::Fleet(args)) => cli::fleet::run(g, args).await,
        Some(Command::Status) => cli::status::run(g).await,
        Some(Command::Cleanup) => cli::cleanup::run(g).await,
        Some(Command::Teardown) => cli::teardown::run(g).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(report) => {
            // A user's error, not a crash: the message and its causes, no
            // source locations or backtraces (those are for panics).
            eprintln!("error: {report}");
            for cause in report.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
