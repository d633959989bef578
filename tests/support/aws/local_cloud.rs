//! The second target of the AWS backend suite: `jitpilot serve` on free
//! loopback ports (MQTT and the AWS API), over its own data dir, with the
//! exports of `jitpilot env --json` — what a user gets from
//! `eval "$(jitpilot env)"`.

use super::super::api::{env_keys, Keys};
use super::super::endpoint::{serve, Server};
use std::path::PathBuf;

/// `jitpilot serve`, killed on drop.
pub struct LocalCloudApi {
    /// The cloud's own data dir (never the AWS backend's).
    pub data_dir: PathBuf,
    /// The MQTT endpoint, `127.0.0.1:PORT`.
    pub mqtt_addr: String,
    pub keys: Keys,
    // Dropped before the directory: the server is killed first. Boxed: a
    // `Target` is one of these or moto's much smaller handle.
    _server: Box<Server>,
    _dir: tempfile::TempDir,
}

impl LocalCloudApi {
    pub fn start() -> LocalCloudApi {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("cloud");
        let server = serve(&data_dir);
        let keys = env_keys(&data_dir);
        assert_eq!(keys.endpoint_url, server.api, "env names the running API");
        LocalCloudApi {
            data_dir,
            mqtt_addr: server.addr.clone(),
            keys,
            _server: Box::new(server),
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
