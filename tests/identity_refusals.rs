//! Who may do what, end to end through `jitpilot serve`, an AWS client and
//! real TLS connections — the README's promises that only the right
//! certificate gets anywhere:
//!
//! - a REVOKED certificate (`aws iot update-certificate --new-status
//!   REVOKED`, what the TUI's `f` → revoke calls) is disconnected at once,
//!   refused on every later connect, and JITP does not bring it back;
//! - a CSR is signed only when it comes over the serial's current vendor
//!   certificate: over another certificate of the same thing — a second
//!   Vendor-CA certificate an operator attached, or the device's own
//!   manufacturer certificate — it is answered `principal_not_vendor_cert`
//!   and nothing is issued.

mod support;
use support::Bounded;

use jitpilot::fleet::SAMPLE_SERIAL;
use jitpilot::model::CertificateStatus;
use jitpilot::pki;
use jitpilot::store::Store;
use jitpilot::vocabulary::DEVICE_TABLE;
use jitpilot::vocabulary::VENDOR_KEY_PARAMETER;
use rumqttc::QoS;
use serde_json::{json, Value};
use simulated_devices::{run_device, DeviceConfig, DeviceFailure, Goal, RetryPolicy};
use std::path::Path;
use std::process::Command;
use support::api::{env_keys, Keys};
use support::endpoint::*;

