//! `jitpilot fleet --devices N [--concurrency C] [--loss P]`: the whole
//! walkthrough for a fleet — whitelist and factory credentials for N
//! devices (init, idempotent), then every device onboarded (3a, 3b, 3c) with
//! at most C at once, then a summary read back from the device table.
//!
//! With `--backend aws` the devices connect to the account's data endpoint,
//! init runs against the account, the summary is read from DynamoDB, and
//! device starts are paced to `--rate` per second (default 10: every JITP
//! is a certificate registration, and AWS IoT's registration APIs allow
//! about 10 per second).
//!
//! Rerunnable: devices whose folder holds the ack marker and whose row says
//! `CR_CERT_ROTATION_COMPLETED` are skipped; the others resume from their
//! folder. So a run killed at any point (even SIGKILL) and run again
//! completes every device, with nothing lost or issued twice.

use super::{Backend, GlobalArgs};
use crate::cloud::open::{RegistrationPacer, DEFAULT_AWS_RATE};
use crate::cloud::Connected;
use crate::rotation::wire::{CrState, ATTR_CR_STATE, ATTR_SERIAL_NUMBER};
use color_eyre::eyre::{bail, eyre};
use futures::StreamExt;
use simulated_devices::{run_device, CredentialFolder, DeviceOutcome, Goal, Step};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `jitpilot fleet`.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// How many devices to onboard (whitelisted and given factory credentials if needed).
    #[arg(long, default_value_t = 10)]
    pub devices: usize,
    /// How many devices run at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Fraction of cloud responses the devices drop, to exercise retries (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Devices started per second [default: 10 with `--backend aws`, AWS
    /// IoT's registration rate; unlimited on the local cloud].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seed of the devices' loss and jitter draws; the summary prints the
    /// seed used (random when absent), so a run can be reproduced.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl FleetArgs {
    /// The start rate for `backend`: `--rate`, else AWS's default on AWS,
    /// else none (unlimited).
    pub fn start_rate(&self, backend: Backend) -> Option<f64> {
        match (self.rate, backend) {
            (Some(rate), _) => Some(rate),
            (None, Backend::Aws) => Some(DEFAULT_AWS_RATE),
            (None, Backend::Local) => None,
        }
    }
}

/// Latency percentiles of one step, in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// A device that did not finish, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetFailure {
    pub serial: String,
    pub reason: String,
}

/// What `jitpilot fleet --json` prints.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetSummary {
    /// Devices in the fleet.
    pub devices: usize,
    /// Already onboarded before this run (skipped).
    pub skipped: usize,
    /// Onboarded by this run.
    pub onboarded: usize,
    pub failed: usize,
    pub endpoint: String,
    pub in_process: bool,
    pub loss: f64,
    /// The seed of the devices' loss and jitter draws (`--seed` reproduces the run).
    pub seed: u64,
    pub concurrency: usize,
    /// Devices started per second; `null` when unlimited.
    pub rate: Option<f64>,
    /// Wall time of the onboarding phase.
    pub elapsed_ms: f64,
    /// Devices onboarded by this run per second of `elapsed_ms`.
    pub devices_per_sec: f64,
    /// Requests and connects beyond the first, over all devices.
    pub retries: u64,
    /// `CrState` → devices of this fleet, read back from the device table.
    pub states: BTreeMap<String, usize>,
    /// Per step (`3a`, `3b`, `3c`) and `total`.
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub failures: Vec<FleetFailure>,
}

/// Runs a fleet.
pub async fn run(global: &GlobalArgs, args: &FleetArgs) -> color_eyre::Result<()> {
    let _log = crate::logging::init_file_logging(&global.data_dir());
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.loss) {
        bail!("--loss must be between 0.0 and 1.0");
    }
    let concurrency = args.concurrency.max(1);
    let rate = args.start_rate(global.backend);
    let pacer = rate
        .map(RegistrationPacer::new)
        .transpose()
        .map_err(|e| eyre!("{e}"))?;
    let wanted = args.devices;
    // `init` for the fleet first where this process may (idempotent: only
    // serials without a row or credentials get them).
    let target = Connected::for_devices(&global.cloud_options(), Some(wanted))
        .await
        .map_err(|e| eyre!("{e}"))?;
    let serials = crate::cloud::control::fleet_serials(target.fleet(), wanted);

    let run = Run {
        loss: args.loss,
        seed: args.seed.unwrap_or_else(rand::random),
        concurrency,
        rate,
        pacer: pacer.map(Arc::new),
        mqtt: global.mqtt,
    };
    let summary = onboard(&target, &serials, &run).await;
    target.shutdown().await;
    let summary = summary?;

    if global.json {
        super::print_json(&summary)?;
    } else {
        print_summary(&summary);
    }
    if summary.failed > 0 {
        bail!(
            "{} of {} devices did not complete; each one's reason is {} (the reasons the cloud refused are also in its event log, `rotation.refused`); rerunning resumes every device where it stopped",
            summary.failed,
            summary.devices,
            if global.json {
                "in the JSON's `failures` above"
            } else {
                "on its `FAILED` line above"
            }
        );
    }
    Ok(())
}

