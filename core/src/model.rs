//! The registry's vocabulary, in AWS IoT's own words.
//!
//! These types are shared by the store, the local cloud, the rotation function
//! and the TUI. Names and string forms follow AWS IoT (`ACTIVE`,
//! `PENDING_ACTIVATION`, ...) so that what jitpilot shows is what the AWS
//! console and CLI would show.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch; AWS event payloads use this unit.
pub type EpochMillis = i64;

/// Now, in [`EpochMillis`].
pub fn now_millis() -> EpochMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Status of a certificate or CA certificate, as AWS IoT names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateStatus {
    /// May connect.
    Active,
    /// Registered but switched off; connections are refused.
    Inactive,
    /// Revoked for good; connections are refused.
    Revoked,
    /// Registered by JITP/auto-registration, waiting for the template to activate it.
    PendingActivation,
}

impl CertificateStatus {
    /// AWS's spelling: `ACTIVE`, `INACTIVE`, `REVOKED`, `PENDING_ACTIVATION`.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Active => "ACTIVE",
            CertificateStatus::Inactive => "INACTIVE",
            CertificateStatus::Revoked => "REVOKED",
            CertificateStatus::PendingActivation => "PENDING_ACTIVATION",
        }
    }

    /// Parses AWS's spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ACTIVE" => CertificateStatus::Active,
            "INACTIVE" => CertificateStatus::Inactive,
            "REVOKED" => CertificateStatus::Revoked,
            "PENDING_ACTIVATION" => CertificateStatus::PendingActivation,
            _ => return None,
        })
    }
}

impl std::fmt::Display for CertificateStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What AWS calls a CA's `registrationConfig`: the JITP template and the role
/// that applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationConfig {
    /// The provisioning template body (JSON text, AWS's template language).
    pub template_body: String,
    /// The role AWS IoT assumes to apply the template.
    pub role_arn: String,
}

/// A registered CA certificate (`aws iot register-ca-certificate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaCertificate {
    /// certificateId: lowercase hex SHA-256 of the DER.
    pub id: String,
    /// The CA certificate, PEM.
    pub pem: String,
    pub status: CertificateStatus,
    /// `autoRegistrationStatus == ENABLE`: unknown device certs signed by this
    /// CA are registered on first connect (the trigger of JITP).
    pub auto_registration: bool,
    /// Present when a JITP template is attached.
    pub registration_config: Option<RegistrationConfig>,
    /// jitpilot's own label for the walkthrough ("Vendor CA", "Manufacturer CA").
    pub label: String,
    pub created_at: EpochMillis,
}

/// A registered device certificate (`aws iot register-certificate` or JITP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// certificateId: lowercase hex SHA-256 of the DER.
    pub id: String,
    /// The issuing CA's certificateId, when it is registered.
    pub ca_id: Option<String>,
    pub pem: String,
    pub status: CertificateStatus,
    pub created_at: EpochMillis,
}

/// A thing in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thing {
    pub name: String,
    /// Thing attributes (string → string), as AWS stores them.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub created_at: EpochMillis,
}

/// An IoT policy and its current (default) version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub name: String,
    /// The policy document, JSON text.
    pub document: String,
    /// The default version id, starting at 1.
    pub version: i64,
}

/// An IoT topic rule, as deployed by the stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRule {
    pub name: String,
    /// The rule's SQL (`SELECT ... FROM '<filter>' [WHERE ...]`).
    pub sql: String,
    /// The rule's actions, in CloudFormation's shape
    /// (`[{"Lambda": {"FunctionArn": ...}}, {"Republish": {...}}]`).
    pub actions: serde_json::Value,
    pub enabled: bool,
}

/// A function ("Lambda") deployed by the stack. Locally, `handler` names a
/// built-in function compiled into jitpilot (the rotation function).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    pub name: String,
    pub arn: String,
    pub handler: String,
    pub role_arn: String,
    /// Environment variables of the function.
    pub environment: serde_json::Map<String, serde_json::Value>,
}

/// `String`, `StringList` or `SecureString`, as SSM Parameter Store names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParameterType {
    String,
    /// Comma-separated values (stored and returned as one string, as SSM does).
    StringList,
    SecureString,
}

impl ParameterType {
    /// SSM's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "String",
            ParameterType::StringList => "StringList",
            ParameterType::SecureString => "SecureString",
        }
    }

    /// The type SSM names `name`, if any.
    pub fn parse(name: &str) -> Option<ParameterType> {
        match name {
            "String" => Some(ParameterType::String),
            "StringList" => Some(ParameterType::StringList),
            "SecureString" => Some(ParameterType::SecureString),
            _ => None,
        }
    }
}

/// A parameter read back from the parameter store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    pub name: String,
    pub kind: ParameterType,
    /// Decrypted value, or the ciphertext marker when read without decryption.
    pub value: String,
    pub version: i64,
    pub last_modified: EpochMillis,
}

/// A stack as the stack engine records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stack {
    pub name: String,
    /// CloudFormation status: `CREATE_COMPLETE`, `UPDATE_COMPLETE`, ...
    pub status: String,
    /// The template text last applied.
    pub template: String,
    /// Resolved parameter values.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    pub created_at: EpochMillis,
    pub updated_at: EpochMillis,
}

/// One resource of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackResource {
    pub stack: String,
    pub logical_id: String,
    /// `AWS::IoT::TopicRule`, ...
    pub resource_type: String,
    pub physical_id: String,
    pub status: String,
    /// Resolved properties as applied (compared on update).
    pub properties: serde_json::Value,
}

/// One stack event (`aws cloudformation describe-stack-events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackEvent {
    pub stack: String,
    pub timestamp: EpochMillis,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

/// One entry of the append-only event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub seq: i64,
    pub at: EpochMillis,
    /// A dotted kind: `jitp.registered`, `rotation.csr_refused`, ...
    pub kind: String,
    /// What the event is about: a serial, certificateId, stack name, ...
    pub subject: String,
    pub detail: serde_json::Value,
}
