//! Shared by the AWS backend tests: the two targets the suite runs against
//! ([`Target`]: moto's server, or jitpilot's own local cloud answering the
//! AWS APIs), and the `jitpilot` binary run with `--backend aws` against
//! either.

pub mod local_cloud;
pub mod mosquitto;
pub mod rules_engine;
pub mod walkthrough;

pub use local_cloud::LocalCloudApi;

use super::Bounded;
use jitpilot::cloud::aws::{AwsOptions, Clients};
use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// moto's server on 127.0.0.1, killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
    /// moto's request recorder writes every request it answers here: what
    /// jitpilot asked of the API, where moto does not keep a field AWS keeps.
    recording: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_with(false)
    }

    /// moto assigning certificateIds as AWS does (SHA-256 of the DER, moto's
    /// `iot.use_valid_cert` setting) instead of its default SHA-256 of the
    /// PEM text: for tests whose devices check the id they are given, as
    /// devices on AWS can.
    pub fn start_with_aws_certificate_ids() -> Moto {
        Moto::start_with(true)
    }

    fn start_with(aws_certificate_ids: bool) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script = format!(
            "from moto.core.config import default_user_config as c\n\
             c['iot']['use_valid_cert'] = {}\n\
             from moto.server import main\n\
             main(['-H', '127.0.0.1', '-p', '{port}'])\n",
            if aws_certificate_ids { "True" } else { "False" }
        );
        let recording = tempfile::tempdir().expect("tempdir");
        let child = Command::new("python3")
            .args(["-c", &script])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env(
                "MOTO_RECORDER_FILEPATH",
                recording.path().join("requests.jsonl"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (moto's server needs it)");
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            recording,
        };
        moto.wait_ready(port);
        moto
    }

    /// Every request moto answered so far: `method`, `url`, `headers`, `body`
    /// (base64 when `body_encoded`), from its recorder.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.recording.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until the server answers HTTP, or fails saying how to install it.
    fn wait_ready(&mut self, port: u16) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto's server exited ({status}); install it: python3 -m pip install 'moto[server]'");
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let request = "GET /moto-api/reset HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
                let mut answer = String::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto's server did not answer within 120 s"
            );
            // Polling a starting process: there is no event to wait on.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the AWS backend suite runs against. Each test body takes one and is
/// instantiated once per target (`…_on_moto`, `…_on_jitpilot`).
pub enum Target {
    /// moto's server: the AWS APIs without a data plane. mosquitto stands in
    /// for IoT's MQTT endpoint and the test plays JITP and the rules engine.
    Moto(Moto),
    /// `jitpilot serve`: the same APIs over the local cloud, with its MQTT
    /// endpoint, real JITP, the rules and the rotation function. Nothing is
    /// played by hand.
    Jitpilot(LocalCloudApi),
}

impl Target {
    pub fn moto() -> Target {
        Target::Moto(Moto::start())
    }

    /// moto with AWS's certificateIds (see [`Moto::start_with_aws_certificate_ids`]).
    pub fn moto_with_aws_certificate_ids() -> Target {
        Target::Moto(Moto::start_with_aws_certificate_ids())
    }

    pub fn jitpilot() -> Target {
        Target::Jitpilot(LocalCloudApi::start())
    }

    /// `--endpoint-url`.
    pub fn url(&self) -> &str {
        match self {
            Target::Moto(m) => &m.url,
            Target::Jitpilot(j) => &j.keys.endpoint_url,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Moto(_) => "moto",
            Target::Jitpilot(_) => "jitpilot",
        }
    }

    pub fn moto_server(&self) -> Option<&Moto> {
        match self {
            Target::Moto(m) => Some(m),
            Target::Jitpilot(_) => None,
        }
    }

    pub fn local_cloud(&self) -> Option<&LocalCloudApi> {
        match self {
            Target::Moto(_) => None,
            Target::Jitpilot(j) => Some(j),
        }
    }

    /// The credentials the target accepts: moto any, jitpilot only its
    /// data dir's own key.
    pub fn credentials(&self) -> aws_credential_types::Credentials {
        match self {
            Target::Moto(_) => test_credentials(),
            Target::Jitpilot(j) => aws_credential_types::Credentials::new(
                j.keys.access_key_id.clone(),
                j.keys.secret_access_key.clone(),
                None,
                None,
                "jitpilot-env",
            ),
        }
    }

    /// The environment a user sets for this target: the key, and for
    /// jitpilot the endpoint CA `jitpilot env` exports.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let creds = self.credentials();
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID", creds.access_key_id().to_string()),
            (
                "AWS_SECRET_ACCESS_KEY",
                creds.secret_access_key().to_string(),
            ),
        ];
        if let Target::Jitpilot(j) = self {
            vars.push((
                "JITPILOT_IOT_ROOT_CA",
                j.keys
                    .iot_root_ca
                    .clone()
                    .expect("env exports the endpoint CA"),
            ));
        }
        vars
    }
}

/// The jitpilot binary with `--backend aws` against `target`, its
/// credentials, no profile files.
pub fn jitpilot(target: &Target, data_dir: &Path, package: Option<&Path>, args: &[&str]) -> Output {
    jitpilot_command(target, data_dir, package, args)
        .bounded_output()
        .expect("jitpilot runs")
}

/// The command [`jitpilot`] runs, to run it another way (e.g. spawned).
pub fn jitpilot_command(
    target: &Target,
    data_dir: &Path,
    package: Option<&Path>,
    args: &[&str],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitpilot"));
    cmd.args([
        "--backend",
        "aws",
        "--endpoint-url",
        target.url(),
        "--region",
        "us-east-1",
    ])
    .arg("--data-dir")
    .arg(data_dir)
    .args(args);
    isolate_env(&mut cmd);
    cmd.envs(target.env());
    match package {
        Some(p) => cmd.env("JITPILOT_LAMBDA_PACKAGE", p),
        None => cmd.env("JITPILOT_LAMBDA_PACKAGE", data_dir.join("no-such-package")),
    };
    cmd
}

/// What a user's environment could carry into a test's AWS run: removed.
pub const FOREIGN_ENV: &[&str] = &[
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "JITPILOT_CODE_BUCKET",
    "JITPILOT_DATA_DIR",
    "JITPILOT_IOT_ENDPOINT",
    "JITPILOT_IOT_ROOT_CA",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

pub fn isolate_env(cmd: &mut Command) {
    for var in FOREIGN_ENV {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent/jitpilot-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/jitpilot-test-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

pub fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "jitpilot failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

pub fn stderr_of(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub async fn clients(target: &Target, data_dir: &Path) -> Clients {
    // Static test credentials: the process's environment is never changed
    // (tests run in parallel) and a real profile cannot leak in.
    let options = AwsOptions {
        region: Some("us-east-1".into()),
        endpoint_url: Some(target.url().to_string()),
        data_dir: data_dir.to_path_buf(),
        credentials: Some(target.credentials()),
        ..AwsOptions::default()
    };
    Clients::load(&options).await.expect("clients")
}

/// The credentials moto accepts.
pub fn test_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("testing", "testing", None, None, "jitpilot-tests")
}

/// A stand-in `bootstrap` (moto stores the code but never runs it; the
/// local cloud runs its built-in rotation function for jitpilot's stack).
pub fn fake_bootstrap(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("bootstrap");
    std::fs::write(&path, b"\x7fELF jitpilot rotation function stand-in").expect("write");
    path
}