/// How the devices of one run are started.
struct Run {
    loss: f64,
    /// The run's seed; each device draws from `device_seed(seed, serial)`.
    seed: u64,
    concurrency: usize,
    rate: Option<f64>,
    pacer: Option<Arc<RegistrationPacer>>,
    /// Which MQTT each device speaks (`--mqtt 3|5|mixed[:F]`).
    mqtt: simulated_devices::FleetMqtt,
}

async fn onboard(
    target: &Connected,
    serials: &[String],
    run: &Run,
) -> color_eyre::Result<FleetSummary> {
    let endpoint = super::device::endpoint_of(target)?;
    let states_before = table_states(target).await?;
    let mut pending = Vec::new();
    // Devices that cannot run at all, with why (they count as failed).
    let mut elsewhere = Vec::new();
    for serial in serials {
        let dir = target.devices_dir().join(serial);
        if !dir.join(simulated_devices::creds::VENDOR_CERT).exists()
            && !dir
                .join(simulated_devices::creds::MANUFACTURER_CERT)
                .exists()
        {
            let n = serials.len();
            if target.is_aws() {
                bail!(
                    "no factory credentials for {serial} in {}: run `jitpilot --backend aws init --devices {n}`",
                    dir.display(),
                )
            }
            bail!(
                "no factory credentials for {serial} in {}: a running `serve` holds the data dir, so fleet cannot run init; stop it and rerun fleet, or run `jitpilot init --devices {n}` before starting serve",
                dir.display(),
            )
        }
        let done_on_disk = CredentialFolder::new(&dir).rotation_done();
        let state = states_before.get(serial).map(String::as_str);
        let done_in_table = state == Some(CrState::CertRotationCompleted.as_str());
        if let Some(reason) = super::device::rotated_elsewhere(&dir, state) {
            elsewhere.push(FleetFailure {
                serial: serial.clone(),
                reason,
            });
        } else if !(done_on_disk && done_in_table) {
            pending.push(serial.clone());
        }
    }
    let skipped = serials.len() - pending.len() - elsewhere.len();
    eprintln!(
        "fleet: {} devices, {} already onboarded, endpoint {}{}{}",
        serials.len(),
        skipped,
        endpoint.addr,
        if target.in_process() {
            " (in-process)"
        } else {
            ""
        },
        match run.rate {
            Some(rate) => format!(", starting {rate} devices/s"),
            None => String::new(),
        }
    );

    let started = Instant::now();
    let total = pending.len();
    let step_every = (total / 100).max(1);
    let mut outcomes: Vec<DeviceOutcome> = Vec::with_capacity(total);
    let mut failures = elsewhere;
    // Starts are paced before they enter the pool: `then` yields the next
    // serial only when its slot has come, and the pool pulls one only when
    // a device finished, so neither limit starves the other.
    let pacer = run.pacer.clone();
    // A mix is spread over the fleet by each serial's place in it.
    let place: HashMap<&str, usize> = serials
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let runs = futures::stream::iter(pending)
        .then(move |serial| {
            let pacer = pacer.clone();
            async move {
                if let Some(pacer) = pacer {
                    pacer.ready().await;
                }
                serial
            }
        })
        .map(|serial| {
            let mut config = super::device::device_config(target.devices_dir(), &endpoint, &serial);
            config.loss = run.loss;
            config.seed = Some(simulated_devices::backoff::device_seed(run.seed, &serial));
            config.mqtt = run
                .mqtt
                .for_device(place.get(serial.as_str()).copied().unwrap_or(0));
            async move { (serial, run_device(config, Goal::Onboard, None).await) }
        })
        .buffer_unordered(run.concurrency);
    let mut runs = std::pin::pin!(runs);
    let mut finished = 0usize;
    while let Some((serial, result)) = runs.next().await {
        finished += 1;
        match result {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => failures.push(FleetFailure {
                serial,
                reason: e.to_string(),
            }),
        }
        if finished.is_multiple_of(step_every) || finished == total {
            eprintln!(
                "progress: {}/{} onboarded, {} failed",
                outcomes.len(),
                total,
                failures.len()
            );
        }
    }
    let elapsed = started.elapsed();

    let states_after = table_states(target).await?;
    let mut states = BTreeMap::new();
    for serial in serials {
        let state = states_after
            .get(serial)
            .cloned()
            .unwrap_or_else(|| "(no row)".to_string());
        *states.entry(state).or_insert(0) += 1;
    }
    Ok(FleetSummary {
        devices: serials.len(),
        skipped,
        onboarded: outcomes.len(),
        failed: failures.len(),
        endpoint: endpoint.addr.clone(),
        in_process: target.in_process(),
        loss: run.loss,
        seed: run.seed,
        concurrency: run.concurrency,
        rate: run.rate,
        elapsed_ms: elapsed.as_secs_f64() * 1000.0,
        devices_per_sec: per_second(outcomes.len(), elapsed),
        retries: outcomes
            .iter()
            .flat_map(|o| o.steps.iter())
            .filter(|s| s.ran)
            .map(|s| u64::from(s.attempts.saturating_sub(1)))
            .sum(),
        states,
        latency_ms: latencies(&outcomes),
        failures,
    })
}

