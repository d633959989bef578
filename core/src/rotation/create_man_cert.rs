//! Step 3b, cloud side: `/cert-rotation/create-man-cert/<serial>/rqst`.
//! The device sends a CSR over its vendor-cert connection; the function
//! signs it with the Manufacturer CA and answers on `.../rspn` with
//! `{"pem": PEM, "cert_id": ID}`.
//!
//! Beyond the sample, a CSR is signed only when the publishing connection's
//! certificate is the serial's recorded vendor cert, its clientId is the
//! serial, the CSR's signature verifies, its CN is the serial and its key is
//! new (not the vendor key). A refusal is answered on `.../rspn` with
//! `{"error": {"code", "message", "retryable"}}`.
//!
//! The sample's device builds its CSR from the vendor key. The stack's
//! `CsrKeyReuse` decides: `refuse` (the default) answers
//! `csr_reuses_vendor_key`; `warn` signs it, as the sample does, and marks
//! the outcome insecure with the reason.

use super::decision::{Decision, Effect, Outcome, Plan, Refusal, SignRequest};
use super::event::CreateManCertRequest;
use super::wire::{
    response_topic, CrState, DeviceRow, ATTR_MANUFACTURER_CERT_ID,
    ATTR_PENDING_MANUFACTURER_CERT_ID, CREATE_MAN_CERT, ROTATION_COMPLETE_POLICY,
};
use super::{CsrKeyReuse, RotationConfig};
use crate::model::{Certificate, CertificateStatus};
use crate::pki;
use serde_json::{json, Value};

/// What the handler needs to know, read by the executor.
#[derive(Debug, Clone, Copy)]
pub struct CreateManCertFacts<'a> {
    pub request: &'a CreateManCertRequest,
    pub row: Option<&'a DeviceRow>,
    /// The certificate named by the row's `VendorCertId`.
    pub vendor_cert: Option<&'a Certificate>,
    /// The certificate named by the row's `ManufacturerCertId`.
    pub manufacturer_cert: Option<&'a Certificate>,
    /// Certificates attached to the thing (named by the serial).
    pub thing_certs: &'a [Certificate],
}

/// The response payload: `{"pem": PEM, "cert_id": ID}`.
pub fn response(pem: &str, cert_id: &str) -> Value {
    json!({"pem": pem, "cert_id": cert_id})
}

/// Decides what a create-man-cert request does.
pub fn decide(facts: CreateManCertFacts<'_>, config: &RotationConfig) -> Decision {
    match check(facts, config) {
        Ok(decision) => decision,
        Err(refusal) => Decision::Apply(refuse(&facts.request.serial, refusal)),
    }
}

/// A refusal of a create-man-cert request, answered on its response topic.
pub fn refuse(serial: &str, refusal: Refusal) -> Plan {
    Plan::refuse_answering(serial, response_topic(CREATE_MAN_CERT, serial), refusal)
}

fn check(facts: CreateManCertFacts<'_>, config: &RotationConfig) -> Result<Decision, Refusal> {
    let request = facts.request;
    let serial = request.serial.as_str();
    let row = facts.row.ok_or_else(|| {
        Refusal::new(
            "not_whitelisted",
            format!("serial {serial} is not in CertRotationDevices; nothing is issued"),
        )
    })?;
    check_client_id(request.client_id.as_deref(), serial)?;
    match row.state() {
        Some(CrState::ThingCreated) => {
            check_vendor_principal(request.principal.as_deref(), row, serial)?;
            sign_request(facts, row, config).map(Decision::Sign)
        }
        Some(CrState::ManCertCreated) => {
            // The device did not get the response: publish the same one again.
            check_vendor_principal(request.principal.as_deref(), row, serial)?;
            let cert = facts.manufacturer_cert.ok_or_else(|| {
                Refusal::new(
                    "manufacturer_cert_missing",
                    format!(
                        "serial {serial} is CR_MAN_CERT_CREATED but its manufacturer certificate {} is not in the registry; reset the row to CR_THING_CREATED to issue a new one",
                        row.manufacturer_cert_id().unwrap_or("(none)")
                    ),
                )
            })?;
            Ok(Decision::Apply(Plan::new(
                serial,
                Outcome::Republished,
                vec![Effect::Publish {
                    topic: response_topic(CREATE_MAN_CERT, serial),
                    payload: response(&cert.pem, &cert.id),
                }],
            )))
        }
        // Retryable: right after JITP the registered event may still be on
        // its way to the function (rule_jitp) when the CSR arrives.
        Some(CrState::Whitelisted) => Err(Refusal::retryable(
            "jitp_not_done",
            format!("serial {serial} has no vendor certificate recorded yet; connect with the vendor certificate first (JITP), then send the CSR again"),
        )),
        Some(CrState::CertRotationCompleted) => Err(Refusal::new(
            "rotation_completed",
            format!("serial {serial} has completed its rotation; no new certificate is issued"),
        )),
        None => Err(Refusal::new(
            "unknown_state",
            format!(
                "serial {serial} has CrState {:?}, which is not a rotation state",
                row.raw_state().unwrap_or("")
            ),
        )),
    }
}

