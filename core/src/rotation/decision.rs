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

/// Why a request was refused. `code` is stable for scripts, tests and
/// devices; the reason is for people and says what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
    /// True when the same request may succeed later without anyone changing
    /// it (the cloud has not caught up yet, a backend call failed). A device
    /// stops retrying on a refusal that is not retryable.
    pub retryable: bool,
}

impl Refusal {
    /// A permanent refusal: sending the same request again gets the same answer.
    pub fn new(code: &'static str, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
            retryable: false,
        }
    }

    /// A refusal that the same request, retried later, may get past.
    pub fn retryable(code: &'static str, reason: impl Into<String>) -> Refusal {
        Refusal {
            retryable: true,
            ..Refusal::new(code, reason)
        }
    }
}

/// The answer a refused device request gets on its response topic:
/// `{"error": {"code": …, "message": …, "retryable": …}}`. The sample's
/// device ignores it (it waits for `pem`/`cert_id`); jitpilot's device agent
/// reports it and stops retrying when it is not retryable.
pub fn error_response(refusal: &Refusal) -> Value {
    json!({"error": {
        "code": refusal.code,
        "message": refusal.reason,
        "retryable": refusal.retryable,
    }})
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
    /// Refused: a device's request is answered with [`error_response`] on
    /// its response topic; effects may also secure the registry (a
    /// non-whitelisted cert is deactivated).
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
                json!({"outcome": "refused", "code": r.code, "reason": r.reason, "retryable": r.retryable})
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
    /// Done although it is unsafe, because the stack says so
    /// (`CsrKeyReuse=warn`): the code and the reason it is unsafe.
    pub insecure: Option<Refusal>,
}

impl Plan {
    /// A refusal that changes nothing and answers nobody (an event that
    /// names no device topic, like the registered event).
    pub fn refuse(subject: impl Into<String>, refusal: Refusal) -> Plan {
        Plan::new(subject, Outcome::Refused(refusal), Vec::new())
    }

    /// A refusal that changes nothing but tells the device why, on
    /// `response_topic` (`/cert-rotation/<step>/<serial>/rspn`).
    pub fn refuse_answering(
        subject: impl Into<String>,
        response_topic: String,
        refusal: Refusal,
    ) -> Plan {
        let answer = Effect::Publish {
            topic: response_topic,
            payload: error_response(&refusal),
        };
        Plan::new(subject, Outcome::Refused(refusal), vec![answer])
    }

    /// A plan with effects.
    pub fn new(subject: impl Into<String>, outcome: Outcome, effects: Vec<Effect>) -> Plan {
        Plan {
            subject: subject.into(),
            outcome,
            effects,
            insecure: None,
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
    /// Signed although unsafe (`CsrKeyReuse=warn` and the CSR reuses the
    /// vendor key): carried into the plan, the event log and the WARN log.
    pub insecure: Option<Refusal>,
}

/// A handler's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Perform the plan.
    Apply(Plan),
    /// Sign first (needs the CA key), then perform the plan built from the result.
    Sign(SignRequest),
}
