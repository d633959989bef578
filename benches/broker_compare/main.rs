//! jitpilot's endpoint against mosquitto (issue 7, DESIGN §4): same machine,
//! same certificates, same client load, in one run.
//!
//! ```text
//! cargo bench --bench broker_compare -- [--clients 100,1000] [--connects 2000] \
//!     [--messages 40000] [--runs 3] [--protocol 3|5] [--busy N]
//! ```
//!
//! `--protocol 5` drives both brokers with MQTT 5 clients (level-5 CONNECT,
//! empty property lists) instead of 3.1.1. `--busy N` keeps N processes
//! spinning on the CPU through every phase, for both brokers alike: the
//! machine is busy.
//!
//! Setup: a fresh jitpilot data dir (deploy + init for the largest client
//! count); every device's factory (vendor) certificate is registered ACTIVE
//! with a permissive policy (`iot:*` on `*`), so the endpoint admits it
//! without JITP — the same identities mosquitto admits by its `cafile` (the
//! Vendor CA). Both brokers present a server certificate from the endpoint CA.
//!
//! Per run and per broker, each phase on a freshly started broker:
//! - connects/s: `--connects` full mutual-TLS handshakes + CONNECT/CONNACK +
//!   DISCONNECT, 32 at a time; also the broker's CPU ms per connect;
//! - for each client count n: n clients connected and idle → RSS delta / n
//!   (KiB per idle client), and the same for anonymous memory only
//!   (RssAnon: without the code pages the first connection faults in);
//!   then every client publishes `--messages / n` QoS 1 messages (8 in
//!   flight each) → messages/s and broker CPU µs/message.
//!
//! Prints one JSON document: every run, the medians, and jitpilot/mosquitto
//! ratios pair by pair. The load generator shares the machine with the
//! broker, so its own CPU per connect and per message is reported too: on
//! 2 cores it bounds how far ahead a broker that uses both cores can get.
//! Needs `mosquitto` (apt-get install -y mosquitto).

mod broker;
mod mqtt;

use broker::{Broker, BusyLoad, Kind, Setup};
use futures::StreamExt;
use jitpilot::cloud::events::EventBus;
use jitpilot::cloud::local::{endpoint_ca, LocalCloud};
use jitpilot::model::{now_millis, Certificate, CertificateStatus};
use mqtt::{Client, Identity};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The policy attached to every benchmark identity.
const PERMISSIVE_POLICY: &str = "BenchPermissive";
/// Handshakes in flight during the connect-rate phase.
const CONNECT_CONCURRENCY: usize = 32;
/// QoS 1 messages in flight per publishing client.
const WINDOW: usize = 8;

struct Options {
    clients: Vec<usize>,
    connects: usize,
    messages: usize,
    runs: usize,
    /// MQTT protocol level of the clients: 4 (3.1.1) or 5.
    level: u8,
    /// Processes spinning on the CPU during the measurements.
    busy: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        clients: vec![100, 1000],
        connects: 2000,
        messages: 40_000,
        runs: 3,
        level: 4,
        busy: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        match arg.as_str() {
            "--clients" => {
                o.clients = value()?
                    .split(',')
                    .map(|v| number(v.to_string()))
                    .collect::<Result<_, _>>()?
            }
            "--connects" => o.connects = number(value()?)?,
            "--messages" => o.messages = number(value()?)?,
            "--runs" => o.runs = number(value()?)?,
            "--busy" => o.busy = number(value()?)?,
            "--protocol" => {
                o.level = match value()?.as_str() {
                    "3" | "3.1.1" | "4" => 4,
                    "5" => 5,
                    other => return Err(format!("--protocol {other}: use 3 (3.1.1) or 5")),
                }
            }
            // `cargo bench` passes `--bench`; anything else is a mistake.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.clients.is_empty() || o.clients.contains(&0) || o.runs == 0 {
        return Err("--clients needs counts ≥ 1 and --runs ≥ 1".into());
    }
    Ok(o)
}

