//! Step 3c, cloud side: `/cert-rotation/ack-man-cert/<serial>/rqst`.
//! The device, now connected with its manufacturer certificate, confirms it
//! with `{"cert_id": ID}`; the function retires the vendor certificate and
//! answers on `.../rspn` with `{"cert_id": ID}`.
//!
//! Beyond the sample: only a connection authenticated with the manufacturer
//! certificate, naming its id, is accepted; a repeated ack gets the same
//! answer again (the sample never answers it); a refusal is answered on
//! `.../rspn` with `{"error": {"code", "message", "retryable"}}`.

use super::create_man_cert::retire;
use super::decision::{Effect, Outcome, Plan, Refusal};
use super::event::AckManCertRequest;
use super::wire::{response_topic, CrState, DeviceRow, ACK_MAN_CERT, ATTR_VENDOR_CERT_ID};
use serde_json::{json, Value};

/// What the handler needs to know, read by the executor.
#[derive(Debug, Clone, Copy)]
pub struct AckManCertFacts<'a> {
    pub request: &'a AckManCertRequest,
    pub row: Option<&'a DeviceRow>,
    /// Whether the row's `VendorCertId` is still in the registry (an earlier
    /// attempt may have deleted it before it could update the row).
    pub vendor_cert_exists: bool,
}

/// The response payload: `{"cert_id": ID}`.
pub fn response(cert_id: &str) -> Value {
    json!({"cert_id": cert_id})
}

/// A refusal of an ack-man-cert request, answered on its response topic.
pub fn refuse(serial: &str, refusal: Refusal) -> Plan {
    Plan::refuse_answering(serial, response_topic(ACK_MAN_CERT, serial), refusal)
}

/// Decides what an ack-man-cert request does.
pub fn decide(facts: AckManCertFacts<'_>) -> Plan {
    let serial = facts.request.serial.as_str();
    match check(facts) {
        Ok(plan) => plan,
        Err(refusal) => refuse(serial, refusal),
    }
}

fn check(facts: AckManCertFacts<'_>) -> Result<Plan, Refusal> {
    let request = facts.request;
    let serial = request.serial.as_str();
    let row = facts.row.ok_or_else(|| {
        Refusal::new(
            "not_whitelisted",
            format!("serial {serial} is not in CertRotationDevices"),
        )
    })?;
    if request.client_id.as_deref() != Some(serial) {
        return Err(Refusal::new(
            "client_id_mismatch",
            format!(
                "the ack for {serial} came from clientId {:?}; a device may only ack for itself (clientId = serial)",
                request.client_id.as_deref().unwrap_or("")
            ),
        ));
    }
    let state = row.state();
    if !matches!(
        state,
        Some(CrState::ManCertCreated | CrState::CertRotationCompleted)
    ) {
        return Err(Refusal::new(
            "no_manufacturer_cert",
            format!(
                "serial {serial} is in state {:?}; there is no manufacturer certificate to acknowledge yet (send create-man-cert first)",
                row.raw_state().unwrap_or("")
            ),
        ));
    }
    let man_id = row.manufacturer_cert_id().ok_or_else(|| {
        Refusal::new(
            "no_manufacturer_cert",
            format!("the row of {serial} has no ManufacturerCertId"),
        )
    })?;
    if request.principal.as_deref() != Some(man_id) {
        return Err(Refusal::new(
            "principal_not_manufacturer_cert",
            format!(
                "the ack for {serial} came over certificate {:?}; connect with the manufacturer certificate {man_id} to acknowledge it",
                request.principal.as_deref().unwrap_or("")
            ),
        ));
    }
    match request.cert_id.as_deref() {
        Some(id) if id == man_id => {}
        Some(id) => {
            return Err(Refusal::new(
                "wrong_cert_id",
                format!("the ack names certificate {id}, but {serial}'s manufacturer certificate is {man_id}"),
            ))
        }
        None => {
            return Err(Refusal::new(
                "missing_cert_id",
                "the payload has no `cert_id`; send {\"cert_id\": \"<manufacturer certificateId>\"}",
            ))
        }
    }
    let publish = Effect::Publish {
        topic: response_topic(ACK_MAN_CERT, serial),
        payload: response(man_id),
    };
    if state == Some(CrState::CertRotationCompleted) {
        // A retried ack: answer again, change nothing.
        return Ok(Plan::new(serial, Outcome::Republished, vec![publish]));
    }
    let mut effects = Vec::new();
    if let Some(vendor) = row.vendor_cert_id() {
        effects.extend(retire(serial, vendor, facts.vendor_cert_exists));
    }
    effects.push(Effect::PutRow(
        row.clone()
            .with_state(CrState::CertRotationCompleted)
            .with_attr(ATTR_VENDOR_CERT_ID, None),
    ));
    effects.push(publish);
    Ok(Plan::new(serial, Outcome::CertRotationCompleted, effects))
}
