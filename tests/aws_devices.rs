//! `jitpilot device` and `jitpilot fleet` with `--backend aws`, for real:
//! the jitpilot binary against moto's server (the AWS APIs) and mosquitto
//! (the MQTT data plane moto lacks, `--iot-endpoint localhost:<port>`),
//! with the test playing IoT's rules engine: a real MQTT client on the
//! broker that calls the real Lambda handler in-process, over SDK clients
//! against moto, and publishes its answers back on the broker.
//!
//! What mosquitto cannot play is JITP itself (AWS IoT refusing the first
//! connect, registering the certificate and creating the thing): the test
//! does what IoT does there through the API, and hands the registered event
//! to the Lambda, as `rule_jitp` would.

mod aws_support;

use aws_support::mosquitto::{rotation_acl, username_of, Mosquitto};
use aws_support::rules_engine::RulesEngine;
use aws_support::walkthrough::{jitp_as_iot_would, registered_event, row, thing_cert_ids, Answers};
use aws_support::{clients, fake_bootstrap, jitpilot_command, json_of, Moto};
use jitpilot::cloud::aws::lambda::RotationLambda;
use jitpilot::cloud::aws::Clients;
use jitpilot::pki;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SERIAL: &str = "IUQWXALODJESC1";

/// Runs the binary on a blocking thread (the rules engine keeps running on
/// the runtime meanwhile) and returns its `--json` document.
async fn run(moto: &Moto, data: &Path, args: Vec<String>) -> Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = jitpilot_command(moto, data, None, &args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("jitpilot runs"))
        .await
        .expect("join");
    json_of(&out)
}

fn device_args(broker: &Mosquitto, tail: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--iot-endpoint".to_string(),
        broker.iot_endpoint(),
        "--json".to_string(),
    ];
    args.extend(tail.iter().map(|s| s.to_string()));
    args
}

async fn ca_pem(sdk: &Clients, id: &str) -> String {
    sdk.iot
        .describe_ca_certificate()
        .certificate_id(id)
        .send()
        .await
        .expect("CA")
        .certificate_description()
        .and_then(|d| d.certificate_pem())
        .expect("pem")
        .to_string()
}

/// JITP as AWS IoT does it, then rule_jitp's invocation of the function.
async fn provision(sdk: &Clients, data: &Path, serial: &str, vendor_ca_id: &str) -> String {
    let (vendor_id, _) = jitp_as_iot_would(sdk, data, serial, vendor_ca_id).await;
    let lambda = RotationLambda::over_aws_answering_with(
        sdk,
        "CertRotationDevices",
        Default::default(),
        Arc::new(Answers::default()),
    );
    let answer = lambda
        .handle(registered_event(data, serial, &vendor_id, vendor_ca_id))
        .await
        .expect("registered");
    assert_eq!(answer["outcome"], "thing_created", "{answer}");
    vendor_id
}

