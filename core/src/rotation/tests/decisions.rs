//! The pure handlers: every branch, the negative ones and idempotency.

use super::*;
use crate::model::CertificateStatus::{Active, Inactive};
use crate::rotation::create_man_cert::{self, CreateManCertFacts};
use crate::rotation::event::{CreateManCertRequest, RegisteredEvent};
use crate::rotation::registered::{self, RegisteredFacts};
use crate::rotation::wire::*;
use crate::rotation::*;
use serde_json::json;

fn registered_event(cert_id: &str) -> RegisteredEvent {
    RegisteredEvent {
        topic: format!("$aws/events/certificates/registered/{}", pki().vendor_ca.id),
        certificate_id: cert_id.into(),
        ca_certificate_id: pki().vendor_ca.id.clone(),
    }
}

pub(super) fn whitelisted() -> DeviceRow {
    DeviceRow::whitelisted(SERIAL, &pki().manufacturer_ca.id)
}

pub(super) fn thing_created() -> DeviceRow {
    whitelisted()
        .with_state(CrState::ThingCreated)
        .with_attr(ATTR_VENDOR_CERT_ID, Some(&pki().vendor.id))
}

fn vendor_record() -> Certificate {
    record(&pki().vendor, &pki().vendor_ca, Active)
}

fn create_request(csr: Option<&str>) -> CreateManCertRequest {
    CreateManCertRequest {
        topic: request_topic(CREATE_MAN_CERT, SERIAL),
        serial: SERIAL.into(),
        client_id: Some(SERIAL.into()),
        principal: Some(pki().vendor.id.clone()),
        csr: csr.map(str::to_string),
    }
}

