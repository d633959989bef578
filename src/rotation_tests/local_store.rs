//! The executor against the local cloud's real SQLite store (tempdir), the
//! way the rules engine invokes it: the whole 3a/3b/3c walkthrough, the
//! refusals with their logged reasons, and repeated requests.

use super::*;
use crate::cloud::events::{EventBus, EventKind};
use crate::cloud::local::functions::{
    builtin_functions, rotation_config, CertRotation, CERT_ROTATION_HANDLER,
};
use crate::fleet::Fleet;
use crate::model::{CaCertificate, ParameterType};
use crate::rotation::wire::*;
use crate::rotation::{Outcome, Publisher, RotationConfig, RotationFunction};
use crate::store::Store;
use crate::vocabulary::{DEVICE_TABLE, DEVICE_TABLE_KEY};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// Collects what the function publishes.
#[derive(Default)]
pub(super) struct Recorder(Mutex<Vec<(String, Value)>>);

impl Publisher for Recorder {
    fn publish(&self, topic: &str, payload: Vec<u8>) {
        let value = serde_json::from_slice(&payload).expect("the function publishes JSON");
        self.0
            .lock()
            .expect("lock")
            .push((topic.to_string(), value));
    }
}

impl Recorder {
    pub(super) fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

pub(super) struct LocalCloud {
    _dir: tempfile::TempDir,
    pub(super) store: Store,
    bus: EventBus,
    function: Arc<RotationFunction>,
    pub(super) published: Arc<Recorder>,
}

impl LocalCloud {
    /// A deployed and initialised cloud: table, policies, both CAs, the
    /// Manufacturer CA key in the parameter store, `SERIAL` whitelisted.
    pub(super) fn new() -> LocalCloud {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        store
            .create_table(DEVICE_TABLE, DEVICE_TABLE_KEY)
            .expect("table");
        for policy in [IN_PROGRESS_POLICY, ROTATION_COMPLETE_POLICY] {
            store.create_policy(policy, "{}").expect("policy");
        }
        for (ca, label, auto) in [
            (&pki().vendor_ca, "Vendor CA", true),
            (&pki().manufacturer_ca, "Manufacturer CA", false),
        ] {
            store
                .register_ca(&CaCertificate {
                    id: ca.id.clone(),
                    pem: ca.cert_pem.clone(),
                    status: CertificateStatus::Active,
                    auto_registration: auto,
                    registration_config: None,
                    label: label.into(),
                    created_at: now_millis(),
                })
                .expect("CA");
        }
        store
            .put_parameter(
                &ca_key_parameter(&pki().manufacturer_ca.id),
                &pki().manufacturer_ca.key_pem,
                ParameterType::SecureString,
                false,
            )
            .expect("CA key");
        let cloud_store = store.clone();
        let bus = EventBus::new(1024);
        let rotation = CertRotation::new(cloud_store, bus.clone(), RotationConfig::default());
        let cloud = LocalCloud {
            _dir: dir,
            store,
            bus,
            function: Arc::clone(rotation.function()),
            published: Arc::new(Recorder::default()),
        };
        cloud.whitelist(SERIAL);
        cloud
    }

    fn whitelist(&self, serial: &str) {
        let row = DeviceRow::whitelisted(serial, &pki().manufacturer_ca.id);
        self.store.put_item(DEVICE_TABLE, row.item()).expect("row");
    }

    pub(super) fn row(&self, serial: &str) -> DeviceRow {
        DeviceRow::from_item(
            self.store
                .get_item(DEVICE_TABLE, serial)
                .expect("read")
                .expect("row exists"),
        )
    }

    pub(super) fn invoke(&self, event: Value) -> Outcome {
        self.invoke_configured(event, &self.function.config())
    }

    /// One invocation with the stack's settings `config` (its environment).
    pub(super) fn invoke_configured(&self, event: Value, config: &RotationConfig) -> Outcome {
        self.function
            .handle_configured(&event, config, self.published.as_ref())
            .expect("the function runs")
            .outcome
    }

    /// What JITP does on the first connect with a vendor cert (register,
    /// thing, template), then the registered event through the rule.
    pub(super) fn jitp(&self, vendor: &Issued, serial: &str) -> Outcome {
        let record = record(vendor, &pki().vendor_ca, CertificateStatus::Active);
        self.store.register_certificate(&record).expect("register");
        self.store
            .create_thing(serial, &serde_json::Map::new())
            .expect("thing");
        self.store
            .attach_thing_principal(serial, &vendor.id)
            .expect("attach");
        self.store
            .attach_policy(IN_PROGRESS_POLICY, &vendor.id)
            .expect("policy");
        self.registered_event(&vendor.id)
    }

