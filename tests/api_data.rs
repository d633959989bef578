//! DynamoDB, SSM and Lambda of the local cloud's AWS API, driven by
//! outside clients: a boto3 script (`tests/py/api_data.py`) and the aws CLI
//! against `jitpilot serve`, with the environment `jitpilot env` prints.
//! Rows written through the API are then read by jitpilot's own store
//! readers, and jitpilot's own rows and CA key through the API.
//!
//! Needs python3 with boto3 and the aws CLI (`python3 -m pip install boto3 awscli`).

mod support;
use support::Bounded;

use jitpilot::cloud::local::LocalCloud;
use jitpilot::cloud::EventBus;
use jitpilot::fleet::SAMPLE_SERIAL;
use jitpilot::vocabulary::DEVICE_TABLE;
use std::path::Path;
use std::process::Command;

/// The variables `jitpilot env` exports for the running cloud.
fn aws_env(data_dir: &Path) -> Vec<(String, String)> {
    let out = support::jitpilot()
        .args(["env", "--data-dir"])
        .arg(data_dir)
        .bounded_output()
        .expect("run jitpilot env");
    assert!(
        out.status.success(),
        "jitpilot env: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let vars: Vec<(String, String)> = text
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches(|c| c == '\'' || c == '"').to_string(),
            )
        })
        .collect();
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    ] {
        assert!(
            vars.iter().any(|(k, _)| k == name),
            "jitpilot env lacks {name}: {text}"
        );
    }
    vars
}

fn run(program: &str, args: &[&str], env: &[(String, String)]) -> String {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        // Never a developer's own profile or config.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .bounded_output()
        .unwrap_or_else(|e| panic!("run {program} (python3 -m pip install boto3 awscli): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn boto3_and_the_aws_cli_drive_tables_parameters_and_the_rotation_function() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let ca_key_parameter = {
        let cloud = LocalCloud::open(&data_dir, EventBus::default()).expect("open");
        cloud.deploy_sync().expect("deploy");
        cloud.init_sync(1).expect("init").ca_key_parameter
    };
    let _server = support::endpoint::serve(&data_dir);
    let env = aws_env(&data_dir);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/api_data.py");
    let facts: serde_json::Value =
        serde_json::from_str(run("python3", &[script], &env).trim()).expect("the script's facts");
    // jitpilot init's whitelist and CA key, read by boto3.
    assert!(
        facts["whitelisted"]
            .as_array()
            .expect("list")
            .iter()
            .any(|s| s == SAMPLE_SERIAL),
        "{facts}"
    );
    assert!(
        facts["ca_key_parameters"]
            .as_array()
            .expect("list")
            .iter()
            .any(|p| p == &ca_key_parameter),
        "{facts}"
    );
    assert_eq!(facts["init_key_starts"], "-----BEGIN PRIVATE KEY-----");
    // The real rotation function ran and refused the unknown serial.
    assert_eq!(facts["invoke"]["outcome"], "refused", "{facts}");

    // The aws CLI: the CA key with decryption, and the device table.
    let key = run(
        "aws",
        &[
            "ssm",
            "get-parameter",
            "--name",
            &ca_key_parameter,
            "--with-decryption",
            "--query",
            "Parameter.Value",
            "--output",
            "text",
        ],
        &env,
    );
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    let scan: serde_json::Value = serde_json::from_str(&run(
        "aws",
        &["dynamodb", "scan", "--table-name", DEVICE_TABLE],
        &env,
    ))
    .expect("scan JSON");
    let serials: Vec<&str> = scan["Items"]
        .as_array()
        .expect("Items")
        .iter()
        .filter_map(|i| i["SerialNumber"]["S"].as_str())
        .collect();
    assert!(
        serials.contains(&SAMPLE_SERIAL) && serials.contains(&"BOTO3-2"),
        "{serials:?}"
    );

    // A row boto3 wrote is a row jitpilot's own readers (TUI, rotation function) read.
    let reader = LocalCloud::open_read_only(&data_dir).expect("read beside serve");
    let row = reader
        .store()
        .get_item(DEVICE_TABLE, "BOTO3-2")
        .expect("read")
        .expect("row");
    assert_eq!(row["CrState"], "CR_WHITELISTED");
    assert!(reader
        .store()
        .get_item(DEVICE_TABLE, "BOTO3-1")
        .expect("read")
        .is_none());
}
