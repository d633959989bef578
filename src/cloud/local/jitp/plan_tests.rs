//! JITP's decision without a store: certificate and template in, writes out.

use super::super::tests::{device, request, vendor_ca, WALKTHROUGH_TEMPLATE};
use super::*;
use crate::pki;

const NEW: JitpFacts<'static> = JitpFacts {
    registered: None,
    now: 1_000,
};

/// The effects without the event-log lines (checked separately).
fn writes(plan: &JitpPlan) -> Vec<JitpEffect> {
    plan.effects
        .iter()
        .filter(|e| !matches!(e, JitpEffect::Log { .. }))
        .cloned()
        .collect()
}

fn log_kinds(plan: &JitpPlan) -> Vec<&'static str> {
    plan.effects
        .iter()
        .filter_map(|e| match e {
            JitpEffect::Log { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_certificate_is_registered_then_thing_policy_outbox_and_status_in_that_order() {
    let device = device("SER1");
    let ca = vendor_ca(Some(WALKTHROUGH_TEMPLATE));
    let plan = plan(&request(&device, &ca), &NEW).unwrap();
    let id = device.id.clone();
    assert_eq!(
        writes(&plan),
        vec![
            JitpEffect::RegisterCertificate(Certificate {
                id: id.clone(),
                ca_id: Some(ca.id.clone()),
                pem: device.pem.clone(),
                status: CertificateStatus::PendingActivation,
                created_at: 1_000,
            }),
            JitpEffect::CreateThing {
                name: "SER1".into(),
                attributes: serde_json::json!({"by": "jitp"})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
            JitpEffect::AttachThingPrincipal {
                thing: "SER1".into(),
                cert_id: id.clone(),
            },
            JitpEffect::AttachPolicy {
                policy: "CrInprogressCertPolicy".into(),
                cert_id: id.clone(),
            },
            JitpEffect::RecordRegisteredEvent(PendingRegisteredEvent {
                certificate_id: id.clone(),
                ca_certificate_id: ca.id.clone(),
                registered_at: 1_000,
                serial: Some("SER1".into()),
            }),
            JitpEffect::SetCertificateStatus {
                cert_id: id.clone(),
                status: CertificateStatus::Active,
            },
        ]
    );
    // Every step is in the event log, under the connection's clientId, after the writes.
    assert_eq!(
        log_kinds(&plan),
        [
            "jitp.registered",
            "jitp.thing",
            "jitp.policy",
            "jitp.template_applied"
        ]
    );
    assert!(
        matches!(plan.effects.last(), Some(JitpEffect::Log { subject, .. }) if subject == "SER1")
    );
    let done = &plan.provisioned;
    assert_eq!(done.status, CertificateStatus::Active);
    assert_eq!(done.thing.as_deref(), Some("SER1"));
    assert_eq!(done.policies, ["CrInprogressCertPolicy"]);
    assert_eq!((done.registered_at, done.newly_registered), (1_000, true));
    assert_eq!(done.serial.as_deref(), Some("SER1"));
    let summaries: Vec<&str> = done.steps.iter().map(|s| s.summary.as_str()).collect();
    assert_eq!(
        summaries[3],
        format!("certificate {} is ACTIVE (template applied)", &id[..12])
    );
    assert_eq!(done.steps[0].event_kind, EventKind::Jitp);
}

#[test]
fn a_retried_jitp_keeps_the_first_registration() {
    let device = device("SER1");
    let ca = vendor_ca(Some(WALKTHROUGH_TEMPLATE));
    let earlier = Certificate {
        id: device.id.clone(),
        ca_id: Some(ca.id.clone()),
        pem: device.pem.clone(),
        status: CertificateStatus::PendingActivation,
        created_at: 400,
    };
    let facts = JitpFacts {
        registered: Some(&earlier),
        now: 1_000,
    };
    let plan = plan(&request(&device, &ca), &facts).unwrap();
    assert!(!plan
        .effects
        .iter()
        .any(|e| matches!(e, JitpEffect::RegisterCertificate(_))));
    assert_eq!(
        (
            plan.provisioned.registered_at,
            plan.provisioned.newly_registered
        ),
        (400, false)
    );
    assert!(plan
        .effects
        .contains(&JitpEffect::RecordRegisteredEvent(PendingRegisteredEvent {
            certificate_id: device.id.clone(),
            ca_certificate_id: ca.id.clone(),
            registered_at: 400,
            serial: Some("SER1".into()),
        })));
    assert_eq!(
        log_kinds(&plan),
        ["jitp.thing", "jitp.policy", "jitp.template_applied"]
    );
}

#[test]
fn an_inline_policy_is_named_after_its_content_and_a_default_fills_a_missing_parameter() {
    let template = r#"{
      "Parameters": {"AWS::IoT::Certificate::Country": {"Type": "String", "Default": "FR"}},
      "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
          "ThingName": {"Fn::Join": ["-", [{"Ref": "AWS::IoT::Certificate::Country"},
                                           {"Ref": "AWS::IoT::Certificate::CommonName"}]]}}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {
          "PolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}}
      }
    }"#;
    let device = device("SER7");
    let ca = vendor_ca(Some(template));
    let plan = plan(&request(&device, &ca), &NEW).unwrap();
    let document = r#"{"Version":"2012-10-17","Statement":[]}"#;
    let name = format!("jitp-{}", &pki::certificate_id(document.as_bytes())[..16]);
    let w = writes(&plan);
    assert!(matches!(&w[1], JitpEffect::CreateThing { name, .. } if name == "FR-SER7"));
    assert_eq!(
        w[3],
        JitpEffect::CreatePolicyIfAbsent {
            name: name.clone(),
            document: document.into(),
        }
    );
    assert_eq!(
        w[4],
        JitpEffect::AttachPolicy {
            policy: name,
            cert_id: device.id.clone(),
        }
    );
    // No certificate resource: the certificate stays PENDING_ACTIVATION.
    assert_eq!(
        plan.provisioned.status,
        CertificateStatus::PendingActivation
    );
}

#[test]
fn a_template_that_cannot_be_applied_is_refused_with_its_reason_and_no_writes() {
    let device = device("SER1");
    let refused = |template: Option<&str>| {
        let ca = vendor_ca(template);
        plan(&request(&device, &ca), &NEW).unwrap_err()
    };
    assert_eq!(
        refused(None),
        Refusal::NoTemplate("ca0123456789abcdef".into())
    );
    let reason = |template: &str| match refused(Some(template)) {
        Refusal::Template { reason, .. } => reason,
        other => panic!("not a template refusal: {other}"),
    };
    assert!(reason("{").starts_with("not JSON"));
    assert_eq!(reason("{}"), "no `Resources` object");
    assert!(
        reason(r#"{"Resources": {"q": {"Type": "AWS::SQS::Queue"}}}"#)
            .contains("q: resource type AWS::SQS::Queue is not supported by JITP")
    );
    assert!(
        reason(r#"{"Resources": {"t": {"Type": "AWS::IoT::Thing"}}}"#)
            .contains("t: ThingName missing")
    );
    assert!(reason(
        r#"{"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Ref": "AWS::IoT::Certificate::Country"}}}}}"#
    )
    .contains("parameter AWS::IoT::Certificate::Country is not in the certificate"));
    assert!(reason(
        r#"{"Resources": {"c": {"Type": "AWS::IoT::Certificate", "Properties": {"Status": "ON"}}}}"#
    )
    .contains("c: unknown Status ON"));
    assert!(
        reason(r#"{"Resources": {"p": {"Type": "AWS::IoT::Policy"}}}"#)
            .contains("p: needs PolicyName or PolicyDocument")
    );
    // The message says what to do.
    let message = refused(Some("{}")).to_string();
    assert!(message.contains("run `jitpilot init` again"), "{message}");
}

#[test]
fn a_certificate_that_does_not_parse_is_refused() {
    let ca = vendor_ca(Some(WALKTHROUGH_TEMPLATE));
    let request = JitpRequest {
        cert_der: b"not a certificate",
        cert_pem: "",
        cert_id: "00",
        ca: &ca,
        client_id: "SER1",
    };
    assert!(matches!(plan(&request, &NEW), Err(Refusal::Certificate(_))));
}
