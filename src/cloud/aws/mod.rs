//! The AWS backend: the same walkthrough on a real account (DESIGN §2.2),
//! through aws-sdk-rust.
//!
//! [`AwsCloud`] implements the [`Cloud`] trait that the local cloud
//! implements, so every command and the TUI run unchanged with
//! `--backend aws`. Credentials and region come from the standard chain;
//! `--endpoint-url` points everything at an emulator (moto's server in the
//! tests).
//!
//! Layout:
//! - `clients.rs`  [`AwsOptions`], the SDK clients (adaptive retries)
//! - `errors.rs`   [`AwsError`] (from `jitpilot-aws-function`): no credentials, AccessDenied naming the permission, throttling
//! - `package.rs`  the rotation function's `bootstrap.zip` for `provided.al2023`
//! - `code.rs`     the S3 bucket and upload of that package
//! - `stack.rs`    deploy and teardown: the stack from `cfn/`, its events followed
//! - `emulator.rs` what moto's CloudFormation lacks (topic rules), bridged in the open
//! - `init.rs`     the control plane's `init` (`cloud/control/`) through the APIs, and the observer identity
//! - `status.rs`   everything read back, and the sample's `certs_etc.py --delete`
//! - `function`    the rotation function's traits over IoT, DynamoDB, SSM and iot-data (crate `jitpilot-aws-function`)
//! - `lambda`      the Lambda handler: the rules' SQL output in, the function's answer out (same crate)
//! - `observer.rs` the TUI's MQTT subscription to `$aws/events/#` and `/cert-rotation/#`
//! - `pacing.rs`   device starts spaced for IoT's registration rate (~10 TPS)

pub mod clients;
pub mod code;
pub mod emulator;
pub mod errors;
pub mod init;
pub mod observer;
pub mod pacing;
pub mod package;
pub mod registry;
pub mod stack;
pub mod status;
pub mod table;

pub use clients::{AwsOptions, Clients};
pub use errors::{AwsError, AwsResult};
/// The rotation function over the AWS APIs and its Lambda handler: the
/// `jitpilot-aws-function` crate, which the `bootstrap` is built from.
pub use jitpilot_aws_function::{function, lambda};

use crate::cloud::{
    CleanupReport, Cloud, CloudError, CloudEvent, CloudResult, DeployReport, DeviceEndpoint,
    EventBus, EventReceiver, InitReport, StatusReport, TeardownReport,
};
use crate::fleet::Fleet;
use crate::model::CertificateStatus;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Amazon's root CAs (RSA "Amazon Root CA 1" and EC "Amazon Root CA 3"):
/// what devices trust for the account's `iot:Data-ATS` endpoint. Shipped in
/// the binary because devices may be set up offline.
pub const AMAZON_ROOT_CAS: &str = include_str!("amazon-root-ca.pem");
/// The MQTT port of AWS IoT Core with X.509 client certificates.
pub const MQTT_PORT: u16 = 8883;

/// The walkthrough on an AWS account. Cheap to clone.
#[derive(Clone)]
pub struct AwsCloud {
    inner: Arc<Inner>,
}

struct Inner {
    clients: Clients,
    options: AwsOptions,
    fleet: Fleet,
    bus: EventBus,
    /// `iot:Data-ATS` host, once known (init or status ask DescribeEndpoint).
    data_ats_host: Mutex<Option<String>>,
}

impl AwsCloud {
    /// Loads the SDK configuration and the fleet definition. No call to AWS
    /// is made yet.
    pub async fn connect(options: AwsOptions, bus: EventBus) -> CloudResult<AwsCloud> {
        let clients = Clients::load(&options).await?;
        let fleet = Fleet::load(&options.data_dir).map_err(|e| CloudError::Other(e.to_string()))?;
        let data_ats_host = std::fs::read_to_string(endpoint_file(&options.data_dir))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        Ok(AwsCloud {
            inner: Arc::new(Inner {
                clients,
                options,
                fleet,
                bus,
                data_ats_host: Mutex::new(data_ats_host),
            }),
        })
    }

    /// The SDK clients.
    pub fn clients(&self) -> &Clients {
        &self.inner.clients
    }