/// Deploys, inits `devices` devices, registers their vendor certificates
/// ACTIVE with the permissive policy, and writes the files mosquitto needs.
fn prepare(work: &std::path::Path, devices: usize) -> Result<(Setup, Vec<Identity>), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let data_dir = work.join("data");
    let cloud = LocalCloud::open(&data_dir, EventBus::default()).map_err(|e| err(&e))?;
    cloud.deploy_sync().map_err(|e| err(&e))?;
    cloud.init_sync(devices).map_err(|e| err(&e))?;
    let serials = jitpilot::cloud::control::fleet_serials(cloud.fleet(), devices);

    let store = cloud.store();
    let vendor_ca = store
        .list_cas()
        .map_err(|e| err(&e))?
        .into_iter()
        .find(|ca| ca.label == jitpilot::vocabulary::VENDOR_CA_LABEL)
        .ok_or("init registered no Vendor CA")?;
    store
        .create_policy(
            PERMISSIVE_POLICY,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#,
        )
        .map_err(|e| err(&e))?;
    let endpoint_ca = endpoint_ca::ensure(store).map_err(|e| err(&e))?;
    let mut identities = Vec::with_capacity(serials.len());
    for serial in &serials {
        let dir = cloud.data_dir().device_dir(serial);
        let pem = std::fs::read_to_string(dir.join("vendor.cert.pem")).map_err(|e| err(&e))?;
        // What the device trusts for the endpoint: the endpoint CA.
        let ca_pem = std::fs::read_to_string(dir.join("root-ca.pem")).map_err(|e| err(&e))?;
        let id = jitpilot::pki::certificate_id_from_pem(&pem).map_err(|e| err(&e))?;
        store
            .register_certificate(&Certificate {
                id: id.clone(),
                ca_id: Some(vendor_ca.id.clone()),
                pem,
                status: CertificateStatus::Active,
                created_at: now_millis(),
            })
            .map_err(|e| err(&e))?;
        store
            .attach_policy(PERMISSIVE_POLICY, &id)
            .map_err(|e| err(&e))?;
        identities.push(Identity::load(serial, &dir, &ca_pem).map_err(|e| err(&e))?);
    }

    let server = endpoint_ca.server_identity().map_err(|e| err(&e))?;
    let setup = Setup {
        data_dir: data_dir.clone(),
        jitpilot: env!("CARGO_BIN_EXE_jitpilot").into(),
        vendor_ca: work.join("vendor-ca.pem"),
        server_cert: work.join("server.pem"),
        server_key: work.join("server.key"),
        work: work.to_path_buf(),
    };
    std::fs::write(&setup.vendor_ca, &vendor_ca.pem).map_err(|e| err(&e))?;
    std::fs::write(&setup.server_cert, &server.cert_pem).map_err(|e| err(&e))?;
    std::fs::write(&setup.server_key, &server.key_pem).map_err(|e| err(&e))?;
    // Releases the data dir lock for `jitpilot serve`.
    drop(cloud);
    Ok((setup, identities))
}