/// The refusal's code; whatever the plan publishes must be that refusal's
/// answer on a response topic (a device request's refusal is answered).
pub(super) fn refused_code(plan: &Plan) -> &'static str {
    match &plan.outcome {
        Outcome::Refused(r) => {
            for effect in &plan.effects {
                if let Effect::Publish { topic, payload } = effect {
                    assert!(topic.ends_with("/rspn"), "{plan:?}");
                    assert_eq!(payload, &error_response(r), "{plan:?}");
                }
            }
            r.code
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn decide_create(facts: CreateManCertFacts<'_>) -> Decision {
    create_man_cert::decide(facts, &RotationConfig::default())
}

fn refused_create(facts: CreateManCertFacts<'_>) -> &'static str {
    match decide_create(facts) {
        Decision::Apply(plan) => refused_code(&plan),
        Decision::Sign(s) => panic!("expected a refusal, got a signing request for {}", s.serial),
    }
}

// ---- registered (3a) ---------------------------------------------------------

#[test]
fn registered_whitelisted_serial_records_the_vendor_cert() {
    let cert = vendor_record();
    let row = whitelisted();
    let plan = registered::decide(RegisteredFacts {
        event: &registered_event(&cert.id),
        cert: Some(&cert),
        row: Some(&row),
    });
    assert_eq!(plan.outcome, Outcome::ThingCreated);
    assert_eq!(plan.subject, SERIAL);
    let expected = row
        .with_state(CrState::ThingCreated)
        .with_attr(ATTR_VENDOR_CERT_ID, Some(&cert.id));
    assert_eq!(plan.effects, vec![Effect::PutRow(expected.clone())]);
    assert_eq!(expected.raw_state(), Some("CR_THING_CREATED"));
    assert_eq!(
        expected.manufacturer_ca_cert_id(),
        Some(pki().manufacturer_ca.id.as_str())
    );
}

#[test]
fn registered_unknown_serial_deactivates_the_cert() {
    let cert = vendor_record();
    let plan = registered::decide(RegisteredFacts {
        event: &registered_event(&cert.id),
        cert: Some(&cert),
        row: None,
    });
    assert_eq!(refused_code(&plan), "not_whitelisted");
    assert_eq!(plan.subject, SERIAL);
    assert_eq!(
        plan.effects,
        vec![Effect::SetCertificateStatus {
            cert_id: cert.id.clone(),
            status: Inactive
        }]
    );
}

#[test]
fn registered_repeated_event_changes_nothing() {
    let cert = vendor_record();
    for row in [
        thing_created(),
        thing_created()
            .with_state(CrState::ManCertCreated)
            .with_attr(ATTR_MANUFACTURER_CERT_ID, Some("m")),
    ] {
        let plan = registered::decide(RegisteredFacts {
            event: &registered_event(&cert.id),
            cert: Some(&cert),
            row: Some(&row),
        });
        assert!(matches!(plan.outcome, Outcome::NoChange(_)), "{plan:?}");
        assert!(plan.effects.is_empty());
    }
}

#[test]
fn registered_second_cert_for_a_serial_is_deactivated() {
    let other = issue_vendor(&pki().vendor_ca, SERIAL);
    let cert = record(&other, &pki().vendor_ca, Active);
    for row in [
        thing_created(),
        whitelisted()
            .with_state(CrState::ManCertCreated)
            .with_attr(ATTR_MANUFACTURER_CERT_ID, Some("m")),
    ] {
        let plan = registered::decide(RegisteredFacts {
            event: &registered_event(&cert.id),
            cert: Some(&cert),
            row: Some(&row),
        });
        assert_eq!(refused_code(&plan), "serial_already_onboarded");
        assert_eq!(
            plan.effects,
            vec![Effect::SetCertificateStatus {
                cert_id: cert.id.clone(),
                status: Inactive
            }]
        );
    }
}

#[test]
fn registered_odd_inputs_are_refused() {
    // Unknown certificate: nothing to act on.
    let plan = registered::decide(RegisteredFacts {
        event: &registered_event("nope"),
        cert: None,
        row: None,
    });
    assert_eq!(refused_code(&plan), "unknown_certificate");
    assert!(plan.effects.is_empty());
    // A certificate without CN names no serial: deactivated.
    let no_cn = pki::issue_device_cert(
        &pki().vendor_ca.cert_pem,
        &pki().vendor_ca.key_pem,
        &Subject {
            organization: Some("x".into()),
            ..Subject::default()
        },
        KeyAlgorithm::EcdsaP256,
        1,
    )
    .expect("cert");
    let cert = record(&no_cn, &pki().vendor_ca, Active);
    let plan = registered::decide(RegisteredFacts {
        event: &registered_event(&cert.id),
        cert: Some(&cert),
        row: None,
    });
    assert_eq!(refused_code(&plan), "no_common_name");
    assert_eq!(plan.effects.len(), 1);
    // A row in a state this version does not know.
    let cert = vendor_record();
    let row = whitelisted().with_attr(ATTR_CR_STATE, Some("CR_SOMETHING"));
    let plan = registered::decide(RegisteredFacts {
        event: &registered_event(&cert.id),
        cert: Some(&cert),
        row: Some(&row),
    });
    assert_eq!(refused_code(&plan), "unknown_state");
}

// ---- create-man-cert (3b) -----------------------------------------------------

#[test]
fn create_valid_csr_is_signed_then_registered_attached_recorded_and_answered() {
    let (csr, _key) = new_csr(SERIAL);
    let row = thing_created();
    let vendor = vendor_record();
    let request = create_request(Some(&csr));
    let config = RotationConfig {
        validity_days: 42,
        key_algorithm: Some(KeyAlgorithm::EcdsaP256),
        ..RotationConfig::default()
    };
    let sign = match create_man_cert::decide(
        CreateManCertFacts {
            request: &request,
            row: Some(&row),
            vendor_cert: Some(&vendor),
            manufacturer_cert: None,
            thing_certs: std::slice::from_ref(&vendor),
        },
        &config,
    ) {
        Decision::Sign(sign) => sign,
        Decision::Apply(plan) => panic!("expected signing, got {plan:?}"),
    };
    assert_eq!(sign.serial, SERIAL);
    assert_eq!(sign.csr_pem, csr);
    assert_eq!(sign.manufacturer_ca_cert_id, pki().manufacturer_ca.id);
    assert_eq!(sign.validity_days, 42);
    assert!(sign.cleanup.is_empty());

    let plan = create_man_cert::after_signing(&sign, "PEM", "man-id");
    assert_eq!(plan.outcome, Outcome::ManCertCreated);
    let expected_row = row
        .clone()
        .with_state(CrState::ManCertCreated)
        .with_attr(ATTR_MANUFACTURER_CERT_ID, Some("man-id"));
    assert_eq!(
        plan.effects,
        vec![
            Effect::PutRow(
                row.clone()
                    .with_attr(ATTR_PENDING_MANUFACTURER_CERT_ID, Some("man-id"))
            ),
            Effect::RegisterCertificate {
                cert_id: "man-id".into(),
                pem: "PEM".into(),
                ca_id: pki().manufacturer_ca.id.clone(),
                status: Active,
            },
            Effect::AttachPolicy {
                policy: ROTATION_COMPLETE_POLICY,
                cert_id: "man-id".into()
            },
            Effect::AttachThingPrincipal {
                thing: SERIAL.into(),
                cert_id: "man-id".into()
            },
            Effect::PutRow(expected_row),
            Effect::Publish {
                topic: format!("/cert-rotation/create-man-cert/{SERIAL}/rspn"),
                payload: json!({"pem": "PEM", "cert_id": "man-id"}),
            },
        ]
    );
}

#[test]
fn create_refusals_each_have_their_reason() {
    let (csr, _) = new_csr(SERIAL);
    let row = thing_created();
    let vendor = vendor_record();
    let base = create_request(Some(&csr));
    let facts = |request| CreateManCertFacts {
        request,
        row: Some(&row),
        vendor_cert: Some(&vendor),
        manufacturer_cert: None,
        thing_certs: &[],
    };

    // From a connection whose certificate is not the vendor cert.
    let r = CreateManCertRequest {
        principal: Some("someone-else".into()),
        ..base.clone()
    };
    assert_eq!(refused_create(facts(&r)), "principal_not_vendor_cert");
    let r = CreateManCertRequest {
        principal: None,
        ..base.clone()
    };
    assert_eq!(refused_create(facts(&r)), "principal_not_vendor_cert");
    // From another clientId.
    let r = CreateManCertRequest {
        client_id: Some("OTHER".into()),
        ..base.clone()
    };
    assert_eq!(refused_create(facts(&r)), "client_id_mismatch");
    // A CSR for another serial.
    let (other_csr, _) = new_csr("OTHERSERIAL");
    let r = create_request(Some(&other_csr));
    assert_eq!(refused_create(facts(&r)), "csr_wrong_serial");
    // A CSR reusing the vendor key (what the sample does).
    let reused = csr_with_key(SERIAL, &pki().vendor.key_pem);
    let r = create_request(Some(&reused));
    assert_eq!(refused_create(facts(&r)), "csr_reuses_vendor_key");
    // No CSR, garbage, a tampered CSR.
    let r = create_request(None);
    assert_eq!(refused_create(facts(&r)), "missing_csr");
    let r = create_request(Some("not a csr"));
    assert_eq!(refused_create(facts(&r)), "bad_csr");
    let tampered = tamper(&csr, SERIAL.as_bytes(), b"XUQWXALODJESC1");
    let r = create_request(Some(&tampered));
    assert_eq!(refused_create(facts(&r)), "bad_csr");
}

#[test]
fn create_is_refused_outside_thing_created() {
    let (csr, _) = new_csr(SERIAL);
    let vendor = vendor_record();
    let request = create_request(Some(&csr));
    let refused_in = |row: Option<&DeviceRow>| {
        refused_create(CreateManCertFacts {
            request: &request,
            row,
            vendor_cert: Some(&vendor),
            manufacturer_cert: None,
            thing_certs: &[],
        })
    };
    assert_eq!(refused_in(None), "not_whitelisted");
    assert_eq!(refused_in(Some(&whitelisted())), "jitp_not_done");
    let done = thing_created()
        .with_state(CrState::CertRotationCompleted)
        .with_attr(ATTR_MANUFACTURER_CERT_ID, Some("m"));
    assert_eq!(refused_in(Some(&done)), "rotation_completed");
    let odd = thing_created().with_attr(ATTR_CR_STATE, Some("??"));
    assert_eq!(refused_in(Some(&odd)), "unknown_state");
    let no_ca = thing_created().with_attr(ATTR_MANUFACTURER_CA_CERT_ID, None);
    assert_eq!(refused_in(Some(&no_ca)), "no_manufacturer_ca");
    // The row names a vendor cert the registry no longer has.
    assert_eq!(
        refused_create(CreateManCertFacts {
            request: &request,
            row: Some(&thing_created()),
            vendor_cert: None,
            manufacturer_cert: None,
            thing_certs: &[],
        }),
        "vendor_cert_missing"
    );
}

#[test]
fn create_enforces_the_fleet_key_type() {
    let (csr, _) = new_csr(SERIAL);
    let row = thing_created();
    let vendor = vendor_record();
    let request = create_request(Some(&csr));
    let decision = create_man_cert::decide(
        CreateManCertFacts {
            request: &request,
            row: Some(&row),
            vendor_cert: Some(&vendor),
            manufacturer_cert: None,
            thing_certs: &[],
        },
        &RotationConfig {
            validity_days: 1,
            key_algorithm: Some(KeyAlgorithm::Rsa2048),
            ..RotationConfig::default()
        },
    );
    match decision {
        Decision::Apply(plan) => assert_eq!(refused_code(&plan), "csr_wrong_key_type"),
        Decision::Sign(_) => panic!("an EC CSR must be refused when the fleet wants RSA"),
    }
}

#[test]
fn create_repeated_request_republishes_the_same_response() {
    let man = pki::sign_csr(
        &new_csr(SERIAL).0,
        &pki().manufacturer_ca.cert_pem,
        &pki().manufacturer_ca.key_pem,
        1,
    )
    .expect("signed");
    let man_id = pki::certificate_id_from_pem(&man).expect("id");
    let man_cert = Certificate {
        id: man_id.clone(),
        ca_id: Some(pki().manufacturer_ca.id.clone()),
        pem: man.clone(),
        status: Active,
        created_at: 0,
    };
    let row = thing_created()
        .with_state(CrState::ManCertCreated)
        .with_attr(ATTR_MANUFACTURER_CERT_ID, Some(&man_id));
    let vendor = vendor_record();
    // Even with a different CSR, the answer is the certificate already issued.
    let first = create_request(Some(&new_csr(SERIAL).0));
    let second = create_request(Some(&new_csr(SERIAL).0));
    let answers: Vec<Plan> = [&first, &second]
        .into_iter()
        .map(|request| {
            match decide_create(CreateManCertFacts {
                request,
                row: Some(&row),
                vendor_cert: Some(&vendor),
                manufacturer_cert: Some(&man_cert),
                thing_certs: &[],
            }) {
                Decision::Apply(plan) => plan,
                Decision::Sign(_) => panic!("a repeated request must not sign again"),
            }
        })
        .collect();
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].outcome, Outcome::Republished);
    assert_eq!(
        answers[0].effects,
        vec![Effect::Publish {
            topic: response_topic(CREATE_MAN_CERT, SERIAL),
            payload: json!({"pem": man, "cert_id": man_id}),
        }]
    );
    // A repeat over a foreign connection still gets nothing.
    let foreign = CreateManCertRequest {
        principal: Some("x".into()),
        ..first
    };
    assert_eq!(
        refused_create(CreateManCertFacts {
            request: &foreign,
            row: Some(&row),
            vendor_cert: Some(&vendor),
            manufacturer_cert: Some(&man_cert),
            thing_certs: &[],
        }),
        "principal_not_vendor_cert"
    );
}

#[test]
fn create_after_a_half_finished_attempt_retires_the_orphan() {
    let (csr, _) = new_csr(SERIAL);
    let row = thing_created();
    let vendor = vendor_record();
    let orphan = Certificate {
        id: "orphan".into(),
        ca_id: Some(pki().manufacturer_ca.id.clone()),
        pem: String::new(),
        status: Active,
        created_at: 0,
    };
    let request = create_request(Some(&csr));
    let sign = match decide_create(CreateManCertFacts {
        request: &request,
        row: Some(&row),
        vendor_cert: Some(&vendor),
        manufacturer_cert: None,
        thing_certs: &[vendor.clone(), orphan],
    }) {
        Decision::Sign(sign) => sign,
        Decision::Apply(plan) => panic!("expected signing, got {plan:?}"),
    };
    assert_eq!(
        sign.cleanup,
        vec![
            Effect::DetachThingPrincipal {
                thing: SERIAL.into(),
                cert_id: "orphan".into()
            },
            Effect::SetCertificateStatus {
                cert_id: "orphan".into(),
                status: Inactive
            },
            Effect::DeleteCertificate {
                cert_id: "orphan".into()
            },
        ]
    );
}
