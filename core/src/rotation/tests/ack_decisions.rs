//! The pure ack-man-cert handler (step 3c): every branch and idempotency.

use super::decisions::{refused_code, thing_created};
use super::*;
use crate::model::CertificateStatus::Inactive;
use crate::rotation::ack_man_cert::{self, AckManCertFacts};
use crate::rotation::event::AckManCertRequest;
use crate::rotation::wire::*;
use crate::rotation::*;
use serde_json::json;

// ---- ack-man-cert (3c) --------------------------------------------------------

fn man_created() -> DeviceRow {
    thing_created()
        .with_state(CrState::ManCertCreated)
        .with_attr(ATTR_MANUFACTURER_CERT_ID, Some("man-id"))
}

fn ack(principal: &str, cert_id: Option<&str>) -> AckManCertRequest {
    AckManCertRequest {
        topic: request_topic(ACK_MAN_CERT, SERIAL),
        serial: SERIAL.into(),
        client_id: Some(SERIAL.into()),
        principal: Some(principal.into()),
        cert_id: cert_id.map(str::to_string),
    }
}

#[test]
fn ack_retires_the_vendor_cert_and_answers() {
    let row = man_created();
    let request = ack("man-id", Some("man-id"));
    let plan = ack_man_cert::decide(AckManCertFacts {
        request: &request,
        row: Some(&row),
        vendor_cert_exists: true,
    });
    assert_eq!(plan.outcome, Outcome::CertRotationCompleted);
    let vendor_id = pki().vendor.id.clone();
    let done = row
        .with_state(CrState::CertRotationCompleted)
        .with_attr(ATTR_VENDOR_CERT_ID, None);
    assert_eq!(done.vendor_cert_id(), None);
    assert_eq!(
        plan.effects,
        vec![
            Effect::DetachThingPrincipal {
                thing: SERIAL.into(),
                cert_id: vendor_id.clone()
            },
            Effect::SetCertificateStatus {
                cert_id: vendor_id.clone(),
                status: Inactive
            },
            Effect::DeleteCertificate { cert_id: vendor_id },
            Effect::PutRow(done),
            Effect::Publish {
                topic: format!("/cert-rotation/ack-man-cert/{SERIAL}/rspn"),
                payload: json!({"cert_id": "man-id"}),
            },
        ]
    );
}

#[test]
fn ack_when_the_vendor_cert_is_already_gone_only_detaches() {
    let row = man_created();
    let request = ack("man-id", Some("man-id"));
    let plan = ack_man_cert::decide(AckManCertFacts {
        request: &request,
        row: Some(&row),
        vendor_cert_exists: false,
    });
    assert_eq!(plan.outcome, Outcome::CertRotationCompleted);
    assert!(!plan.effects.iter().any(|e| matches!(
        e,
        Effect::DeleteCertificate { .. } | Effect::SetCertificateStatus { .. }
    )));
}

#[test]
fn ack_repeated_after_completion_gets_the_same_answer() {
    let first = ack_man_cert::decide(AckManCertFacts {
        request: &ack("man-id", Some("man-id")),
        row: Some(&man_created()),
        vendor_cert_exists: true,
    });
    let completed = man_created()
        .with_state(CrState::CertRotationCompleted)
        .with_attr(ATTR_VENDOR_CERT_ID, None);
    let again = ack_man_cert::decide(AckManCertFacts {
        request: &ack("man-id", Some("man-id")),
        row: Some(&completed),
        vendor_cert_exists: false,
    });
    assert_eq!(again.outcome, Outcome::Republished);
    assert_eq!(again.effects.len(), 1);
    assert_eq!(first.effects.last(), again.effects.last());
}

#[test]
fn ack_refusals_each_have_their_reason() {
    let row = man_created();
    let refused = |request: &AckManCertRequest, row: Option<&DeviceRow>| {
        let plan = ack_man_cert::decide(AckManCertFacts {
            request,
            row,
            vendor_cert_exists: true,
        });
        // Only the answer to the device: nothing else changes.
        assert_eq!(plan.effects.len(), 1, "{plan:?}");
        refused_code(&plan)
    };
    assert_eq!(
        refused(&ack("man-id", Some("other-id")), Some(&row)),
        "wrong_cert_id"
    );
    assert_eq!(refused(&ack("man-id", None), Some(&row)), "missing_cert_id");
    // Acked over the vendor connection: not proof that the new cert works.
    assert_eq!(
        refused(&ack(&pki().vendor.id, Some("man-id")), Some(&row)),
        "principal_not_manufacturer_cert"
    );
    let mut foreign = ack("man-id", Some("man-id"));
    foreign.client_id = Some("X".into());
    assert_eq!(refused(&foreign, Some(&row)), "client_id_mismatch");
    assert_eq!(
        refused(&ack("man-id", Some("man-id")), Some(&thing_created())),
        "no_manufacturer_cert"
    );
    assert_eq!(
        refused(&ack("man-id", Some("man-id")), None),
        "not_whitelisted"
    );
}