/// `SerialNumber` → `CrState` for every row of the device table.
async fn table_states(target: &Connected) -> color_eyre::Result<HashMap<String, String>> {
    let mut states = HashMap::new();
    let rows = target
        .cloud()
        .device_rows()
        .await
        .map_err(|e| eyre!("{e}"))?;
    for item in rows {
        let serial = item.get(ATTR_SERIAL_NUMBER).and_then(|v| v.as_str());
        let state = item.get(ATTR_CR_STATE).and_then(|v| v.as_str());
        if let (Some(serial), Some(state)) = (serial, state) {
            states.insert(serial.to_string(), state.to_string());
        }
    }
    Ok(states)
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

fn latencies(outcomes: &[DeviceOutcome]) -> BTreeMap<String, Percentiles> {
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for outcome in outcomes {
        for step in [Step::Jitp, Step::CreateCert, Step::AckCert] {
            if let Some(s) = outcome.step(step).filter(|s| s.ran) {
                samples
                    .entry(step.as_str().to_string())
                    .or_default()
                    .push(s.duration.as_secs_f64() * 1000.0);
            }
        }
        samples
            .entry("total".to_string())
            .or_default()
            .push(outcome.elapsed.as_secs_f64() * 1000.0);
    }
    samples
        .into_iter()
        .map(|(step, values)| (step, percentiles(values)))
        .collect()
}

/// Nearest-rank percentiles.
pub fn percentiles(mut values: Vec<f64>) -> Percentiles {
    values.sort_by(f64::total_cmp);
    let rank = |q: f64| -> f64 {
        if values.is_empty() {
            return 0.0;
        }
        let index = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[index]
    };
    Percentiles {
        count: values.len(),
        p50: rank(0.50),
        p95: rank(0.95),
        p99: rank(0.99),
        max: values.last().copied().unwrap_or(0.0),
    }
}

fn print_summary(s: &FleetSummary) {
    println!(
        "Fleet of {}: {} onboarded now, {} already done, {} failed",
        s.devices, s.onboarded, s.skipped, s.failed
    );
    println!(
        "  {:.1} devices/s ({} in {:.0} ms, concurrency {}, loss {}, seed {}{}), {} retries",
        s.devices_per_sec,
        s.onboarded,
        s.elapsed_ms,
        s.concurrency,
        s.loss,
        s.seed,
        match s.rate {
            Some(rate) => format!(", started at most {rate}/s"),
            None => String::new(),
        },
        s.retries
    );
    println!("  CertRotationDevices:");
    for (state, n) in &s.states {
        println!("    {state:<28} {n}");
    }
    println!("  latency (ms)     p50      p95      p99      max");
    for (step, p) in &s.latency_ms {
        println!(
            "    {step:<10} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            p.p50, p.p95, p.p99, p.max
        );
    }
    for f in &s.failures {
        println!("  FAILED {}: {}", f.serial, f.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        let one = percentiles(vec![7.0]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert_eq!(percentiles(Vec::new()).count, 0);
    }

    fn args(rate: Option<f64>) -> FleetArgs {
        FleetArgs {
            devices: 1,
            concurrency: 1,
            loss: 0.0,
            rate,
            seed: None,
        }
    }

    #[test]
    fn aws_fleets_are_paced_to_the_registration_rate_unless_told_otherwise() {
        assert_eq!(args(None).start_rate(Backend::Aws), Some(10.0));
        assert_eq!(args(None).start_rate(Backend::Local), None);
        assert_eq!(args(Some(2.5)).start_rate(Backend::Aws), Some(2.5));
        assert_eq!(args(Some(50.0)).start_rate(Backend::Local), Some(50.0));
    }
}
