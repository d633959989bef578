//! Step 3a, cloud side: the `$aws/events/certificates/registered/<caId>`
//! event. JITP registered a vendor certificate and ran the template; the
//! function records it for a whitelisted serial, and — unlike the sample —
//! deactivates it for any other.
//!
//! A vendor certificate registered again after its device completed the
//! rotation (the sample's device retrying `--jitp` with the certificate 3c
//! deleted) is deactivated, detached and deleted: each retry would otherwise
//! leave one more INACTIVE certificate in the registry.

use super::create_man_cert::retire;
use super::decision::{Effect, Outcome, Plan, Refusal};
use super::event::RegisteredEvent;
use super::wire::{CrState, DeviceRow, ATTR_VENDOR_CERT_ID};
use crate::model::{Certificate, CertificateStatus};
use crate::pki;

/// What the handler needs to know, read by the executor.
#[derive(Debug, Clone, Copy)]
pub struct RegisteredFacts<'a> {
    pub event: &'a RegisteredEvent,
    /// The registered certificate, if the registry knows it.
    pub cert: Option<&'a Certificate>,
    /// The row of the certificate's serial (its CN).
    pub row: Option<&'a DeviceRow>,
}

/// The serial a vendor certificate is for: its CommonName.
pub fn serial_of(cert: &Certificate) -> Result<String, Refusal> {
    let info = pki::parse_cert(&cert.pem).map_err(|e| {
        Refusal::new(
            "unreadable_certificate",
            format!("the registered certificate cannot be parsed: {e}"),
        )
    })?;
    info.subject
        .common_name
        .filter(|cn| !cn.is_empty())
        .ok_or_else(|| {
            Refusal::new(
                "no_common_name",
                "the certificate has no CommonName, so it names no serial; the factory must issue CN = serial",
            )
        })
}

/// Decides what a registered event does.
pub fn decide(facts: RegisteredFacts<'_>) -> Plan {
    let cert_id = facts.event.certificate_id.as_str();
    let Some(cert) = facts.cert else {
        return Plan::refuse(
            cert_id,
            Refusal::new(
                "unknown_certificate",
                format!("certificate {cert_id} is not in the registry; nothing to do"),
            ),
        );
    };
    let deactivate = || Effect::SetCertificateStatus {
        cert_id: cert_id.to_string(),
        status: CertificateStatus::Inactive,
    };
    // A refusal here also switches the certificate off: the sample leaves a
    // JITP-provisioned certificate of an unknown serial ACTIVE.
    let refuse_and_deactivate = |subject: &str, refusal: Refusal| {
        Plan::new(subject, Outcome::Refused(refusal), vec![deactivate()])
    };
    let serial = match serial_of(cert) {
        Ok(serial) => serial,
        Err(refusal) => return refuse_and_deactivate(cert_id, refusal),
    };
    let Some(row) = facts.row else {
        return refuse_and_deactivate(
            &serial,
            Refusal::new(
                "not_whitelisted",
                format!(
                    "serial {serial} is not whitelisted in CertRotationDevices; certificate {cert_id} was set INACTIVE. Whitelist the serial (jitpilot init) and re-issue the factory certificate"
                ),
            ),
        );
    };
    let already_recorded =
        row.vendor_cert_id() == Some(cert_id) || row.manufacturer_cert_id() == Some(cert_id);
    match row.state() {
        Some(CrState::Whitelisted) => Plan::new(
            &serial,
            Outcome::ThingCreated,
            vec![Effect::PutRow(
                row.clone()
                    .with_state(CrState::ThingCreated)
                    .with_attr(ATTR_VENDOR_CERT_ID, Some(cert_id)),
            )],
        ),
        Some(_) if already_recorded => Plan::new(
            &serial,
            Outcome::NoChange(format!(
                "certificate {cert_id} is already recorded for {serial} (state {})",
                row.raw_state().unwrap_or("?")
            )),
            Vec::new(),
        ),
        // The device rotated and its vendor certificate was deleted; JITP
        // registered that certificate again. Nothing may use it: retire it.
        Some(CrState::CertRotationCompleted) => Plan::new(
            &serial,
            Outcome::Refused(Refusal::new(
                "vendor_cert_retired",
                format!(
                    "serial {serial} completed its rotation, so its vendor certificate {cert_id} (registered again by JITP) was deactivated, detached and deleted; the device must connect with its manufacturer certificate"
                ),
            )),
            retire(&serial, cert_id, true),
        ),
        Some(state) => refuse_and_deactivate(
            &serial,
            Refusal::new(
                "serial_already_onboarded",
                format!(
                    "serial {serial} is in state {state} with vendor certificate {}; a second certificate {cert_id} for the same serial was set INACTIVE",
                    row.vendor_cert_id().unwrap_or("(none)")
                ),
            ),
        ),
        None => refuse_and_deactivate(
            &serial,
            Refusal::new(
                "unknown_state",
                format!(
                    "serial {serial} has CrState {:?}, which is not a rotation state; certificate {cert_id} was set INACTIVE. Fix the row (CR_WHITELISTED) and retry",
                    row.raw_state().unwrap_or("")
                ),
            ),
        ),
    }
}