    /// The rule's output for `$aws/events/certificates/registered/<caId>`.
    pub(super) fn registered_event(&self, cert_id: &str) -> Outcome {
        self.invoke(json!({
            "data": {
                "certificateId": cert_id,
                "caCertificateId": pki().vendor_ca.id,
                "timestamp": now_millis(),
                "certificateStatus": "PENDING_ACTIVATION",
                "awsAccountId": "123456789012",
                "certificateRegistrationTimestamp": now_millis().to_string(),
            },
            "topic": format!("{REGISTERED_TOPIC_PREFIX}{}", pki().vendor_ca.id),
        }))
    }

    pub(super) fn create(&self, serial: &str, principal: &str, csr: &str) -> Outcome {
        self.invoke(json!({
            "data": {"csr": csr},
            "topic": request_topic(CREATE_MAN_CERT, serial),
            "client_id": serial,
            "cert_id": principal,
        }))
    }

    pub(super) fn ack(&self, serial: &str, principal: &str, cert_id: &str) -> Outcome {
        self.invoke(json!({
            "data": {"cert_id": cert_id},
            "topic": request_topic(ACK_MAN_CERT, serial),
            "client_id": serial,
            "cert_id": principal,
        }))
    }

    pub(super) fn refusals(&self, subject: &str) -> Vec<Value> {
        self.store
            .list_events_for(subject, 100)
            .expect("events")
            .into_iter()
            .filter(|e| e.kind == "rotation.refused")
            .map(|e| e.detail)
            .collect()
    }
}

/// The function under `cloud`, to call it directly.
pub(super) fn function_of(cloud: &LocalCloud) -> Arc<RotationFunction> {
    Arc::clone(&cloud.function)
}

fn refused_code(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Refused(r) => r.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_whole_walkthrough_on_a_real_store() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;

    // 3a
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    let row = cloud.row(SERIAL);
    assert_eq!(row.state(), Some(CrState::ThingCreated));
    assert_eq!(row.vendor_cert_id(), Some(vendor.id.as_str()));
    // The same registered event again changes nothing.
    assert!(matches!(
        cloud.registered_event(&vendor.id),
        Outcome::NoChange(_)
    ));
    assert_eq!(cloud.row(SERIAL), row);

    // 3b
    let (csr, key) = new_csr(SERIAL);
    assert_eq!(
        cloud.create(SERIAL, &vendor.id, &csr),
        Outcome::ManCertCreated
    );
    let published = cloud.published.take();
    assert_eq!(published.len(), 1);
    let (topic, response) = &published[0];
    assert_eq!(
        topic,
        &format!("/cert-rotation/create-man-cert/{SERIAL}/rspn")
    );
    let pem = response["pem"].as_str().expect("pem");
    let man_id = response["cert_id"].as_str().expect("cert_id").to_string();
    assert_eq!(pki::certificate_id_from_pem(pem).expect("id"), man_id);
    assert!(pki::verify_signed_by(pem, &pki().manufacturer_ca.cert_pem).expect("verify"));
    let info = pki::parse_cert(pem).expect("parse");
    assert_eq!(info.subject.common_name.as_deref(), Some(SERIAL));
    assert_eq!(
        info.public_key_der,
        pki::public_key_der_of_key(&key).expect("key")
    );
    assert_ne!(
        info.public_key_der,
        pki::public_key_der_of_key(&vendor.key_pem).expect("key")
    );
    let man = cloud
        .store
        .get_certificate(&man_id)
        .expect("read")
        .expect("registered");
    assert_eq!(man.status, CertificateStatus::Active);
    assert_eq!(
        man.ca_id.as_deref(),
        Some(pki().manufacturer_ca.id.as_str())
    );
    let policies: Vec<String> = cloud
        .store
        .list_attached_policies(&man_id)
        .expect("policies")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(policies, vec![ROTATION_COMPLETE_POLICY.to_string()]);
    let row = cloud.row(SERIAL);
    assert_eq!(row.state(), Some(CrState::ManCertCreated));
    assert_eq!(row.manufacturer_cert_id(), Some(man_id.as_str()));

    // A repeated create gets the identical response and issues nothing.
    let certs_before = cloud.store.list_certificates().expect("list").len();
    assert_eq!(cloud.create(SERIAL, &vendor.id, &csr), Outcome::Republished);
    assert_eq!(cloud.published.take(), published);
    assert_eq!(
        cloud.store.list_certificates().expect("list").len(),
        certs_before
    );

    // 3c
    assert_eq!(
        cloud.ack(SERIAL, &man_id, &man_id),
        Outcome::CertRotationCompleted
    );
    let acked = cloud.published.take();
    assert_eq!(
        acked,
        vec![(
            format!("/cert-rotation/ack-man-cert/{SERIAL}/rspn"),
            json!({"cert_id": man_id})
        )]
    );
    assert!(cloud
        .store
        .get_certificate(&vendor.id)
        .expect("read")
        .is_none());
    assert_eq!(
        cloud
            .store
            .list_thing_principals(SERIAL)
            .expect("principals"),
        vec![man_id.clone()]
    );
    let row = cloud.row(SERIAL);
    assert_eq!(row.state(), Some(CrState::CertRotationCompleted));
    assert_eq!(row.vendor_cert_id(), None);
    assert_eq!(row.manufacturer_cert_id(), Some(man_id.as_str()));

    // A retried ack is answered again (the sample never answers it).
    assert_eq!(cloud.ack(SERIAL, &man_id, &man_id), Outcome::Republished);
    assert_eq!(cloud.published.take(), acked);

    // Every step is in the event log, in order.
    let kinds: Vec<String> = cloud
        .store
        .list_events_for(SERIAL, 100)
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "rotation.thing_created",
            "rotation.no_change",
            "rotation.man_cert_created",
            "rotation.republished",
            "rotation.cert_rotation_completed",
            "rotation.republished",
        ]
    );
}

