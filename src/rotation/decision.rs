//! What a handler decides: an [`Outcome`] and the [`Effect`]s that carry it
//! out. Handlers only build these values; the executor performs them.

use super::wire::DeviceRow;
use crate::model::CertificateStatus;
use serde_json::{json, Value};

/// One change to the world, performed by the executor in list order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// `UpdateCertificate --new-status`.
    SetCertificateStatus {
        cert_id: String,
        status: CertificateStatus,
    },
    /// `RegisterCertificateWithoutCA`-style registration under a known CA.
    RegisterCertificate {
        cert_id: String,
        pem: String,
        ca_id: String,
        status: CertificateStatus,
    },
    /// `AttachPolicy`.
    AttachPolicy {
        policy: &'static str,
        cert_id: String,
    },
    /// `AttachThingPrincipal`.
    AttachThingPrincipal { thing: String, cert_id: String },
    /// `DetachThingPrincipal`.
    DetachThingPrincipal { thing: String, cert_id: String },
    /// `DeleteCertificate` (the certificate is INACTIVE and detached by then).
    DeleteCertificate { cert_id: String },
    /// `PutItem` into `CertRotationDevices`.
    PutRow(DeviceRow),
    /// Publish as the cloud (QoS 1).
    Publish { topic: String, payload: Value },
}

/// Why a request was refused. `code` is stable for scripts and tests; the
/// reason is for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
}

impl Refusal {
    /// A refusal with a stable code and a reason that says what to do.
    pub fn new(code: &'static str, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }
}

/// What the invocation amounted to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 3a: a whitelisted serial's vendor cert is recorded (`CR_THING_CREATED`).
    ThingCreated,
    /// 3b: the manufacturer cert was issued (`CR_MAN_CERT_CREATED`).
    ManCertCreated,
    /// 3c: the vendor cert is gone (`CR_CERT_ROTATION_COMPLETED`).
    CertRotationCompleted,
    /// A repeated request: the earlier response is published again.
    Republished,
    /// A repeated event that needs nothing (e.g. a second registered event).
    NoChange(String),
    /// Refused: nothing is published; effects may still secure the registry
    /// (a non-whitelisted cert is deactivated).
    Refused(Refusal),
}

impl Outcome {
    /// The event-log kind: `rotation.thing_created`, `rotation.refused`, ...
    pub fn log_kind(&self) -> &'static str {
        match self {
            Outcome::ThingCreated => "rotation.thing_created",
            Outcome::ManCertCreated => "rotation.man_cert_created",
            Outcome::CertRotationCompleted => "rotation.cert_rotation_completed",
            Outcome::Republished => "rotation.republished",
            Outcome::NoChange(_) => "rotation.no_change",
            Outcome::Refused(_) => "rotation.refused",
        }
    }

    /// Detail for the event log and the function's return value.
    pub fn detail(&self) -> Value {
        match self {
            Outcome::Refused(r) => {
                json!({"outcome": "refused", "code": r.code, "reason": r.reason})
            }
            Outcome::NoChange(why) => json!({"outcome": "no_change", "reason": why}),
            other => json!({"outcome": other.log_kind().trim_start_matches("rotation.")}),
        }
    }
}

/// A decided invocation: its outcome and the effects to perform.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The event-log subject: the serial, or the certificateId when the
    /// serial is unknown.
    pub subject: String,
    pub outcome: Outcome,
    pub effects: Vec<Effect>,
}

impl Plan {
    /// A refusal that changes nothing.
    pub fn refuse(subject: impl Into<String>, refusal: Refusal) -> Plan {
        Plan {
            subject: subject.into(),
            outcome: Outcome::Refused(refusal),
            effects: Vec::new(),
        }
    }

    /// A plan with effects.
    pub fn new(subject: impl Into<String>, outcome: Outcome, effects: Vec<Effect>) -> Plan {
        Plan {
            subject: subject.into(),
            outcome,
            effects,
        }
    }
}

/// A create-man-cert request that passed every check: the executor signs
/// the CSR with the Manufacturer CA, then asks
/// [`super::create_man_cert::after_signing`] for the rest of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct SignRequest {
    pub serial: String,
    pub csr_pem: String,
    /// The Manufacturer CA whose key (`cr-ca-key-<id>`) signs.
    pub manufacturer_ca_cert_id: String,
    pub validity_days: u32,
    /// The row as read, updated after signing.
    pub row: DeviceRow,
    /// Leftovers of an earlier attempt that stopped half-way (a manufacturer
    /// cert registered but never recorded), removed before issuing anew.
    pub cleanup: Vec<Effect>,
}

/// A handler's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Perform the plan.
    Apply(Plan),
    /// Sign first (needs the CA key), then perform the plan built from the result.
    Sign(SignRequest),
}
