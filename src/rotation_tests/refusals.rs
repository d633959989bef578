//! Every refusal is answered on the device's response topic with
//! `{"error": {"code", "message", "retryable"}}`; `CsrKeyReuse=warn` signs a
//! CSR made from the vendor key and marks it insecure; a vendor certificate
//! JITP registers again after the rotation is retired.

use super::local_store::LocalCloud;
use super::*;
use crate::rotation::wire::*;
use crate::rotation::{CsrKeyReuse, Outcome, RotationConfig, CSR_KEY_REUSE_ENV};
use serde_json::{json, Value};

fn warn() -> RotationConfig {
    RotationConfig {
        csr_key_reuse: CsrKeyReuse::Warn,
        ..RotationConfig::default()
    }
}

/// The one message the function published, which must be an error answer
/// on `step`'s response topic: `(code, message, retryable)`.
fn answered_error(cloud: &LocalCloud, step: &str) -> (String, String, bool) {
    let published = cloud.published.take();
    assert_eq!(published.len(), 1, "one answer: {published:?}");
    let (topic, payload) = &published[0];
    assert_eq!(topic, &response_topic(step, SERIAL));
    let error = &payload["error"];
    (
        error["code"].as_str().expect("code").to_string(),
        error["message"].as_str().expect("message").to_string(),
        error["retryable"].as_bool().expect("retryable"),
    )
}

fn create_event(client_id: &str, principal: &str, data: Value) -> Value {
    json!({
        "data": data,
        "topic": request_topic(CREATE_MAN_CERT, SERIAL),
        "client_id": client_id,
        "cert_id": principal,
    })
}

#[test]
fn every_create_refusal_is_answered_with_its_code() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    // Before JITP: the cloud has not caught up, so the device may retry.
    let (csr, _) = new_csr(SERIAL);
    cloud.create(SERIAL, &vendor.id, &csr);
    let (code, message, retryable) = answered_error(&cloud, CREATE_MAN_CERT);
    assert_eq!((code.as_str(), retryable), ("jitp_not_done", true));
    assert!(message.contains("JITP"), "{message}");

    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    let reused = csr_with_key(SERIAL, &vendor.key_pem);
    let (other_serial_csr, _) = new_csr("SOMEONE-ELSE");
    let cases: Vec<(Value, &str)> = vec![
        (
            create_event(SERIAL, &vendor.id, json!({"csr": reused})),
            "csr_reuses_vendor_key",
        ),
        (
            create_event("intruder", &vendor.id, json!({"csr": csr})),
            "client_id_mismatch",
        ),
        (
            create_event(SERIAL, "another-cert", json!({"csr": csr})),
            "principal_not_vendor_cert",
        ),
        (create_event(SERIAL, &vendor.id, json!({})), "missing_csr"),
        (
            create_event(SERIAL, &vendor.id, json!({"csr": "not a CSR"})),
            "bad_csr",
        ),
        (
            create_event(SERIAL, &vendor.id, json!({"csr": other_serial_csr})),
            "csr_wrong_serial",
        ),
        (
            create_event(SERIAL, &vendor.id, json!("a string, not an object")),
            "bad_payload",
        ),
    ];
    for (event, expected) in cases {
        match cloud.invoke(event) {
            Outcome::Refused(r) => assert_eq!(r.code, expected),
            other => panic!("{expected}: expected a refusal, got {other:?}"),
        }
        let (code, message, retryable) = answered_error(&cloud, CREATE_MAN_CERT);
        assert_eq!(code, expected);
        assert!(!message.is_empty());
        assert!(!retryable, "{expected} is permanent");
    }
    // The key-reuse answer says what to do.
    cloud.invoke(create_event(SERIAL, &vendor.id, json!({"csr": reused})));
    let (_, message, _) = answered_error(&cloud, CREATE_MAN_CERT);
    assert!(message.contains("new key pair"), "{message}");
    assert!(message.contains("CsrKeyReuse=warn"), "{message}");
    // Each refusal is in the event log with its code and retryability.
    let logged = cloud.refusals(SERIAL);
    assert!(
        logged
            .iter()
            .any(|d| d["code"] == "csr_reuses_vendor_key" && d["retryable"] == false),
        "{logged:?}"
    );
    assert_eq!(cloud.row(SERIAL).state(), Some(CrState::ThingCreated));
}

#[test]
fn an_unknown_serial_is_answered_not_whitelisted() {
    let cloud = LocalCloud::new();
    let (csr, _) = new_csr("NOT-LISTED");
    cloud.invoke(json!({
        "data": {"csr": csr},
        "topic": request_topic(CREATE_MAN_CERT, "NOT-LISTED"),
        "client_id": "NOT-LISTED",
        "cert_id": "x",
    }));
    let published = cloud.published.take();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        published[0].0,
        response_topic(CREATE_MAN_CERT, "NOT-LISTED")
    );
    assert_eq!(published[0].1["error"]["code"], "not_whitelisted");
    assert_eq!(published[0].1["error"]["retryable"], false);
}

