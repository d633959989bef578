//! Request latency of the local cloud's AWS API (issue 11): DynamoDB
//! `PutItem` and `GetItem` through `jitpilot serve --api-addr`, sent one
//! after another by aws-sdk-dynamodb (SigV4-signed, as any SDK sends them),
//! each timed from `send()` to the parsed answer. Prints one JSON document:
//! p50, p90, p99 and max per operation, in microseconds.
//!
//! ```sh
//! cargo build --release --workspace --bin jitpilot          # the server measured
//! cargo test --workspace --bench api_latency --no-run        # this client (test profile)
//! target/debug/deps/api_latency-<hash> --bench --bin target/release/jitpilot [--requests 2000] [--warmup 200]
//! ```
//!
//! `scripts/bench-api` does both and the `init --devices 1000` comparison.
//! Without `--bench` (as `cargo test --benches` runs it) it makes a short
//! run of 20 requests against the debug binary: a smoke test that the
//! path works, not a measurement.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TABLE: &str = "ApiLatencyBench";
const KEY: &str = "SerialNumber";

struct Args {
    bench: bool,
    bin: PathBuf,
    requests: usize,
    warmup: usize,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        bench: false,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_jitpilot")),
        requests: 20,
        warmup: 5,
    };
    let (mut sized, mut warmed) = (false, false);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--bench" => args.bench = true,
            "--bin" => args.bin = PathBuf::from(value("--bin")?),
            "--requests" => {
                args.requests = value("--requests")?
                    .parse()
                    .map_err(|e| format!("--requests: {e}"))?;
                sized = true;
            }
            "--warmup" => {
                args.warmup = value("--warmup")?
                    .parse()
                    .map_err(|e| format!("--warmup: {e}"))?;
                warmed = true;
            }
            // What the test harness would pass (filters, --nocapture): no use here.
            _ => {}
        }
    }
    if args.bench && !sized {
        args.requests = 2000;
    }
    if args.bench && !warmed {
        args.warmup = 200;
    }
    if args.requests == 0 {
        return Err("--requests must be at least 1".into());
    }
    Ok(args)
}

/// `jitpilot serve` on free ports over a fresh data dir; killed on drop.
struct Serve {
    child: Child,
    api: String,
    _dir: tempfile::TempDir,
    data: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(bin: &Path) -> Result<Serve, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--json",
            "--mqtt-addr",
            "127.0.0.1:0",
            "--api-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("JITPILOT_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("serve has no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("serve printed nothing: {e}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("serve --json printed {line:?}: {e}"))?;
    let api = doc["apiEndpoint"]
        .as_str()
        .ok_or("serve --json names no apiEndpoint")?
        .to_string();
    Ok(Serve {
        child,
        api,
        _dir: dir,
        data,
    })
}

/// The data dir's access key, as `jitpilot env --json` prints it.
fn credentials(bin: &Path, serve: &Serve) -> Result<aws_credential_types::Credentials, String> {
    let out = Command::new(bin)
        .args(["env", "--json", "--data-dir"])
        .arg(&serve.data)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "jitpilot env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let field = |k: &str| {
        keys[k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("env --json has no {k}"))
    };
    Ok(aws_credential_types::Credentials::new(
        field("accessKeyId")?,
        field("secretAccessKey")?,
        None,
        None,
        "api-latency-bench",
    ))
}

/// p-th percentile (nearest rank) of sorted `samples`, in microseconds.
fn percentile(sorted: &[Duration], p: f64) -> u128 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_micros()
}

fn summary(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    let total: Duration = samples.iter().sum();
    serde_json::json!({
        "requests": samples.len(),
        "p50Us": percentile(&samples, 50.0),
        "p90Us": percentile(&samples, 90.0),
        "p99Us": percentile(&samples, 99.0),
        "maxUs": samples.last().map(Duration::as_micros),
        "meanUs": (total / samples.len() as u32).as_micros(),
    })
}

fn item(i: usize) -> std::collections::HashMap<String, AttributeValue> {
    [
        (KEY, format!("BENCH{i:09}")),
        ("CrState", "CR_WHITELISTED".to_string()),
        ("ManufacturerCaCertId", format!("{i:064x}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), AttributeValue::S(v)))
    .collect()
}

async fn run(args: &Args) -> Result<serde_json::Value, String> {
    let server = serve(&args.bin)?;
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&server.api)
        .credentials_provider(credentials(&args.bin, &server)?)
        // A retry would hide a slow or failed request inside one sample.
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let db = aws_sdk_dynamodb::Client::new(&config);
    let attribute = AttributeDefinition::builder()
        .attribute_name(KEY)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| e.to_string())?;
    let key = KeySchemaElement::builder()
        .attribute_name(KEY)
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| e.to_string())?;
    db.create_table()
        .table_name(TABLE)
        .attribute_definitions(attribute)
        .key_schema(key)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| format!("CreateTable: {e:?}"))?;

    let put = |i: usize| {
        db.put_item()
            .table_name(TABLE)
            .set_item(Some(item(i)))
            .send()
    };
    let get = |i: usize| {
        db.get_item()
            .table_name(TABLE)
            .key(KEY, AttributeValue::S(format!("BENCH{i:09}")))
            .consistent_read(true)
            .send()
    };
    // Warm-up: connections, the server's caches, SQLite's pages.
    for i in 0..args.warmup {
        put(i).await.map_err(|e| format!("PutItem: {e:?}"))?;
        get(i).await.map_err(|e| format!("GetItem: {e:?}"))?;
    }
    let mut puts = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        let start = Instant::now();
        put(args.warmup + i)
            .await
            .map_err(|e| format!("PutItem: {e:?}"))?;
        puts.push(start.elapsed());
    }
    let mut gets = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        let start = Instant::now();
        let out = get(args.warmup + i)
            .await
            .map_err(|e| format!("GetItem: {e:?}"))?;
        gets.push(start.elapsed());
        if out.item().is_none() {
            return Err(format!("GetItem found no item BENCH{:09}", args.warmup + i));
        }
    }
    Ok(serde_json::json!({
        "server": args.bin.display().to_string(),
        "clientProfile": if cfg!(debug_assertions) { "debug (test profile; dependencies at opt-level 2)" } else { "release" },
        "warmup": args.warmup,
        "putItem": summary(puts),
        "getItem": summary(gets),
    }))
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("api_latency: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(doc) => println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default()),
        Err(e) => {
            eprintln!("api_latency: {e}");
            std::process::exit(1);
        }
    }
}
