//! JITP over a real store: the plan lands whole, with its event-log lines,
//! or not at all. (The decision itself is tested in `plan_tests.rs`.)

use super::*;
use crate::model::{CaCertificate, Certificate, RegistrationConfig};
use crate::pki::{self, KeyAlgorithm, Subject};

/// The walkthrough's template (`init` attaches it to the Vendor CA).
pub(super) const WALKTHROUGH_TEMPLATE: &str = r#"{
  "Parameters": {
    "AWS::IoT::Certificate::CommonName": {"Type": "String"},
    "AWS::IoT::Certificate::Id": {"Type": "String"}
  },
  "Resources": {
    "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "CrInprogressCertPolicy"}},
    "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
      "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
    "thing": {"Type": "AWS::IoT::Thing", "Properties": {
      "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
      "AttributePayload": {"by": "jitp"}}}
  }
}"#;

pub(super) struct Device {
    pub der: Vec<u8>,
    pub pem: String,
    pub id: String,
}

/// A device certificate with CN = `serial` (no country), signed by a new CA.
pub(super) fn device(serial: &str) -> Device {
    let ca_subject = Subject {
        common_name: Some("Vendor CA".into()),
        ..Subject::default()
    };
    let ca = pki::create_ca(&ca_subject, KeyAlgorithm::EcdsaP256, 30).unwrap();
    let subject = Subject {
        common_name: Some(serial.into()),
        ..Subject::default()
    };
    let issued = pki::issue_device_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &subject,
        KeyAlgorithm::EcdsaP256,
        30,
    )
    .unwrap();
    let der = pki::pem_certificates(&issued.cert_pem).unwrap().remove(0);
    Device {
        id: pki::certificate_id(&der),
        der,
        pem: issued.cert_pem,
    }
}

pub(super) fn vendor_ca(template: Option<&str>) -> CaCertificate {
    CaCertificate {
        id: "ca0123456789abcdef".into(),
        pem: String::new(),
        status: CertificateStatus::Active,
        auto_registration: true,
        registration_config: template.map(|body| RegistrationConfig {
            template_body: body.into(),
            role_arn: "arn:aws:iam::123456789012:role/JITPRole".into(),
        }),
        label: "Vendor CA".into(),
        created_at: 1,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// A store with the walkthrough template's policy, as the stack creates it.
fn deployed() -> (tempfile::TempDir, Store) {
    let (dir, store) = open();
    create_the_policy(&store);
    (dir, store)
}

fn create_the_policy(store: &Store) {
    store
        .create_policy("CrInprogressCertPolicy", r#"{"Statement":[]}"#)
        .unwrap();
}

pub(super) fn request<'a>(device: &'a Device, ca: &'a CaCertificate) -> JitpRequest<'a> {
    JitpRequest {
        cert_der: &device.der,
        cert_pem: &device.pem,
        cert_id: &device.id,
        ca,
        client_id: "SER1",
    }
}

#[test]
fn provision_registers_applies_the_template_and_logs_every_step() {
    let (_dir, store) = deployed();
    let device = device("SER1");
    let ca = vendor_ca(Some(WALKTHROUGH_TEMPLATE));
    let done = provision(&store, &request(&device, &ca)).unwrap();
    assert!(done.newly_registered);
    let cert = store.get_certificate(&device.id).unwrap().unwrap();
    assert_eq!(cert.status, CertificateStatus::Active);
    assert_eq!(cert.created_at, done.registered_at);
    assert_eq!(
        store.list_thing_principals("SER1").unwrap(),
        std::slice::from_ref(&device.id)
    );
    let policies = store.list_attached_policies(&device.id).unwrap();
    assert_eq!(policies[0].name, "CrInprogressCertPolicy");
    let pending = pending_registered_events(&store).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].serial.as_deref(), Some("SER1"));
    let mut log = store.list_events_for("SER1", 100).unwrap();
    log.sort_by_key(|e| e.seq);
    let kinds: Vec<&str> = log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "jitp.registered",
            "jitp.thing",
            "jitp.policy",
            "jitp.template_applied"
        ]
    );
    assert_eq!(log[1].detail["jitp"]["certificateId"], device.id.as_str());
    assert_eq!(done.steps.len(), 4);
}

#[test]
fn a_write_failing_part_way_leaves_no_trace_and_a_retry_provisions() {
    let (_dir, store) = open();
    let device = device("SER1");
    let ca = vendor_ca(Some(WALKTHROUGH_TEMPLATE));
    // The template names a policy the stack did not create: AttachPolicy
    // fails after the registration, the thing and its attachment.
    let err = provision(&store, &request(&device, &ca)).unwrap_err();
    assert!(
        matches!(
            &err,
            JitpError::Store(StoreError::NotFound { kind: "policy", .. })
        ),
        "{err}"
    );
    assert_eq!(store.get_certificate(&device.id).unwrap(), None);
    assert_eq!(store.get_thing("SER1").unwrap(), None);
    assert!(store.list_events_for("SER1", 100).unwrap().is_empty());
    assert!(pending_registered_events(&store).unwrap().is_empty());

    // Once the policy exists, the device's next connect provisions it.
    create_the_policy(&store);
    let done = provision(&store, &request(&device, &ca)).unwrap();
    assert_eq!(done.status, CertificateStatus::Active);
}

#[test]
fn a_refused_template_writes_nothing() {
    let (_dir, store) = open();
    let device = device("SER1");
    let ca = vendor_ca(Some(r#"{"Resources": {"q": {"Type": "AWS::SQS::Queue"}}}"#));
    let err = provision(&store, &request(&device, &ca)).unwrap_err();
    assert!(
        matches!(err, JitpError::Refused(Refusal::Template { .. })),
        "{err}"
    );
    assert_eq!(store.get_certificate(&device.id).unwrap(), None);
}

#[test]
fn a_certificate_left_pending_by_a_cut_short_attempt_keeps_its_registration() {
    let (_dir, store) = deployed();
    let device = device("SER1");
    let ca = vendor_ca(Some(WALKTHROUGH_TEMPLATE));
    store
        .register_certificate(&Certificate {
            id: device.id.clone(),
            ca_id: Some(ca.id.clone()),
            pem: device.pem.clone(),
            status: CertificateStatus::PendingActivation,
            created_at: 400,
        })
        .unwrap();
    let done = provision(&store, &request(&device, &ca)).unwrap();
    assert_eq!((done.registered_at, done.newly_registered), (400, false));
    let cert = store.get_certificate(&device.id).unwrap().unwrap();
    assert_eq!(
        (cert.status, cert.created_at),
        (CertificateStatus::Active, 400)
    );
    assert_eq!(
        pending_registered_events(&store).unwrap()[0].registered_at,
        400
    );
}