fn device_dir(data: &Path, serial: &str) -> PathBuf {
    data.join("devices").join(serial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_and_fleet_onboard_on_aws_through_a_broker_and_the_lambda() {
    let moto = Moto::start_with_aws_certificate_ids();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let package = fake_bootstrap(tmp.path());
    let sdk = clients(&moto, &data).await;

    let deployed = json_of(
        &jitpilot_command(&moto, &data, Some(&package), &["--json", "deploy"])
            .output()
            .expect("deploy"),
    );
    assert_eq!(deployed["status"], "CREATE_COMPLETE");
    let init = json_of(
        &jitpilot_command(&moto, &data, None, &["--json", "init", "--devices", "1"])
            .output()
            .expect("init"),
    );
    let serials: Vec<String> = init["whitelisted"]
        .as_array()
        .expect("serials")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    assert_eq!(serials.len(), 2);
    assert_eq!(serials[0], SERIAL);
    let vendor_ca_id = init["cas"][0]["id"].as_str().expect("vendor").to_string();
    let man_ca_id = init["caKeyParameter"]
        .as_str()
        .expect("parameter")
        .trim_start_matches("cr-ca-key-")
        .to_string();
    let vendor_ca_pem = ca_pem(&sdk, &vendor_ca_id).await;
    let man_ca_pem = ca_pem(&sdk, &man_ca_id).await;

    // The broker trusts exactly the fleet's two CAs for clients; devices
    // trust the broker's test CA instead of Amazon's roots.
    let vendor_usernames: Vec<String> = serials
        .iter()
        .map(|serial| username_of(&device_dir(&data, serial).join("vendor.cert.pem")))
        .collect();
    assert!(
        vendor_usernames[0].starts_with(&format!("CN={SERIAL},")),
        "{vendor_usernames:?}"
    );
    let acl: String = serials
        .iter()
        .zip(&vendor_usernames)
        .map(|(serial, vendor)| rotation_acl(serial, vendor))
        .collect();
    let broker = Mosquitto::start(
        &tmp.path().join("broker"),
        &format!("{}\n{}", vendor_ca_pem.trim_end(), man_ca_pem),
        &acl,
    );
    for serial in &serials {
        let root = device_dir(&data, serial).join("root-ca.pem");
        assert!(
            std::fs::read_to_string(&root)
                .expect("init wrote root-ca.pem")
                .contains("BEGIN CERTIFICATE"),
            "init gives each device Amazon's roots"
        );
        std::fs::write(&root, &broker.root_ca_pem).expect("root CA");
    }
    let engine = RulesEngine::start(&sdk, broker.rules_port).await;

    // 3a for the first device, as IoT would do it.
    let vendor_id = provision(&sdk, &data, SERIAL, &vendor_ca_id).await;
    assert_eq!(row(&sdk, SERIAL).await["CrState"], "CR_THING_CREATED");

    // 3b: `jitpilot --backend aws device SERIAL create-cert`.
    let created = run(
        &moto,
        &data,
        device_args(&broker, &["device", SERIAL, "create-cert"]),
    )
    .await;
    assert_eq!(created["crState"], "CR_MAN_CERT_CREATED", "{created}");
    assert_eq!(created["endpoint"], broker.iot_endpoint());
    assert_eq!(created["inProcess"], false);
    let man_id = created["outcome"]["manufacturer_cert_id"]
        .as_str()
        .expect("manufacturer cert id")
        .to_string();
    let man_pem = std::fs::read_to_string(device_dir(&data, SERIAL).join("manufacturer.cert.pem"))
        .expect("the device stored its manufacturer cert");
    assert_eq!(pki::certificate_id_from_pem(&man_pem).expect("id"), man_id);
    assert!(pki::verify_signed_by(&man_pem, &man_ca_pem).expect("verify"));
    let described = sdk
        .iot
        .describe_certificate()
        .certificate_id(&man_id)
        .send()
        .await
        .expect("registered in IoT");
    assert_eq!(
        described
            .certificate_description()
            .and_then(|d| d.status())
            .map(|s| s.as_str()),
        Some("ACTIVE")
    );
    let r = row(&sdk, SERIAL).await;
    assert_eq!(r["ManufacturerCertId"], man_id);
    assert_eq!(r["VendorCertId"], vendor_id);

    // What the broker saw: the device connected with clientId = serial and
    // its vendor certificate (mosquitto's username is the subject), and
    // published a CSR for itself on its own request topic.
    let connected_as = |username: &str| {
        broker.log().lines().any(|l| {
            l.contains("New client connected")
                && l.contains(&format!(" as {SERIAL} ("))
                && l.contains(&format!("u'{username}'"))
        })
    };
    assert!(connected_as(&vendor_usernames[0]), "{}", broker.log());
    assert!(!connected_as(&format!("CN={SERIAL}")), "{}", broker.log());
    let seen = engine.seen();
    let create_topic = format!("/cert-rotation/create-man-cert/{SERIAL}/rqst");
    let csr = seen
        .iter()
        .find(|r| r.topic == create_topic)
        .and_then(|r| r.payload["csr"].as_str())
        .expect("the CSR reached the rules engine");
    let csr = pki::parse_csr(csr).expect("a CSR");
    assert_eq!(csr.subject.common_name.as_deref(), Some(SERIAL));
    assert_eq!(
        csr.public_key_der,
        pki::parse_cert(&man_pem).expect("cert").public_key_der
    );

    // 3c: `jitpilot --backend aws device SERIAL ack-cert`.
    let acked = run(
        &moto,
        &data,
        device_args(&broker, &["device", SERIAL, "ack-cert"]),
    )
    .await;
    assert_eq!(acked["crState"], "CR_CERT_ROTATION_COMPLETED", "{acked}");
    // 3c over the manufacturer certificate (subject CN = serial).
    assert!(connected_as(&format!("CN={SERIAL}")), "{}", broker.log());
    let ack_topic = format!("/cert-rotation/ack-man-cert/{SERIAL}/rqst");
    let ack = engine
        .seen()
        .into_iter()
        .find(|r| r.topic == ack_topic)
        .expect("the ack reached the rules engine");
    assert_eq!(ack.payload["cert_id"], man_id.as_str());
    assert!(
        sdk.iot
            .describe_certificate()
            .certificate_id(&vendor_id)
            .send()
            .await
            .is_err(),
        "the vendor certificate is deleted"
    );
    assert_eq!(thing_cert_ids(&sdk, SERIAL).await, vec![man_id.clone()]);
    assert!(
        engine
            .answers()
            .iter()
            .all(|a| a["outcome"] != "refused" && a.get("error").is_none()),
        "{:?}",
        engine.answers()
    );

    // fleet: the first device is done, the second onboards end to end,
    // starts paced, the summary read back from DynamoDB.
    let second = serials[1].clone();
    provision(&sdk, &data, &second, &vendor_ca_id).await;
    let fleet = run(
        &moto,
        &data,
        device_args(&broker, &["fleet", "--devices", "2", "--rate", "5"]),
    )
    .await;
    assert_eq!(fleet["devices"], 2, "{fleet}");
    assert_eq!(fleet["skipped"], 1, "{fleet}");
    assert_eq!(fleet["onboarded"], 1, "{fleet}");
    assert_eq!(fleet["failed"], 0, "{fleet}");
    assert_eq!(fleet["endpoint"], broker.iot_endpoint());
    assert_eq!(fleet["states"]["CR_CERT_ROTATION_COMPLETED"], 2, "{fleet}");
    assert_eq!(
        row(&sdk, &second).await["CrState"],
        "CR_CERT_ROTATION_COMPLETED"
    );
    assert!(device_dir(&data, &second)
        .join("manufacturer.cert.pem")
        .exists());
}