/// Connects/s and broker CPU per connect.
async fn connect_rate(
    broker: &Broker,
    ids: &[Identity],
    connects: usize,
    level: u8,
) -> Result<Value, String> {
    let cpu0 = broker.cpu_seconds();
    let generator0 = generator_cpu_seconds();
    let started = Instant::now();
    let mut runs = futures::stream::iter((0..connects).map(|i| {
        let id = &ids[i % ids.len()];
        async move {
            let client = Client::connect(&broker.addr, id, level).await?;
            client.disconnect().await
        }
    }))
    .buffer_unordered(CONNECT_CONCURRENCY.min(ids.len()));
    let mut failed = 0usize;
    let mut first_error = None;
    while let Some(r) = runs.next().await {
        if let Err(e) = r {
            failed += 1;
            first_error.get_or_insert(e.to_string());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = broker.cpu_seconds() - cpu0;
    let generator = generator_cpu_seconds() - generator0;
    let ok = connects - failed;
    if ok == 0 {
        return Err(format!(
            "{}: every connect failed: {}",
            broker.kind.name(),
            first_error.unwrap_or_default()
        ));
    }
    Ok(json!({
        "connects": ok, "failed": failed, "firstError": first_error,
        "connectsPerSec": ok as f64 / secs,
        "brokerCpuMsPerConnect": cpu * 1000.0 / ok as f64,
        "generatorCpuMsPerConnect": generator * 1000.0 / ok as f64,
    }))
}

/// CPU seconds the load generator (this process) has used so far.
fn generator_cpu_seconds() -> f64 {
    broker::cpu_seconds(std::process::id())
}

/// n idle clients (RSS per client), then QoS 1 publish throughput from all of them.
async fn clients_phase(
    broker: &Broker,
    ids: &[Identity],
    n: usize,
    messages: usize,
    level: u8,
) -> Result<Value, String> {
    // Let the broker finish starting up before the baseline is taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = broker.rss_kib();
    let anon0 = broker.anon_kib();
    let mut clients = Vec::with_capacity(n);
    let mut connecting = futures::stream::iter(ids[..n].iter().map(|id| async move {
        (
            id.client_id.clone(),
            Client::connect(&broker.addr, id, level).await,
        )
    }))
    .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some((client_id, r)) = connecting.next().await {
        let client = r.map_err(|e| format!("{}: connect {client_id}: {e}", broker.kind.name()))?;
        clients.push((client_id, client));
    }
    drop(connecting);
    // Idle: give the broker a moment to settle its per-connection buffers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = broker.rss_kib();
    let anon1 = broker.anon_kib();

    let per_client = (messages / n).max(1);
    let payload = [b'x'; 64];
    let cpu0 = broker.cpu_seconds();
    let generator0 = generator_cpu_seconds();
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(client_id, mut client)| {
            tokio::spawn(async move {
                let topic = format!("bench/{client_id}/data");
                client
                    .publish_qos1(&topic, &payload, per_client, WINDOW)
                    .await?;
                client.disconnect().await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| format!("publisher task: {e}"))?
            .map_err(|e| format!("{}: publish: {e}", broker.kind.name()))?;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = broker.cpu_seconds() - cpu0;
    let generator = generator_cpu_seconds() - generator0;
    let total = per_client * n;
    Ok(json!({
        "clients": n,
        "idleKibPerClient": (rss1 - rss0) / n as f64,
        "idleAnonKibPerClient": (anon1 - anon0) / n as f64,
        "rssBeforeKib": rss0, "rssIdleKib": rss1,
        "messages": total,
        "qos1MessagesPerSec": total as f64 / secs,
        "brokerCpuUsPerMessage": cpu * 1e6 / total as f64,
        "generatorCpuUsPerMessage": generator * 1e6 / total as f64,
    }))
}

async fn one_broker(
    kind: Kind,
    setup: &Setup,
    ids: &[Identity],
    o: &Options,
) -> Result<Value, String> {
    let mut result = serde_json::Map::new();
    let broker = Broker::start(kind, setup)?;
    let connect = connect_rate(&broker, ids, o.connects, o.level).await;
    broker.stop();
    result.insert("connect".into(), connect?);
    for &n in &o.clients {
        let broker = Broker::start(kind, setup)?;
        let phase = clients_phase(&broker, ids, n, o.messages, o.level).await;
        broker.stop();
        result.insert(format!("clients{n}"), phase?);
    }
    Ok(Value::Object(result))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Median, min and max of one figure over the runs.
fn summary(runs: &[Value], broker: &str, phase: &str, field: &str) -> Value {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| r[broker][phase][field].as_f64())
        .collect();
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    json!({"median": median(v), "min": min, "max": max})
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("broker_compare: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let o = options()?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let most = o
        .clients
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(CONNECT_CONCURRENCY);
    eprintln!("broker_compare: preparing {most} identities");
    let (setup, ids) = prepare(work.path(), most)?;
    let _busy = BusyLoad::start(o.busy)?;
    let mut runs = Vec::new();
    for run in 1..=o.runs {
        let mut this = serde_json::Map::new();
        // Alternate which broker goes first, so neither always gets the
        // warmer (or busier) half of the run.
        let order = if run % 2 == 1 {
            [Kind::Jitpilot, Kind::Mosquitto]
        } else {
            [Kind::Mosquitto, Kind::Jitpilot]
        };
        for kind in order {
            eprintln!("broker_compare: run {run}/{}: {}", o.runs, kind.name());
            this.insert(
                kind.name().into(),
                one_broker(kind, &setup, &ids, &o).await?,
            );
        }
        eprintln!("{}", Value::Object(this.clone()));
        runs.push(Value::Object(this));
    }

    let mut figures: Vec<(String, &str, &str)> = vec![
        ("connectsPerSec".into(), "connect", "connectsPerSec"),
        (
            "brokerCpuMsPerConnect".into(),
            "connect",
            "brokerCpuMsPerConnect",
        ),
        (
            "generatorCpuMsPerConnect".into(),
            "connect",
            "generatorCpuMsPerConnect",
        ),
    ];
    let phases: Vec<String> = o.clients.iter().map(|n| format!("clients{n}")).collect();
    for phase in &phases {
        for field in [
            "qos1MessagesPerSec",
            "brokerCpuUsPerMessage",
            "generatorCpuUsPerMessage",
            "idleKibPerClient",
            "idleAnonKibPerClient",
        ] {
            figures.push((format!("{phase}.{field}"), phase.as_str(), field));
        }
    }
    let mut medians = BTreeMap::new();
    let mut ratios = BTreeMap::new();
    for (name, phase, field) in &figures {
        let j = summary(&runs, "jitpilot", phase, field);
        let m = summary(&runs, "mosquitto", phase, field);
        let ratio =
            j["median"].as_f64().unwrap_or(f64::NAN) / m["median"].as_f64().unwrap_or(f64::NAN);
        ratios.insert(name.clone(), json!(ratio));
        medians.insert(name.clone(), json!({"jitpilot": j, "mosquitto": m}));
    }
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let report = json!({
        "benchmark": "endpoint vs mosquitto, mutual TLS, same certs and load",
        "machine": format!("{cores} cores, {machine}"),
        "protocol": if o.level == 5 { "MQTT 5" } else { "MQTT 3.1.1" },
        "options": {"clients": o.clients, "connects": o.connects, "messages": o.messages,
                    "runs": o.runs, "busy": o.busy, "connectConcurrency": CONNECT_CONCURRENCY, "window": WINDOW},
        "median": medians,
        "ratioJitpilotOverMosquitto": ratios,
        "runs": runs,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}
