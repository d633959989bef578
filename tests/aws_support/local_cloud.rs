//! The second target of the AWS backend suite: `jitpilot serve` on free
//! loopback ports (MQTT and the AWS API), over its own data dir, with the
//! exports of `jitpilot env --json` — what a user gets from
//! `eval "$(jitpilot env)"`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What `jitpilot env --json` prints.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvKeys {
    pub endpoint_url: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    /// `JITPILOT_IOT_ROOT_CA`: the MQTT endpoint's CA.
    pub iot_root_ca: Option<String>,
}

/// `jitpilot serve`, killed on drop.
pub struct LocalCloudApi {
    child: Child,
    /// The cloud's own data dir (never the AWS backend's).
    pub data_dir: PathBuf,
    /// The MQTT endpoint, `127.0.0.1:PORT`.
    pub mqtt_addr: String,
    pub keys: EnvKeys,
    _dir: tempfile::TempDir,
}

impl LocalCloudApi {
    pub fn start() -> LocalCloudApi {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("cloud");
        let mut child = Command::new(env!("CARGO_BIN_EXE_jitpilot"))
            .args(["serve", "--json", "--mqtt-addr", "127.0.0.1:0"])
            .args(["--api-addr", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env_remove("JITPILOT_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jitpilot serve");
        // serve prints its JSON line once it listens; EOF if it dies.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("serve prints its endpoint");
        let doc: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("serve --json printed {line:?}: {e}"));
        let mqtt_addr = doc["endpoint"].as_str().expect("endpoint").to_string();
        let keys = env_keys(&data_dir);
        assert_eq!(
            Some(keys.endpoint_url.as_str()),
            doc["apiEndpoint"].as_str(),
            "env names the running API"
        );
        LocalCloudApi {
            child,
            data_dir,
            mqtt_addr,
            keys,
            _dir: dir,
        }
    }

    /// What `DescribeEndpoint` answers and devices dial: `localhost:PORT`.
    pub fn iot_endpoint(&self) -> String {
        let port = self.mqtt_addr.rsplit(':').next().expect("port");
        format!("localhost:{port}")
    }

    /// The endpoint CA's PEM (`<data-dir>/endpoint-ca.pem`).
    pub fn endpoint_ca_pem(&self) -> String {
        std::fs::read_to_string(self.keys.iot_root_ca.as_deref().expect("iotRootCa"))
            .expect("endpoint CA")
    }
}

impl Drop for LocalCloudApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `jitpilot env --json` for the cloud serving `data_dir`.
fn env_keys(data_dir: &Path) -> EnvKeys {
    let out = Command::new(env!("CARGO_BIN_EXE_jitpilot"))
        .args(["env", "--json", "--data-dir"])
        .arg(data_dir)
        .env_remove("JITPILOT_DATA_DIR")
        .output()
        .expect("run jitpilot env");
    assert!(
        out.status.success(),
        "jitpilot env: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("env --json is JSON")
}
