//! `sim-device`: one device against any endpoint, local or AWS.
//!
//! ```text
//! sim-device --endpoint 127.0.0.1:8883 --creds ~/.local/share/jitpilot/devices/IUQWXALODJESC1 onboard
//! sim-device --endpoint xxxx-ats.iot.us-east-1.amazonaws.com:8883 --creds ./dev jitp
//! sim-device --endpoint 127.0.0.1:8883 --creds ./dev --mqtt 5 onboard
//! ```
//!
//! Progress goes to stderr; the outcome (or `--json` document) to stdout.

use clap::{Parser, ValueEnum};
use simulated_devices::{
    creds, firmware, run_device, DeviceConfig, Goal, MqttVersion, RetryPolicy,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "sim-device",
    version,
    about = "A simulated IoT device: JITP, manufacturer cert creation and ack against any endpoint"
)]
struct Cli {
    /// The MQTT endpoint, HOST:PORT.
    #[arg(long)]
    endpoint: String,
    /// The device's credential folder (vendor.key.pem, vendor.cert.pem, root-ca.pem, manufacturer-ca.pem).
    #[arg(long)]
    creds: PathBuf,
    /// Serial number (= clientId); defaults to the CN of vendor.cert.pem.
    #[arg(long)]
    serial: Option<String>,
    /// Name to verify in the server certificate, if not the endpoint's host.
    #[arg(long)]
    server_name: Option<String>,
    /// ALPN protocol to offer (`x-amzn-mqtt-ca` for AWS IoT on port 443).
    #[arg(long)]
    alpn: Option<String>,
    /// Fraction of responses to drop, to exercise retries (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Seed of the loss and jitter draws, to reproduce a run (random when absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Drop exactly the next N responses (a deterministic fault).
    #[arg(long, default_value_t = 0)]
    drop_responses: u32,
    /// Milliseconds to wait for a response before asking again.
    #[arg(long, default_value_t = 3000)]
    response_timeout_ms: u64,
    /// Longest backoff between connects, in milliseconds (raise it for AWS).
    #[arg(long, default_value_t = 5000)]
    max_backoff_ms: u64,
    /// MQTT version to speak: 3 (3.1.1) or 5.
    #[arg(long, default_value = "3")]
    mqtt: MqttVersion,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
    /// fsync every credential write and its folder, so it survives power
    /// loss, not only the process being killed (slower).
    #[arg(long)]
    fsync: bool,
    #[arg(value_enum)]
    step: StepArg,
}

/// The walkthrough step(s) to run.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StepArg {
    /// 3a: connect with the vendor cert until JITP has provisioned it.
    Jitp,
    /// 3a + 3b: get a manufacturer cert for a new key.
    CreateCert,
    /// 3c: connect with the manufacturer cert and acknowledge it.
    AckCert,
    /// 3a, 3b and 3c.
    Onboard,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let serial = match cli.serial {
        Some(serial) => serial,
        None => {
            let folder = creds::CredentialFolder::new(&cli.creds);
            let pem = folder
                .read_required(creds::VENDOR_CERT)
                .map_err(|e| format!("{e} (or pass --serial)"))?;
            firmware::common_name(&pem).map_err(|e| format!("{e} (pass --serial)"))?
        }
    };
    let goal = match cli.step {
        StepArg::Jitp => Goal::Jitp,
        StepArg::CreateCert => Goal::CreateCert,
        StepArg::AckCert => Goal::AckCert,
        StepArg::Onboard => Goal::Onboard,
    };
    let mut config = DeviceConfig::new(serial, cli.creds, cli.endpoint);
    config.server_name = cli.server_name;
    config.alpn = cli.alpn;
    config.mqtt = cli.mqtt;
    config.loss = cli.loss;
    config.drop_responses = cli.drop_responses;
    config.seed = cli.seed;
    config.response_timeout = Duration::from_millis(cli.response_timeout_ms);
    if cli.fsync {
        config.durability = simulated_devices::Durability::PowerLoss;
    }
    config.retry = RetryPolicy {
        cap: Duration::from_millis(cli.max_backoff_ms),
        ..RetryPolicy::default()
    };

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<simulated_devices::DeviceReport>();
    let printer = tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            eprintln!(
                "[{}] {} {:?} (attempt {}): {}",
                r.serial, r.step, r.state, r.attempt, r.message
            );
        }
    });
    let result = run_device(config, goal, Some(tx)).await;
    let _ = printer.await;
    let outcome = result.map_err(|e| e.to_string())?;
    if cli.json {
        let text = serde_json::to_string_pretty(&outcome).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        for step in &outcome.steps {
            let how = if step.ran {
                format!(
                    "{:.1} ms, {} attempt(s)",
                    step.duration.as_secs_f64() * 1000.0,
                    step.attempts
                )
            } else {
                "already done".to_string()
            };
            println!("{} {}: {how}", outcome.serial, step.step);
        }
        if let Some(id) = &outcome.manufacturer_cert_id {
            println!("{} manufacturer cert: {id}", outcome.serial);
        }
    }
    Ok(())
}
