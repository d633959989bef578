//! The rotation function on a cloud set up by the real `deploy` and `init`
//! (stack engine, CAs, CA key parameter, whitelist, factory credentials):
//! checks that both sides agree on the wire contract.

use super::*;
use crate::cloud::events::EventBus;
use crate::cloud::local::functions::{builtin_functions, rotation_config, CERT_ROTATION_HANDLER};
use crate::cloud::local::LocalCloud;
use crate::cloud::Cloud;
use crate::rotation::wire::*;
use crate::rotation::Publisher;
use crate::vocabulary::DEVICE_TABLE;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Value)>>);

impl Publisher for Recorder {
    fn publish(&self, topic: &str, payload: Vec<u8>) {
        let value = serde_json::from_slice(&payload).expect("JSON");
        self.0.lock().expect("lock").push((topic.into(), value));
    }
}

#[tokio::test]
async fn deploy_init_then_rotate_the_samples_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EventBus::new(1024);
    let cloud = LocalCloud::open(dir.path(), bus.clone()).expect("open");
    cloud.deploy().await.expect("deploy");
    let report = cloud.init(1).await.expect("init");
    assert!(report.whitelisted.iter().any(|s| s == SERIAL));

    // The factory credentials `init` wrote for the sample's serial.
    // File names from DESIGN §2.3.
    let creds = cloud.data_dir().device_dir(SERIAL);
    let vendor_chain = std::fs::read_to_string(creds.join("vendor.cert.pem")).expect("cert");
    let vendor_key = std::fs::read_to_string(creds.join("vendor.key.pem")).expect("key");
    let vendor_id = pki::certificate_id_from_pem(&vendor_chain).expect("id");
    // The device cert is the first of the chain (device cert + Vendor CA).
    const END: &str = "-----END CERTIFICATE-----";
    let vendor_pem = vendor_chain
        .find(END)
        .map(|at| format!("{}\n", &vendor_chain[..at + END.len()]))
        .expect("a PEM certificate");
    assert_eq!(
        pki::pem_certificates(&vendor_chain).expect("chain").len(),
        2
    );
    let vendor_ca = cloud
        .store()
        .list_cas()
        .expect("cas")
        .into_iter()
        .find(|ca| ca.auto_registration)
        .expect("the Vendor CA has auto-registration");

    // What JITP does on the first connect (the endpoint's job): register the
    // cert, create the thing, attach it and the in-progress policy.
    let store = cloud.store();
    store
        .register_certificate(&Certificate {
            id: vendor_id.clone(),
            ca_id: Some(vendor_ca.id.clone()),
            pem: vendor_pem,
            status: CertificateStatus::Active,
            created_at: now_millis(),
        })
        .expect("register");
    store
        .create_thing(SERIAL, &serde_json::Map::new())
        .expect("thing");
    store
        .attach_thing_principal(SERIAL, &vendor_id)
        .expect("attach");
    store
        .attach_policy(IN_PROGRESS_POLICY, &vendor_id)
        .expect("policy");

    let functions = builtin_functions(store.clone(), bus, rotation_config(cloud.fleet()));
    let function = functions.get(CERT_ROTATION_HANDLER).expect("registered");
    let recorder = Arc::new(Recorder::default());
    let invoke = |event: Value| {
        let function = Arc::clone(&function);
        let publisher: Arc<dyn Publisher> = recorder.clone();
        async move {
            function
                .invoke(event, serde_json::Map::new(), publisher)
                .await
                .expect("invoked")
        }
    };

    let result = invoke(json!({
        "data": {"certificateId": vendor_id, "caCertificateId": vendor_ca.id},
        "topic": format!("{REGISTERED_TOPIC_PREFIX}{}", vendor_ca.id),
    }))
    .await;
    assert_eq!(result["outcome"], "thing_created", "{result}");

    let (csr, _key) = pki::create_csr(
        &subject(SERIAL),
        cloud.fleet().manufacturer_cert.key_algorithm,
    )
    .expect("csr");
    assert_ne!(
        pki::parse_csr(&csr).expect("csr").public_key_der,
        pki::public_key_der_of_key(&vendor_key).expect("vendor key")
    );
    let result = invoke(json!({
        "data": {"csr": csr},
        "topic": request_topic(CREATE_MAN_CERT, SERIAL),
        "client_id": SERIAL,
        "cert_id": vendor_id,
    }))
    .await;
    assert_eq!(result["outcome"], "man_cert_created", "{result}");
    let response = recorder
        .0
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("response");
    let man_id = response.1["cert_id"].as_str().expect("id").to_string();
    let row = DeviceRow::from_item(
        store
            .get_item(DEVICE_TABLE, SERIAL)
            .expect("read")
            .expect("row"),
    );
    let manufacturer_ca = store
        .get_ca(row.manufacturer_ca_cert_id().expect("ManufacturerCaCertId"))
        .expect("read")
        .expect("the row names a registered Manufacturer CA");
    assert!(pki::verify_signed_by(
        response.1["pem"].as_str().expect("pem"),
        &manufacturer_ca.pem
    )
    .expect("verify"));

    let result = invoke(json!({
        "data": {"cert_id": man_id},
        "topic": request_topic(ACK_MAN_CERT, SERIAL),
        "client_id": SERIAL,
        "cert_id": man_id,
    }))
    .await;
    assert_eq!(result["outcome"], "cert_rotation_completed", "{result}");
    assert!(store.get_certificate(&vendor_id).expect("read").is_none());
    let row = DeviceRow::from_item(
        store
            .get_item(DEVICE_TABLE, SERIAL)
            .expect("read")
            .expect("row"),
    );
    assert_eq!(row.state(), Some(CrState::CertRotationCompleted));
}
