//! What the walkthrough asks of a cloud, whichever it is.
//!
//! [`Cloud`] is implemented by the embedded local cloud ([`local`]) and by
//! the AWS backend ([`aws`], through aws-sdk-rust). The TUI and the
//! headless commands open either through [`open`] and use only this trait
//! and its event stream, so the same screens and commands work on both.
//! The walkthrough's control plane (`init`, the CAs as shown) is decided
//! once, in [`control`], for both.

pub mod aws;
pub mod control;
pub mod events;
pub mod local;
pub mod open;
pub mod reports;

pub use events::{CloudEvent, EventBus, EventKind, EventReceiver};
pub use open::{Backend, CloudOptions, Connected};
pub use reports::*;

use crate::model::CertificateStatus;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors a cloud operation reports. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("stack template: {0}")]
    Template(String),
    #[error("the stack is not deployed: run `jitpilot deploy` first")]
    NotDeployed,
    #[error("the CAs are not set up: run `jitpilot init` first")]
    NotInitialized,
    #[error("{0}")]
    Other(String),
}

/// Result alias for cloud operations.
pub type CloudResult<T> = Result<T, CloudError>;

/// Stack parameter values given on the command line (`Key=Value`), by name.
pub type ParameterOverrides = std::collections::BTreeMap<String, String>;

/// Where devices connect and what they trust.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceEndpoint {
    /// `host:port` of the MQTT endpoint.
    pub addr: String,
    /// Name to verify in the server certificate (SNI).
    pub server_name: String,
    /// PEM file of the CA that devices trust for the endpoint.
    pub root_ca_path: PathBuf,
    /// The listening socket, when the endpoint runs in this process.
    #[serde(skip)]
    pub local_addr: Option<SocketAddr>,
}

/// The cloud side of the walkthrough.
#[async_trait::async_trait]
pub trait Cloud: Send + Sync {
    /// `local` or `aws`.
    fn backend(&self) -> &'static str;
    /// Step 1: create or update the stack (`aws cloudformation deploy`),
    /// every parameter keeping its current value (its default at creation).
    async fn deploy(&self) -> CloudResult<DeployReport> {
        self.deploy_with_parameters(&ParameterOverrides::new())
            .await
    }
    /// Step 1 with `--parameter-overrides`: the named stack parameters take
    /// these values, the others keep their current ones (as
    /// `aws cloudformation deploy` does). An unknown name or a value outside
    /// the parameter's `AllowedValues` is refused before anything changes.
    async fn deploy_with_parameters(
        &self,
        overrides: &ParameterOverrides,
    ) -> CloudResult<DeployReport>;
    /// Step 2: CAs, JITP template, CA key in the parameter store, whitelist,
    /// factory credentials for `devices` devices, the sample's serial first
    /// (`init --devices N`).
    async fn init(&self, devices: usize) -> CloudResult<InitReport>;
    /// Everything the walkthrough created, read back.
    async fn status(&self) -> CloudResult<StatusReport>;
    /// The device table's rows (`CertRotationDevices`), ordered by serial:
    /// where each device is in the walkthrough (`CrState`).
    async fn device_rows(&self) -> CloudResult<Vec<crate::rotation::wire::Item>>;
    /// The sample's `certs_etc.py --delete`.
    async fn cleanup(&self) -> CloudResult<CleanupReport>;
    /// The sample's `delete_cf.bash`.
    async fn teardown(&self) -> CloudResult<TeardownReport>;
    /// `aws iot update-certificate --new-status` (fault injection: revoke).
    async fn set_certificate_status(
        &self,
        cert_id: &str,
        status: CertificateStatus,
    ) -> CloudResult<()>;
    /// Where devices connect.
    fn device_endpoint(&self) -> Option<DeviceEndpoint>;
    /// A new subscriber to the event stream.
    fn events(&self) -> EventReceiver;
}