fn check_client_id(client_id: Option<&str>, serial: &str) -> Result<(), Refusal> {
    if client_id == Some(serial) {
        Ok(())
    } else {
        Err(Refusal::new(
            "client_id_mismatch",
            format!(
                "the request for {serial} came from clientId {:?}; a device may only ask for itself (clientId = serial)",
                client_id.unwrap_or("")
            ),
        ))
    }
}

fn check_vendor_principal(
    principal: Option<&str>,
    row: &DeviceRow,
    serial: &str,
) -> Result<(), Refusal> {
    match row.vendor_cert_id() {
        Some(vendor) if principal == Some(vendor) => Ok(()),
        vendor => Err(Refusal::new(
            "principal_not_vendor_cert",
            format!(
                "the request for {serial} came over certificate {:?}, not the serial's vendor certificate {:?}",
                principal.unwrap_or(""),
                vendor.unwrap_or("(none)")
            ),
        )),
    }
}

fn sign_request(
    facts: CreateManCertFacts<'_>,
    row: &DeviceRow,
    config: &RotationConfig,
) -> Result<SignRequest, Refusal> {
    let serial = facts.request.serial.as_str();
    let csr_pem = facts.request.csr.as_deref().ok_or_else(|| {
        Refusal::new(
            "missing_csr",
            "the payload has no `csr`; send {\"csr\": \"-----BEGIN CERTIFICATE REQUEST-----...\"}",
        )
    })?;
    let csr = pki::parse_csr(csr_pem)
        .map_err(|e| Refusal::new("bad_csr", format!("the CSR is refused: {e}")))?;
    if csr.subject.common_name.as_deref() != Some(serial) {
        return Err(Refusal::new(
            "csr_wrong_serial",
            format!(
                "the CSR's CommonName is {:?}, not the serial {serial}",
                csr.subject.common_name.as_deref().unwrap_or("")
            ),
        ));
    }
    let vendor = facts.vendor_cert.ok_or_else(|| {
        Refusal::new(
            "vendor_cert_missing",
            format!(
                "the vendor certificate {} of {serial} is not in the registry",
                row.vendor_cert_id().unwrap_or("(none)")
            ),
        )
    })?;
    let vendor_info = pki::parse_cert(&vendor.pem).map_err(|e| {
        Refusal::new(
            "vendor_cert_unreadable",
            format!("the vendor certificate cannot be parsed: {e}"),
        )
    })?;
    let reuses_vendor_key = vendor_info.public_key_der == csr.public_key_der;
    let mut insecure = None;
    if reuses_vendor_key {
        match config.csr_key_reuse {
            CsrKeyReuse::Refuse => return Err(Refusal::new(
                "csr_reuses_vendor_key",
                "the CSR's public key is the vendor certificate's key; generate a new key pair for the manufacturer certificate and send a CSR made from it (or deploy the stack with CsrKeyReuse=warn to accept it, as the AWS sample does)",
            )),
            CsrKeyReuse::Warn => {
                insecure = Some(Refusal::new(
                    "csr_reuses_vendor_key",
                    format!("signed with CsrKeyReuse=warn although the CSR reuses {serial}'s vendor key: whoever copied the factory key also holds the manufacturer identity; make devices generate a new key and redeploy with CsrKeyReuse=refuse"),
                ));
            }
        }
    }
    // A reused vendor key has the vendor key's type: `warn` accepts it as is.
    if let (Some(wanted), false) = (config.key_algorithm, reuses_vendor_key) {
        let actual = pki::key_algorithm_of_spki(&csr.public_key_der);
        if actual != Some(wanted) {
            return Err(Refusal::new(
                "csr_wrong_key_type",
                format!("the fleet definition asks for {wanted:?} keys; the CSR's key is not one"),
            ));
        }
    }
    let ca_id = row.manufacturer_ca_cert_id().ok_or_else(|| {
        Refusal::new(
            "no_manufacturer_ca",
            format!("the row of {serial} has no ManufacturerCaCertId; run `jitpilot init` to whitelist it with the Manufacturer CA"),
        )
    })?;
    // A manufacturer cert attached to the thing but not recorded in the row
    // is what an attempt that stopped half-way leaves behind; remove it so
    // the device ends with exactly one.
    let mut cleanup = Vec::new();
    for orphan in facts.thing_certs.iter().filter(|c| {
        c.ca_id.as_deref() == Some(ca_id) && Some(c.id.as_str()) != row.vendor_cert_id()
    }) {
        cleanup.extend(retire(serial, &orphan.id, true));
    }
    Ok(SignRequest {
        serial: serial.to_string(),
        csr_pem: csr_pem.to_string(),
        manufacturer_ca_cert_id: ca_id.to_string(),
        validity_days: config.validity_days,
        row: row.clone(),
        cleanup,
        insecure,
    })
}

