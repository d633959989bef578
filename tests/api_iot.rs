//! The local cloud's AWS IoT API driven by outside clients, over HTTP with
//! SigV4, against `jitpilot serve`: boto3 sets up JITP as the sample's
//! `certs_etc.py` does and a paho-mqtt device is provisioned by that
//! template (`tests/py/iot_api_jitp.py`); the aws CLI answers.
//!
//! Needs python3 with boto3, paho-mqtt and cryptography, and the aws CLI
//! (`scripts/test` installs them).

mod support;
use support::Bounded;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::api::{env_keys, Keys};
use support::endpoint::Server;

/// `jitpilot serve --json` with the MQTT endpoint and the AWS API on free
/// ports, and what `jitpilot env` exports for it; killed on drop.
struct Serve {
    _server: Server,
    keys: Keys,
    mqtt: String,
    root_ca: String,
}

fn serve(data_dir: &Path) -> Serve {
    let server = support::endpoint::serve(data_dir);
    assert!(!server.api.is_empty(), "serve serves the AWS API");
    Serve {
        keys: env_keys(data_dir),
        mqtt: server.addr.clone(),
        root_ca: server.root_ca.display().to_string(),
        _server: server,
    }
}

impl Serve {
    /// A command with only the AWS settings `jitpilot env` gives (no
    /// profile, config file or credentials of the machine's user).
    fn with_aws_env(&self, mut command: Command, home: &Path) -> Command {
        self.keys.isolate(&mut command, home);
        command.env("AWS_EC2_METADATA_DISABLED", "true");
        command
    }
}

fn run(mut command: Command, what: &str) -> String {
    let out = command
        .bounded_output()
        .unwrap_or_else(|e| panic!("{what} runs: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn boto3_sets_up_jitp_and_a_paho_device_is_provisioned_by_its_template() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = serve(&tmp.path().join("data"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/iot_api_jitp.py");
    let mut python = server.with_aws_env(Command::new("python3"), tmp.path());
    python
        .arg(&script)
        .args([
            "--mqtt-addr",
            &server.mqtt,
            "--root-ca",
            &server.root_ca,
            "--workdir",
        ])
        .arg(tmp.path().join("device"));
    let stdout = run(
        python,
        "tests/py/iot_api_jitp.py (python3 -m pip install boto3 paho-mqtt cryptography)",
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the script prints one JSON line: {e}: {stdout}"));
    assert_eq!(report["wrong_code"], "CertificateValidationException");
    assert_eq!(report["again"], "ResourceAlreadyExistsException");
    assert_eq!(
        (report["first"].as_str(), report["second"].as_str()),
        (Some("refused"), Some("accepted"))
    );
    assert_eq!(report["republished"], true);
    assert_eq!(report["rule_gone"], "UnauthorizedException");
    let port = server
        .mqtt
        .rsplit_once(':')
        .map(|(_, p)| p)
        .unwrap_or_default();
    assert_eq!(report["endpoint"], format!("localhost:{port}"));

    // The registry the TUI shows has the device, provisioned by boto3's template.
    drop(server);
    let status = run(
        {
            let mut c = support::jitpilot();
            c.args(["status", "--json", "--data-dir"])
                .arg(tmp.path().join("data"));
            c
        },
        "jitpilot status",
    );
    let status: Value = serde_json::from_str(&status).expect("status --json");
    let certs = status["certificates"].as_array().expect("certificates");
    let device = certs
        .iter()
        .find(|c| c["id"] == report["certificate_id"])
        .unwrap_or_else(|| panic!("the device's certificate is registered: {status}"));
    assert_eq!(device["status"], "ACTIVE");
    assert_eq!(device["things"], serde_json::json!(["PYJITP0001"]));
}

#[test]
fn the_aws_cli_answers_get_registration_code_and_list_ca_certificates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = serve(&tmp.path().join("data"));
    let aws = |args: &[&str]| {
        let mut c = server.with_aws_env(Command::new("aws"), tmp.path());
        c.args(["iot"]).args(args).args(["--output", "json"]);
        let out = run(
            c,
            &format!("aws iot {} (python3 -m pip install awscli)", args.join(" ")),
        );
        serde_json::from_str::<Value>(&out)
            .unwrap_or_else(|e| panic!("aws iot {args:?} printed JSON: {e}: {out}"))
    };
    let code = aws(&["get-registration-code"]);
    let code = code["registrationCode"].as_str().expect("registrationCode");
    assert_eq!(code.len(), 64, "{code}");
    assert_eq!(aws(&["get-registration-code"])["registrationCode"], code);
    assert_eq!(
        aws(&["list-ca-certificates"])["certificates"],
        serde_json::json!([])
    );

    // A wrong registration code, through the CLI as certs_etc.py calls it.
    let ca_dir = tmp.path().join("ca");
    std::fs::create_dir_all(&ca_dir).expect("mkdir");
    let openssl = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.current_dir(&ca_dir).args(args);
        run(c, &format!("openssl {}", args.join(" ")));
    };
    openssl(&["genrsa", "-out", "ca.key", "2048"]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-key",
        "ca.key",
        "-sha256",
        "-days",
        "2",
        "-out",
        "ca.pem",
        "-subj",
        "/C=US/CN=CliCA",
    ]);
    openssl(&["genrsa", "-out", "v.key", "2048"]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "v.key",
        "-out",
        "v.csr",
        "-subj",
        "/C=US/CN=wrong-code",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "v.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "v.pem",
        "-days",
        "2",
        "-sha256",
    ]);
    let mut c = server.with_aws_env(Command::new("aws"), tmp.path());
    c.current_dir(&ca_dir).args([
        "iot",
        "register-ca-certificate",
        "--ca-certificate",
        "file://ca.pem",
        "--verification-certificate",
        "file://v.pem",
    ]);
    let out = c.bounded_output().expect("aws runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CertificateValidationException"),
        "{stderr}"
    );

    // The right one, then the CA is listed.
    openssl(&[
        "req",
        "-new",
        "-key",
        "v.key",
        "-out",
        "v.csr",
        "-subj",
        &format!("/C=US/CN={code}"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "v.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "v.pem",
        "-days",
        "2",
        "-sha256",
    ]);
    let mut c = server.with_aws_env(Command::new("aws"), tmp.path());
    c.current_dir(&ca_dir).args([
        "iot",
        "register-ca-certificate",
        "--ca-certificate",
        "file://ca.pem",
        "--verification-certificate",
        "file://v.pem",
        "--set-as-active",
        "--output",
        "text",
    ]);
    // certs_etc.py reads the id as the text output's second field.
    let text = run(c, "aws iot register-ca-certificate");
    let id = text
        .split_whitespace()
        .nth(1)
        .expect("arn and id")
        .to_string();
    let listed = aws(&["list-ca-certificates"]);
    assert_eq!(listed["certificates"][0]["certificateId"], id.as_str());
    assert_eq!(listed["certificates"][0]["status"], "ACTIVE");
}