#[test]
fn an_ack_refusal_is_answered_on_the_ack_topic() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    let (csr, _) = new_csr(SERIAL);
    assert_eq!(
        cloud.create(SERIAL, &vendor.id, &csr),
        Outcome::ManCertCreated
    );
    let man_id = cloud.published.take()[0].1["cert_id"]
        .as_str()
        .expect("cert_id")
        .to_string();
    // Acked over the vendor connection: refused, and told so.
    match cloud.ack(SERIAL, &vendor.id, &man_id) {
        Outcome::Refused(r) => assert_eq!(r.code, "principal_not_manufacturer_cert"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (code, message, retryable) = answered_error(&cloud, ACK_MAN_CERT);
    assert_eq!(code, "principal_not_manufacturer_cert");
    assert!(message.contains("connect with the manufacturer certificate"));
    assert!(!retryable);
}

#[test]
fn a_backend_failure_is_answered_as_retryable() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    // The stack lost its rotation-complete policy: attaching it fails.
    cloud
        .store
        .delete_policy(ROTATION_COMPLETE_POLICY)
        .expect("delete policy");
    let (csr, _) = new_csr(SERIAL);
    let event = create_event(SERIAL, &vendor.id, json!({"csr": csr}));
    let function = super::local_store::function_of(&cloud);
    let err = function
        .handle(&event, cloud.published.as_ref())
        .expect_err("a backend failure");
    assert!(err.to_string().contains("policy"), "{err}");
    let (code, message, retryable) = answered_error(&cloud, CREATE_MAN_CERT);
    assert_eq!(code, "backend_error");
    assert!(retryable);
    assert!(message.contains("send it again"), "{message}");
}

#[test]
fn warn_signs_a_csr_from_the_vendor_key_and_marks_it_insecure() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    let reused = csr_with_key(SERIAL, &vendor.key_pem);
    let outcome = cloud.invoke_configured(
        create_event(SERIAL, &vendor.id, json!({"csr": reused})),
        &warn(),
    );
    assert_eq!(outcome, Outcome::ManCertCreated);
    let published = cloud.published.take();
    assert_eq!(published.len(), 1);
    let pem = published[0].1["pem"].as_str().expect("a certificate");
    let info = pki::parse_cert(pem).expect("parse");
    assert_eq!(
        info.public_key_der,
        pki::public_key_der_of_key(&vendor.key_pem).expect("key"),
        "the sample's way: the manufacturer cert carries the vendor key"
    );
    assert_eq!(cloud.row(SERIAL).state(), Some(CrState::ManCertCreated));
    // The event log says it is insecure and why.
    let created = cloud
        .store
        .list_events_for(SERIAL, 100)
        .expect("events")
        .into_iter()
        .find(|e| e.kind == "rotation.man_cert_created")
        .expect("logged");
    assert_eq!(created.detail["insecure"]["code"], "csr_reuses_vendor_key");
    let reason = created.detail["insecure"]["reason"].as_str().expect("why");
    assert!(reason.contains("vendor key"), "{reason}");
}

#[test]
fn warn_still_refuses_everything_else() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    let (other_serial_csr, _) = new_csr("SOMEONE-ELSE");
    match cloud.invoke_configured(
        create_event(SERIAL, &vendor.id, json!({"csr": other_serial_csr})),
        &warn(),
    ) {
        Outcome::Refused(r) => assert_eq!(r.code, "csr_wrong_serial"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A new key is signed as usual, without any insecure mark.
    let (csr, _) = new_csr(SERIAL);
    cloud.published.take();
    assert_eq!(
        cloud.invoke_configured(
            create_event(SERIAL, &vendor.id, json!({"csr": csr})),
            &warn()
        ),
        Outcome::ManCertCreated
    );
    let created = cloud
        .store
        .list_events_for(SERIAL, 100)
        .expect("events")
        .into_iter()
        .find(|e| e.kind == "rotation.man_cert_created")
        .expect("logged");
    assert!(created.detail.get("insecure").is_none(), "{created:?}");
}

#[test]
fn the_setting_comes_from_the_functions_environment() {
    let env = |value: &'static str| {
        move |name: &str| (name == CSR_KEY_REUSE_ENV).then(|| value.to_string())
    };
    let config = RotationConfig::default();
    assert_eq!(config.csr_key_reuse, CsrKeyReuse::Refuse);
    assert_eq!(
        config
            .with_environment(env("warn"))
            .expect("warn")
            .csr_key_reuse,
        CsrKeyReuse::Warn
    );
    assert_eq!(
        config
            .with_environment(env("REFUSE"))
            .expect("refuse")
            .csr_key_reuse,
        CsrKeyReuse::Refuse
    );
    assert_eq!(
        config
            .with_environment(|_| None)
            .expect("unset")
            .csr_key_reuse,
        CsrKeyReuse::Refuse
    );
    let err = config.with_environment(env("maybe")).expect_err("refused");
    assert!(err.contains("refuse") && err.contains("warn"), "{err}");
}

#[test]
fn a_vendor_cert_registered_again_after_the_rotation_is_deleted() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    let (csr, _) = new_csr(SERIAL);
    cloud.create(SERIAL, &vendor.id, &csr);
    let man_id = cloud.published.take()[0].1["cert_id"]
        .as_str()
        .expect("cert_id")
        .to_string();
    assert_eq!(
        cloud.ack(SERIAL, &man_id, &man_id),
        Outcome::CertRotationCompleted
    );
    assert!(cloud
        .store
        .get_certificate(&vendor.id)
        .expect("read")
        .is_none());
    // The sample's device retries --jitp with the deleted vendor cert, twice:
    // JITP registers it again each time; nothing of it may stay behind.
    for _ in 0..2 {
        match cloud.jitp(vendor, SERIAL) {
            Outcome::Refused(r) => assert_eq!(r.code, "vendor_cert_retired"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(
            cloud
                .store
                .get_certificate(&vendor.id)
                .expect("read")
                .is_none(),
            "the re-registered vendor cert is deleted"
        );
        assert_eq!(
            cloud
                .store
                .list_thing_principals(SERIAL)
                .expect("principals"),
            vec![man_id.clone()],
            "only the manufacturer cert stays attached"
        );
    }
    let certs = cloud.store.list_certificates().expect("list");
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(
        cloud.row(SERIAL).state(),
        Some(CrState::CertRotationCompleted)
    );
}