/// Detach, deactivate, delete: how a certificate leaves the registry.
pub(crate) fn retire(thing: &str, cert_id: &str, exists: bool) -> Vec<Effect> {
    let mut effects = vec![Effect::DetachThingPrincipal {
        thing: thing.to_string(),
        cert_id: cert_id.to_string(),
    }];
    if exists {
        effects.push(Effect::SetCertificateStatus {
            cert_id: cert_id.to_string(),
            status: CertificateStatus::Inactive,
        });
        effects.push(Effect::DeleteCertificate {
            cert_id: cert_id.to_string(),
        });
    }
    effects
}

/// The rest of the plan once the CSR is signed: register ACTIVE under the
/// Manufacturer CA, attach the rotation-complete policy and the thing,
/// record `ManufacturerCertId` and `CR_MAN_CERT_CREATED`, answer.
pub fn after_signing(request: &SignRequest, cert_pem: &str, cert_id: &str) -> Plan {
    let serial = request.serial.as_str();
    let mut effects = request.cleanup.clone();
    effects.extend([
        // Recorded first: if the process dies before the row below is
        // written, the retry finds this id and retires the certificate.
        Effect::PutRow(
            request
                .row
                .clone()
                .with_attr(ATTR_PENDING_MANUFACTURER_CERT_ID, Some(cert_id)),
        ),
        Effect::RegisterCertificate {
            cert_id: cert_id.to_string(),
            pem: cert_pem.to_string(),
            ca_id: request.manufacturer_ca_cert_id.clone(),
            status: CertificateStatus::Active,
        },
        Effect::AttachPolicy {
            policy: ROTATION_COMPLETE_POLICY,
            cert_id: cert_id.to_string(),
        },
        Effect::AttachThingPrincipal {
            thing: serial.to_string(),
            cert_id: cert_id.to_string(),
        },
        Effect::PutRow(
            request
                .row
                .clone()
                .with_state(CrState::ManCertCreated)
                .with_attr(ATTR_MANUFACTURER_CERT_ID, Some(cert_id))
                .with_attr(ATTR_PENDING_MANUFACTURER_CERT_ID, None),
        ),
        Effect::Publish {
            topic: response_topic(CREATE_MAN_CERT, serial),
            payload: response(cert_pem, cert_id),
        },
    ]);
    Plan {
        insecure: request.insecure.clone(),
        ..Plan::new(serial, Outcome::ManCertCreated, effects)
    }
}