#[test]
fn a_serial_that_is_not_whitelisted_ends_with_an_inactive_cert_and_nothing_else() {
    let cloud = LocalCloud::new();
    let mut rx = cloud.bus.subscribe();
    let stranger = issue_vendor(&pki().vendor_ca, "NOTWHITELISTED1");
    let outcome = cloud.jitp(&stranger, "NOTWHITELISTED1");
    assert_eq!(refused_code(&outcome), "not_whitelisted");
    let cert = cloud
        .store
        .get_certificate(&stranger.id)
        .expect("read")
        .expect("still registered");
    assert_eq!(cert.status, CertificateStatus::Inactive);
    assert!(cloud.published.take().is_empty());
    assert!(cloud
        .store
        .get_item(DEVICE_TABLE, "NOTWHITELISTED1")
        .expect("read")
        .is_none());
    let refusals = cloud.refusals("NOTWHITELISTED1");
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0]["code"], "not_whitelisted");
    assert!(refusals[0]["reason"]
        .as_str()
        .expect("reason")
        .contains("not whitelisted"));
    // The refusal is on the event stream too, as a function event.
    let mut function_events = Vec::new();
    while let Some(event) = rx.try_recv() {
        if event.kind == EventKind::Function {
            function_events.push(event);
        }
    }
    assert_eq!(function_events.len(), 1);
    assert!(function_events[0].summary.contains("refused"));
    // Its later requests get nothing but the refusal.
    let (csr, _) = new_csr("NOTWHITELISTED1");
    assert_eq!(
        refused_code(&cloud.create("NOTWHITELISTED1", &stranger.id, &csr)),
        "not_whitelisted"
    );
    let answers = cloud.published.take();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].1["error"]["code"], "not_whitelisted");
}