    /// The options this cloud was opened with.
    pub fn options(&self) -> &AwsOptions {
        &self.inner.options
    }

    /// The fleet definition (CA subjects, serials).
    pub fn fleet(&self) -> &Fleet {
        &self.inner.fleet
    }

    /// Emits an event to the stream.
    pub fn emit(&self, event: CloudEvent) {
        self.inner.bus.emit(event);
    }

    /// `<data-dir>/aws`: what the AWS backend keeps locally.
    pub fn local_dir(&self) -> PathBuf {
        self.inner.options.data_dir.join("aws")
    }

    /// `DescribeEndpoint --endpoint-type iot:Data-ATS`, remembered in the
    /// data dir so devices and `device_endpoint` find it without a call.
    pub async fn data_ats_host(&self) -> AwsResult<String> {
        let out = self
            .clients()
            .iot
            .describe_endpoint()
            .endpoint_type("iot:Data-ATS")
            .send()
            .await
            .map_err(|e| errors::api("DescribeEndpoint", "iot:DescribeEndpoint", e))?;
        let host = out
            .endpoint_address
            .ok_or_else(|| AwsError::Other("DescribeEndpoint returned no address".into()))?;
        let dir = self.local_dir();
        crate::datadir::create_private_dir(&dir).map_err(|e| AwsError::Other(e.to_string()))?;
        crate::datadir::write_atomically(
            &endpoint_file(&self.inner.options.data_dir),
            host.as_bytes(),
            false,
        )
        .map_err(|e| AwsError::Other(e.to_string()))?;
        if let Ok(mut cached) = self.inner.data_ats_host.lock() {
            *cached = Some(host.clone());
        }
        Ok(host)
    }

    /// Where Amazon's root CAs are written for devices.
    pub fn root_ca_path(&self) -> PathBuf {
        self.local_dir().join("AmazonRootCA.pem")
    }

    /// What devices and the observer trust for the MQTT endpoint: Amazon's
    /// roots, followed by the CA of `--iot-root-ca` (`JITPILOT_IOT_ROOT_CA`)
    /// when one is named — the local cloud's endpoint CA that `jitpilot env`
    /// exports, or a custom domain's CA.
    pub fn trusted_roots(&self) -> AwsResult<String> {
        match &self.inner.options.iot_root_ca {
            None => Ok(AMAZON_ROOT_CAS.to_string()),
            Some(path) => Ok(with_extra_root(&read_extra_root(path)?)),
        }
    }
}

/// Amazon's roots followed by `extra_pem`.
fn with_extra_root(extra_pem: &str) -> String {
    format!("{}\n{}\n", AMAZON_ROOT_CAS.trim_end(), extra_pem.trim())
}

/// The CA certificate(s) of `--iot-root-ca`, checked to be certificates.
fn read_extra_root(path: &std::path::Path) -> AwsResult<String> {
    let what = "--iot-root-ca (JITPILOT_IOT_ROOT_CA)";
    let pem = std::fs::read_to_string(path).map_err(|e| {
        AwsError::Other(format!(
            "{what} names {}, which cannot be read ({e}); point it at a PEM CA certificate (`jitpilot env` exports the local cloud's endpoint-ca.pem), or unset it",
            path.display()
        ))
    })?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(AwsError::Other(format!(
            "{what} names {}, which holds no PEM certificate; point it at a CA certificate (`jitpilot env` exports the local cloud's endpoint-ca.pem), or unset it",
            path.display()
        )));
    }
    crate::pki::parse_cert(&pem).map_err(|e| {
        AwsError::Other(format!(
            "{what} names {}, whose certificate does not parse ({e}); point it at a PEM CA certificate, or unset it",
            path.display()
        ))
    })?;
    Ok(pem)
}

/// `HOST[:PORT]` (port 8883 when absent; `[v6]:port` accepted) as host and
/// port. A port that is not a number is left in the host, where the
/// connection's error names it.
fn split_host_port(endpoint: &str) -> (String, u16) {
    if let Some((host, port)) = endpoint.rsplit_once(':') {
        if let Ok(port) = port.parse::<u16>() {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            return (host.to_string(), port);
        }
    }
    (endpoint.to_string(), MQTT_PORT)
}

