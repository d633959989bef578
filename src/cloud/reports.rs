//! What the cloud operations report; `--json` prints these as they are.

use crate::model::{StackEvent, StackResource};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Result of `deploy`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    pub stack: String,
    /// `CREATE_COMPLETE`, `UPDATE_COMPLETE`, or the unchanged status for a no-op.
    pub status: String,
    /// False when nothing changed.
    pub changed: bool,
    pub resources: Vec<StackResource>,
    /// The events of this deployment, oldest first.
    pub events: Vec<StackEvent>,
}

/// A CA as the walkthrough shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaSummary {
    pub id: String,
    /// "Vendor CA" or "Manufacturer CA".
    pub label: String,
    /// One-line subject, `CN=..., O=...`.
    pub subject: String,
    pub status: String,
    pub auto_registration: bool,
    /// One line describing the JITP template, when attached.
    pub jitp_template: Option<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Where the CA's private key lives (parameter name), when jitpilot keeps it.
    pub key_parameter: Option<String>,
    /// Certificates issued by this CA, per status.
    pub certificates: BTreeMap<String, u64>,
}

/// Result of `init`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitReport {
    pub cas: Vec<CaSummary>,
    /// `cr-ca-key-<manufacturer CA id>`.
    pub ca_key_parameter: String,
    /// Serials whitelisted (`CrState = CR_WHITELISTED`), sample's first.
    pub whitelisted: Vec<String>,
    /// Where factory credentials were written.
    pub devices_dir: PathBuf,
    /// False when everything already existed (init is idempotent).
    pub created: bool,
}

/// A device certificate as `status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertSummary {
    pub id: String,
    pub ca_id: Option<String>,
    pub status: String,
    pub common_name: Option<String>,
    pub things: Vec<String>,
    pub policies: Vec<String>,
}

/// A stack as `status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackSummary {
    pub name: String,
    pub status: String,
    pub resources: Vec<StackResource>,
    /// Recent events, oldest first.
    pub events: Vec<StackEvent>,
}

/// Result of `status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub backend: String,
    pub data_dir: Option<PathBuf>,
    /// The running endpoint's address, if a cloud process is serving.
    pub endpoint: Option<String>,
    pub stack: Option<StackSummary>,
    /// Every other stack the cloud holds (e.g. the sample's own
    /// `CertRotationStack`, deployed through the AWS API), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_stacks: Vec<StackSummary>,
    pub cas: Vec<CaSummary>,
    pub certificates: Vec<CertSummary>,
    /// Thing name → attached certificateIds.
    pub things: BTreeMap<String, Vec<String>>,
    /// Policy name → attached targets.
    pub policies: BTreeMap<String, Vec<String>>,
    /// Parameter names with their type.
    pub parameters: BTreeMap<String, String>,
    /// Rows of the device table (`CertRotationDevices`), ordered by serial.
    pub devices: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Result of `cleanup`: how many of each were deleted.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    pub things: usize,
    pub certificates: usize,
    pub cas: usize,
    pub parameters: usize,
    pub table_rows: usize,
    pub device_folders: usize,
}

/// Result of `teardown`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeardownReport {
    pub stack: String,
    /// False when there was no stack.
    pub existed: bool,
    /// Logical ids deleted, in deletion order.
    pub deleted: Vec<String>,
}