#[test]
fn forged_and_wrong_requests_are_refused_with_a_logged_reason_and_change_nothing() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    let row = cloud.row(SERIAL);
    let certs = cloud.store.list_certificates().expect("list").len();

    let (other_csr, _) = new_csr("SOMEONEELSE");
    let reused = csr_with_key(SERIAL, &vendor.key_pem);
    let (csr, _) = new_csr(SERIAL);
    let tampered = tamper(&csr, SERIAL.as_bytes(), b"XUQWXALODJESC1");
    let cases = [
        (
            cloud.create(SERIAL, &vendor.id, &other_csr),
            "csr_wrong_serial",
        ),
        (
            cloud.create(SERIAL, &vendor.id, &reused),
            "csr_reuses_vendor_key",
        ),
        (cloud.create(SERIAL, &vendor.id, &tampered), "bad_csr"),
        (
            cloud.create(SERIAL, "not-the-vendor-cert", &csr),
            "principal_not_vendor_cert",
        ),
        (
            cloud.ack(SERIAL, &vendor.id, &vendor.id),
            "no_manufacturer_cert",
        ),
    ];
    let mut expected_codes = Vec::new();
    for (outcome, code) in &cases {
        assert_eq!(refused_code(outcome), *code);
        expected_codes.push(json!(code));
    }
    // Each one answered with its code, nothing else published.
    let answered: Vec<Value> = cloud
        .published
        .take()
        .into_iter()
        .map(|(_, payload)| payload["error"]["code"].clone())
        .collect();
    assert_eq!(answered, expected_codes);
    assert_eq!(cloud.row(SERIAL), row);
    assert_eq!(cloud.store.list_certificates().expect("list").len(), certs);
    let logged: Vec<Value> = cloud
        .refusals(SERIAL)
        .into_iter()
        .map(|d| {
            assert!(!d["reason"].as_str().expect("reason").is_empty());
            d["code"].clone()
        })
        .collect();
    assert_eq!(logged, expected_codes);

    // After a real issuance, an ack naming another id is refused too.
    assert_eq!(
        cloud.create(SERIAL, &vendor.id, &csr),
        Outcome::ManCertCreated
    );
    let man_id = cloud
        .row(SERIAL)
        .manufacturer_cert_id()
        .expect("id")
        .to_string();
    cloud.published.take();
    assert_eq!(
        refused_code(&cloud.ack(SERIAL, &man_id, &vendor.id)),
        "wrong_cert_id"
    );
    assert_eq!(
        refused_code(&cloud.ack(SERIAL, &vendor.id, &man_id)),
        "principal_not_manufacturer_cert"
    );
    let answered: Vec<Value> = cloud
        .published
        .take()
        .into_iter()
        .map(|(topic, payload)| json!([topic, payload["error"]["code"]]))
        .collect();
    let ack_rspn = format!("/cert-rotation/ack-man-cert/{SERIAL}/rspn");
    assert_eq!(
        answered,
        vec![
            json!([ack_rspn, "wrong_cert_id"]),
            json!([ack_rspn, "principal_not_manufacturer_cert"])
        ]
    );
    assert!(cloud
        .store
        .get_certificate(&vendor.id)
        .expect("read")
        .is_some());
    assert_eq!(cloud.row(SERIAL).state(), Some(CrState::ManCertCreated));
}

#[test]
fn a_missing_ca_key_is_a_refusal_that_says_to_run_init() {
    let cloud = LocalCloud::new();
    assert_eq!(cloud.jitp(&pki().vendor, SERIAL), Outcome::ThingCreated);
    assert!(cloud
        .store
        .delete_parameter(&ca_key_parameter(&pki().manufacturer_ca.id))
        .expect("delete"));
    let (csr, _) = new_csr(SERIAL);
    match cloud.create(SERIAL, &pki().vendor.id, &csr) {
        Outcome::Refused(r) => {
            assert_eq!(r.code, "ca_key_missing");
            assert!(r.reason.contains("jitpilot init"), "{}", r.reason);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(cloud.row(SERIAL).state(), Some(CrState::ThingCreated));
}

#[tokio::test]
async fn the_rules_engine_invokes_it_by_handler_name() {
    let cloud = LocalCloud::new();
    assert_eq!(cloud.jitp(&pki().vendor, SERIAL), Outcome::ThingCreated);
    let fleet = Fleet::builtin().expect("built-in fleet");
    let config = rotation_config(&fleet);
    assert_eq!(config.validity_days, fleet.manufacturer_cert.validity_days);
    let functions = builtin_functions(cloud.store.clone(), cloud.bus.clone(), config);
    let function = functions
        .get(CERT_ROTATION_HANDLER)
        .expect("cert-rotation is registered");
    let (csr, _) = new_csr(SERIAL);
    let publisher: Arc<dyn Publisher> = cloud.published.clone();
    let result = function
        .invoke(
            json!({
                "data": {"csr": csr},
                "topic": request_topic(CREATE_MAN_CERT, SERIAL),
                "client_id": SERIAL,
                "cert_id": pki().vendor.id,
            }),
            serde_json::Map::new(),
            publisher,
        )
        .await
        .expect("invoked");
    assert_eq!(result["outcome"], "man_cert_created");
    assert_eq!(result["subject"], SERIAL);
    let published = cloud.published.take();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].1["cert_id"].as_str(),
        cloud.row(SERIAL).manufacturer_cert_id()
    );
    // The validity comes from the fleet definition.
    let info = pki::parse_cert(published[0].1["pem"].as_str().expect("pem")).expect("cert");
    let days = (info.not_after - info.not_before) / 86_400;
    assert!(
        (i64::from(config.validity_days)..=i64::from(config.validity_days) + 1).contains(&days),
        "{days} days"
    );
}