/// `aws ARGS` (the aws CLI from PyPI) against the running cloud's API.
fn aws(keys: &Keys, args: &[&str]) -> Value {
    let mut command = Command::new("aws");
    command.args(args).args(["--output", "json"]);
    keys.isolate(&mut command, Path::new("/nonexistent/jitpilot-test"));
    let out = command
        .bounded_output()
        .expect("the aws CLI runs (scripts/test installs awscli from PyPI)");
    assert!(
        out.status.success(),
        "aws {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).expect("the aws CLI prints JSON")
}

/// The sample device, run by the device agent against `server`, giving up
/// after a few connects (a refused certificate stays refused).
fn device(server: &Server, data_dir: &Path) -> DeviceConfig {
    let creds = data_dir.join("devices").join(SAMPLE_SERIAL);
    let mut config = DeviceConfig::new(SAMPLE_SERIAL, creds, server.addr.clone());
    config.server_name = Some("localhost".into());
    config.seed = Some(17);
    config.retry = RetryPolicy {
        max_connect_attempts: 4,
        ..RetryPolicy::default()
    };
    config
}

fn row(data_dir: &Path) -> serde_json::Map<String, Value> {
    Store::open_read_only(data_dir)
        .expect("read the store")
        .get_item(DEVICE_TABLE, SAMPLE_SERIAL)
        .expect("get item")
        .expect("the sample's row")
}

/// Certificates in the registry whose CommonName is the sample's serial.
fn certificates_of_sample(data_dir: &Path) -> Vec<jitpilot::model::Certificate> {
    Store::open_read_only(data_dir)
        .expect("read the store")
        .list_certificates()
        .expect("certificates")
        .into_iter()
        .filter(|c| {
            pki::parse_cert(&c.pem)
                .ok()
                .and_then(|i| i.subject.common_name)
                .as_deref()
                == Some(SAMPLE_SERIAL)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_disconnected_and_refused_end_to_end() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let keys = env_keys(&fx.data_dir);
    run_device(device(&server, &fx.data_dir), Goal::Jitp, None)
        .await
        .expect("3a: JITP provisions the vendor certificate");
    cr_state_reaches(&fx.data_dir, SAMPLE_SERIAL, "CR_THING_CREATED").await;
    let vendor_id = pki::certificate_id_from_pem(&fx.device.chain_pem).expect("id");
    assert_eq!(row(&fx.data_dir)["VendorCertId"], vendor_id.as_str());

    // Connected with the vendor certificate when it is revoked.
    let Outcome::Accepted(_client, eventloop) = connect(&server, &fx.device, SAMPLE_SERIAL).await
    else {
        panic!("the provisioned vendor certificate connects");
    };
    let mut rx = drive(eventloop);
    aws(
        &keys,
        &[
            "iot",
            "update-certificate",
            "--certificate-id",
            &vendor_id,
            "--new-status",
            "REVOKED",
        ],
    );
    let why = closed(&mut rx).await;
    println!("the connected device was closed: {why}");

    // Every later connect is refused, and JITP does not re-provision it.
    let err = run_device(device(&server, &fx.data_dir), Goal::CreateCert, None)
        .await
        .expect_err("a revoked certificate cannot connect");
    assert!(
        matches!(err.failure(), Some(DeviceFailure::ConnectRefused { .. })),
        "{err}"
    );
    let described = aws(
        &keys,
        &[
            "iot",
            "describe-certificate",
            "--certificate-id",
            &vendor_id,
        ],
    );
    assert_eq!(
        described["certificateDescription"]["status"], "REVOKED",
        "still REVOKED after the device's connects: {described:#}"
    );
    assert_eq!(row(&fx.data_dir)["CrState"], "CR_THING_CREATED");
    assert!(
        !fx.data_dir
            .join("devices")
            .join(SAMPLE_SERIAL)
            .join("manufacturer.cert.pem")
            .exists(),
        "nothing was issued"
    );
    let refusals: Vec<_> = Store::open_read_only(&fx.data_dir)
        .expect("store")
        .list_events(0, 100_000)
        .expect("events")
        .into_iter()
        .filter(|e| e.detail.to_string().contains("REVOKED"))
        .collect();
    assert!(
        !refusals.is_empty(),
        "the refused connects are logged with the certificate's status"
    );
}

/// A client with `identity` as the sample's serial, subscribed to its
/// create-man-cert response topic, publishing a fresh CSR; the answer.
async fn csr_over(server: &Server, identity: &Identity) -> Value {
    let Outcome::Accepted(client, eventloop) = connect(server, identity, SAMPLE_SERIAL).await
    else {
        panic!("the certificate connects as {SAMPLE_SERIAL}");
    };
    let mut rx = drive(eventloop);
    let rspn = format!("/cert-rotation/create-man-cert/{SAMPLE_SERIAL}/rspn");
    client
        .subscribe(&rspn, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    next_suback(&mut rx).await;
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SAMPLE_SERIAL);
    let csr = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    client
        .publish(
            format!("/cert-rotation/create-man-cert/{SAMPLE_SERIAL}/rqst"),
            QoS::AtLeastOnce,
            false,
            json!({ "csr": csr }).to_string(),
        )
        .await
        .expect("publish");
    let answer = next_publish(&mut rx, |t| t == rspn).await;
    let _ = client.disconnect().await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csr_over_a_certificate_that_is_not_the_vendor_certs_is_refused_end_to_end() {
    let fx = fixture();
    // An operator's second Vendor-CA certificate for the same serial.
    let (vendor_ca_pem, vendor_ca_key) = {
        let store = Store::open(&fx.data_dir).expect("store");
        let ca = store
            .list_cas()
            .expect("cas")
            .into_iter()
            .find(|c| c.label == "Vendor CA")
            .expect("the Vendor CA");
        let key = store
            .get_parameter(VENDOR_KEY_PARAMETER, true)
            .expect("parameter")
            .expect("the Vendor CA key")
            .value;
        (ca.pem, key)
    };
    let second = issue(&vendor_ca_pem, &vendor_ca_key, SAMPLE_SERIAL);
    let server = serve(&fx.data_dir);
    let keys = env_keys(&fx.data_dir);
    run_device(device(&server, &fx.data_dir), Goal::Jitp, None)
        .await
        .expect("3a");
    cr_state_reaches(&fx.data_dir, SAMPLE_SERIAL, "CR_THING_CREATED").await;
    let vendor_id = pki::certificate_id_from_pem(&fx.device.chain_pem).expect("id");

    // Registered ACTIVE, attached to the thing with the in-progress policy:
    // the endpoint lets it connect as the thing and publish its requests.
    let end = "-----END CERTIFICATE-----";
    let cert_pem = &second.chain_pem[..second.chain_pem.find(end).expect("a PEM") + end.len()];
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_file = dir.path().join("second.pem");
    let ca_file = dir.path().join("vendor-ca.pem");
    std::fs::write(&cert_file, cert_pem).expect("write");
    std::fs::write(&ca_file, &vendor_ca_pem).expect("write");
    let registered = aws(
        &keys,
        &[
            "iot",
            "register-certificate",
            "--certificate-pem",
            &format!("file://{}", cert_file.display()),
            "--ca-certificate-pem",
            &format!("file://{}", ca_file.display()),
            "--status",
            "ACTIVE",
        ],
    );
    let arn = registered["certificateArn"]
        .as_str()
        .expect("arn")
        .to_string();
    aws(
        &keys,
        &[
            "iot",
            "attach-thing-principal",
            "--thing-name",
            SAMPLE_SERIAL,
            "--principal",
            &arn,
        ],
    );
    aws(
        &keys,
        &[
            "iot",
            "attach-policy",
            "--policy-name",
            "CrInProgressCertPolicy",
            "--target",
            &arn,
        ],
    );
    let answer = csr_over(&server, &second).await;
    assert_eq!(
        answer["error"]["code"], "principal_not_vendor_cert",
        "{answer:#}"
    );
    let state = row(&fx.data_dir);
    assert_eq!(state["CrState"], "CR_THING_CREATED");
    assert!(state.get("ManufacturerCertId").is_none(), "{state:?}");

    // The device itself rotates to its manufacturer certificate (3b)...
    run_device(device(&server, &fx.data_dir), Goal::CreateCert, None)
        .await
        .expect("3b over the vendor certificate");
    let state = row(&fx.data_dir);
    assert_eq!(state["CrState"], "CR_MAN_CERT_CREATED");
    let issued = state["ManufacturerCertId"].clone();
    assert_eq!(state["VendorCertId"], vendor_id.as_str());

    // ...and a CSR over that manufacturer certificate (the rotation-complete
    // policy lets it publish to create-man-cert) is refused too.
    let folder = fx.data_dir.join("devices").join(SAMPLE_SERIAL);
    let manufacturer = Identity {
        chain_pem: std::fs::read_to_string(folder.join("manufacturer.cert.pem")).expect("cert"),
        key_pem: std::fs::read_to_string(folder.join("manufacturer.key.pem")).expect("key"),
    };
    let answer = csr_over(&server, &manufacturer).await;
    assert_eq!(
        answer["error"]["code"], "principal_not_vendor_cert",
        "{answer:#}"
    );
    let state = row(&fx.data_dir);
    assert_eq!(state["CrState"], "CR_MAN_CERT_CREATED");
    assert_eq!(state["ManufacturerCertId"], issued, "nothing new issued");
    let certs = certificates_of_sample(&fx.data_dir);
    assert_eq!(
        certs.len(),
        3,
        "the vendor cert, the operator's second one and the one manufacturer cert: {:?}",
        certs.iter().map(|c| (&c.id, c.status)).collect::<Vec<_>>()
    );
    assert!(certs.iter().all(|c| c.status == CertificateStatus::Active));
}