/// `<data-dir>/aws/endpoint`: the `iot:Data-ATS` host.
fn endpoint_file(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("aws").join("endpoint")
}

#[async_trait::async_trait]
impl Cloud for AwsCloud {
    fn backend(&self) -> &'static str {
        "aws"
    }

    async fn deploy_with_parameters(
        &self,
        overrides: &crate::cloud::ParameterOverrides,
    ) -> CloudResult<DeployReport> {
        Ok(stack::deploy(self, overrides).await?)
    }

    async fn init(&self, devices: usize) -> CloudResult<InitReport> {
        init::run(self, devices).await
    }

    async fn status(&self) -> CloudResult<StatusReport> {
        status::status(self).await
    }

    async fn device_rows(&self) -> CloudResult<Vec<crate::rotation::wire::Item>> {
        Ok(table::scan(self, crate::vocabulary::DEVICE_TABLE).await?)
    }

    async fn cleanup(&self) -> CloudResult<CleanupReport> {
        status::cleanup(self).await
    }

    async fn teardown(&self) -> CloudResult<TeardownReport> {
        Ok(stack::teardown(self).await?)
    }

    async fn set_certificate_status(
        &self,
        cert_id: &str,
        status: CertificateStatus,
    ) -> CloudResult<()> {
        let status = aws_sdk_iot::types::CertificateStatus::from(status.as_str());
        self.clients()
            .iot
            .update_certificate()
            .certificate_id(cert_id)
            .new_status(status)
            .send()
            .await
            .map_err(|e| errors::api("UpdateCertificate", "iot:UpdateCertificate", e))?;
        Ok(())
    }

    fn device_endpoint(&self) -> Option<DeviceEndpoint> {
        let (host, port) = match &self.inner.options.iot_endpoint {
            Some(endpoint) => split_host_port(endpoint),
            // AWS answers a host (port 8883); jitpilot's local cloud answers
            // `localhost:PORT` when its MQTT endpoint is on another port.
            None => split_host_port(&self.inner.data_ats_host.lock().ok()?.clone()?),
        };
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Some(DeviceEndpoint {
            addr,
            server_name: host,
            root_ca_path: self.root_ca_path(),
            local_addr: None,
        })
    }

    fn events(&self) -> EventReceiver {
        self.inner.bus.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::{read_extra_root, split_host_port, with_extra_root, AMAZON_ROOT_CAS};

    #[test]
    fn an_extra_root_follows_amazons_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let subject = crate::pki::Subject {
            common_name: Some("endpoint CA".into()),
            ..Default::default()
        };
        let ca =
            crate::pki::create_ca(&subject, crate::pki::KeyAlgorithm::EcdsaP256, 1).expect("CA");
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, &ca.cert_pem).expect("write");
        let roots = with_extra_root(&read_extra_root(&good).expect("a CA certificate"));
        assert!(roots.starts_with(AMAZON_ROOT_CAS.trim_end()));
        assert!(roots.trim_end().ends_with(ca.cert_pem.trim()));

        let missing = dir.path().join("missing.pem");
        let err = read_extra_root(&missing).expect_err("missing").to_string();
        assert!(
            err.contains("--iot-root-ca") && err.contains("missing.pem"),
            "{err}"
        );
        let key = dir.path().join("key.pem");
        std::fs::write(&key, &ca.key_pem).expect("write");
        let err = read_extra_root(&key).expect_err("a key").to_string();
        assert!(
            err.contains("no PEM certificate") && err.contains("key.pem"),
            "{err}"
        );
    }

    #[test]
    fn iot_endpoint_overrides_take_host_and_optional_port() {
        assert_eq!(
            split_host_port("localhost:18883"),
            ("localhost".into(), 18883)
        );
        assert_eq!(
            split_host_port("a1b2-ats.iot.eu-west-1.amazonaws.com"),
            ("a1b2-ats.iot.eu-west-1.amazonaws.com".into(), 8883)
        );
        assert_eq!(split_host_port("[::1]:9000"), ("::1".into(), 9000));
    }
}
