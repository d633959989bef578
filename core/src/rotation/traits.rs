//! The function's view of the cloud: four small synchronous traits. The
//! local cloud implements them over its SQLite store
//! (`cloud::local::functions`); the AWS Lambda (`lambda/`, through
//! `cloud::aws::function`) implements them over the IoT, DynamoDB and SSM APIs.

use super::wire::DeviceRow;
use crate::model::{Certificate, CertificateStatus};
use serde_json::Value;

/// A backend call that failed (database error, API error). The message
/// names the operation and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

impl BackendError {
    /// Wraps any error with the operation that failed.
    pub fn during(operation: &str, err: impl std::fmt::Display) -> BackendError {
        BackendError(format!("{operation}: {err}"))
    }
}

/// Result of a backend call.
pub type BackendResult<T> = Result<T, BackendError>;

/// The IoT registry, as far as the rotation touches it.
pub trait Registry: Send + Sync {
    /// `DescribeCertificate`: `None` when unknown.
    fn certificate(&self, cert_id: &str) -> BackendResult<Option<Certificate>>;
    /// `DescribeCACertificate`: the CA's PEM, `None` when unknown.
    fn ca_certificate_pem(&self, ca_id: &str) -> BackendResult<Option<String>>;
    /// `RegisterCertificate` with its CA and status. `cert_id` is the id the
    /// function computed (hex SHA-256 of the DER, as AWS IoT assigns it);
    /// returns the certificateId the registry actually assigned, which the
    /// function uses from then on (emulators may assign others).
    fn register_certificate(
        &self,
        cert_id: &str,
        pem: &str,
        ca_id: &str,
        status: CertificateStatus,
    ) -> BackendResult<String>;
    /// `UpdateCertificate --new-status`.
    fn set_certificate_status(&self, cert_id: &str, status: CertificateStatus)
        -> BackendResult<()>;
    /// `DeleteCertificate`; `false` when it was already gone.
    fn delete_certificate(&self, cert_id: &str) -> BackendResult<bool>;
    /// `AttachThingPrincipal` (idempotent).
    fn attach_thing_principal(&self, thing: &str, cert_id: &str) -> BackendResult<()>;
    /// `DetachThingPrincipal` (idempotent).
    fn detach_thing_principal(&self, thing: &str, cert_id: &str) -> BackendResult<()>;
    /// `ListThingPrincipals`: certificateIds attached to the thing.
    fn thing_principals(&self, thing: &str) -> BackendResult<Vec<String>>;
    /// `AttachPolicy` (idempotent).
    fn attach_policy(&self, policy: &str, cert_id: &str) -> BackendResult<()>;
    /// Runs `writes` (one invocation's effects and its audit record) so
    /// that they land together where the backend can: the local store makes
    /// them one transaction with one commit. AWS has no transaction across
    /// IoT, DynamoDB and the logs, so the default runs them as they come;
    /// the plans order their effects so that a failure part-way is finished
    /// by the device's retry either way.
    fn atomically(&self, writes: &mut dyn FnMut() -> BackendResult<()>) -> BackendResult<()> {
        writes()
    }
}

/// The `CertRotationDevices` table.
pub trait DeviceTable: Send + Sync {
    /// `GetItem` by `SerialNumber`.
    fn get(&self, serial: &str) -> BackendResult<Option<DeviceRow>>;
    /// `PutItem`.
    fn put(&self, row: &DeviceRow) -> BackendResult<()>;
}

/// The parameter store holding CA keys.
pub trait ParameterStore: Send + Sync {
    /// `GetParameter --with-decryption` of a SecureString; `None` when absent.
    fn secure_string(&self, name: &str) -> BackendResult<Option<String>>;
}

/// Where decisions and their reasons go: the event log and the event stream.
pub trait AuditSink: Send + Sync {
    /// Records one decision. Never fails the invocation: a sink that cannot
    /// write logs the failure itself.
    fn record(&self, kind: &str, subject: &str, detail: &Value);
}
