//! Just-In-Time Provisioning: what AWS IoT does when a device presents a
//! certificate it has never seen, signed by a registered CA with
//! auto-registration enabled and a provisioning template attached.
//!
//! 1. The certificate is registered, `PENDING_ACTIVATION`.
//! 2. The CA's template is applied, its parameters taken from the
//!    certificate subject (`AWS::IoT::Certificate::CommonName`, `Country`,
//!    `Organization`, ... and `AWS::IoT::Certificate::Id`): the Thing is
//!    created and the certificate attached to it, the certificate's status
//!    set (ACTIVE in the walkthrough), the policy attached.
//! 3. The endpoint then publishes `$aws/events/certificates/registered/<caId>`
//!    and closes the connection without CONNACK; the device's retry connects.
//!
//! This module is steps 1 and 2, in the rotation function's shape: facts
//! in, a pure decision, effects out.
//!
//! - `plan.rs`     the decision: certificate + template + facts → a
//!   [`JitpPlan`] (the writes, in order) or a [`Refusal`] with its reason
//! - `template.rs` the template's `Ref` / `Fn::Join` / `Fn::Sub`
//! - `outbox.rs`   the registered events waiting for `rule_jitp`
//! - here          [`provision`]: reads the facts, asks [`plan`], applies
//!   the plan in one store transaction
//!
//! It is idempotent: a device whose first attempt was cut short (certificate
//! left `PENDING_ACTIVATION`) is provisioned again on its next connect.
//!
//! ## The registered event is delivered at least once (the outbox)
//!
//! Once the template has made the certificate ACTIVE, JITP never runs for it
//! again: if the process died between that step and `rule_jitp`'s function
//! finishing, the device would connect fine but its table row would stay
//! `CR_WHITELISTED` and every CSR would be refused. So, before the status
//! step, the plan records the event in an outbox (a small internal table,
//! [`REGISTERED_OUTBOX_TABLE`]); the endpoint removes the entry once the
//! rules engine's function invocations for the event have finished, and the
//! runtime redelivers what is left when the cloud starts. The whole of
//! [`provision`] is one store transaction ([`Store::batch`]): the
//! certificate, thing, policy, outbox entry, status and the event log's
//! record of each step land together with one commit, or not at all (the
//! certificate unknown: JITP runs again on the next connect). Within it the
//! writes keep their order (outbox entry before the status), so the
//! reasoning does not depend on the batch: a crash before the status leaves
//! the certificate `PENDING_ACTIVATION`, a crash after it leaves the outbox
//! entry. The rotation function is idempotent, so a redelivery is harmless.

mod outbox;
mod plan;
mod template;

pub use outbox::{
    mark_delivered, pending_registered_events, record_pending, PendingRegisteredEvent,
    REGISTERED_OUTBOX_TABLE,
};
pub use plan::{
    certificate_parameters, plan, JitpEffect, JitpFacts, JitpPlan, JitpRequest, Refusal,
};

use crate::cloud::events::EventKind;
use crate::model::{now_millis, CertificateStatus, EpochMillis};
use crate::store::{Store, StoreError};

/// What can stop JITP: a refusal (the template or the certificate), or the
/// store. Messages say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum JitpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// What provisioning did, for the registered event, logs and the TUI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned {
    pub certificate_id: String,
    pub ca_certificate_id: String,
    /// The status the template left the certificate in.
    pub status: CertificateStatus,
    pub thing: Option<String>,
    pub policies: Vec<String>,
    /// When the certificate was registered (`certificateRegistrationTimestamp`).
    pub registered_at: EpochMillis,
    /// False when the certificate was already registered (a retried JITP).
    pub newly_registered: bool,
    /// The certificate's CommonName: the serial (= thing name) in the walkthrough.
    pub serial: Option<String>,
    /// The steps taken, in order, as written to the event log; the endpoint
    /// puts them on the event stream.
    #[serde(skip)]
    pub steps: Vec<JitpStep>,
}

/// One JITP step: its event-log kind, its kind on the event stream, and
/// what happened in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitpStep {
    /// `jitp.registered`, `jitp.thing`, `jitp.policy`, `jitp.template_applied`.
    pub log_kind: &'static str,
    pub event_kind: EventKind,
    pub summary: String,
}

/// Registers the certificate (PENDING_ACTIVATION), applies its CA's
/// template and records each step in the event log, in one store
/// transaction: the facts are read, the plan made and its writes applied
/// while the transaction holds the store, so two connections presenting the
/// same new certificate provision it once.
pub fn provision(store: &Store, request: &JitpRequest<'_>) -> Result<Provisioned, JitpError> {
    store.batch(|| {
        let registered = store.get_certificate(request.cert_id)?;
        let facts = JitpFacts {
            registered: registered.as_ref(),
            now: now_millis(),
        };
        let JitpPlan {
            effects,
            provisioned,
        } = plan(request, &facts)?;
        for effect in &effects {
            apply(store, effect)?;
        }
        Ok(provisioned)
    })
}

/// Performs one write of the plan.
fn apply(store: &Store, effect: &JitpEffect) -> Result<(), JitpError> {
    match effect {
        JitpEffect::RegisterCertificate(cert) => match store.register_certificate(cert) {
            // Registered since the facts were read (another process on
            // the data dir): the registration is there either way.
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        },
        JitpEffect::CreateThing { name, attributes } => {
            store.create_thing(name, attributes)?;
        }
        JitpEffect::AttachThingPrincipal { thing, cert_id } => {
            store.attach_thing_principal(thing, cert_id)?
        }
        JitpEffect::CreatePolicyIfAbsent { name, document } => {
            if store.get_policy(name)?.is_none() {
                match store.create_policy(name, document) {
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        JitpEffect::AttachPolicy { policy, cert_id } => store.attach_policy(policy, cert_id)?,
        JitpEffect::RecordRegisteredEvent(event) => record_pending(store, event)?,
        JitpEffect::SetCertificateStatus { cert_id, status } => {
            store.set_certificate_status(cert_id, *status)?
        }
        JitpEffect::Log {
            kind,
            subject,
            detail,
        } => {
            // A record, as before the batch: a device is not refused
            // because the log could not take a line.
            if let Err(e) = store.append_event(kind, subject, detail) {
                tracing::warn!(kind, subject, error = %e, "event log write failed");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
