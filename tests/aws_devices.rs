//! `jitpilot device` and `jitpilot fleet` with `--backend aws`, for real,
//! against both targets of the suite:
//!
//! - moto's server (the AWS APIs) and mosquitto (the MQTT data plane moto
//!   lacks, `--iot-endpoint localhost:<port>`), with the test playing IoT's
//!   rules engine: a real MQTT client on the broker that calls the real
//!   Lambda handler in-process, over SDK clients against moto, and
//!   publishes its answers back on the broker. What mosquitto cannot play
//!   is JITP itself (AWS IoT refusing the first connect, registering the
//!   certificate and creating the thing): the test does what IoT does there
//!   through the API, and hands the registered event to the Lambda, as
//!   `rule_jitp` would;
//! - jitpilot's local cloud (`jitpilot serve`): devices dial what
//!   `DescribeEndpoint` answers, trusting the endpoint CA that `jitpilot
//!   env` exports; JITP, the rules and the rotation function are real.

mod support;
use support::Bounded;

use jitpilot::cloud::aws::lambda::RotationLambda;
use jitpilot::cloud::aws::Clients;
use jitpilot::pki;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::aws::mosquitto::{rotation_acl, username_of, Mosquitto};
use support::aws::rules_engine::RulesEngine;
use support::aws::walkthrough::{
    assert_vendor_cert_deleted, ca_pem, jitp_as_iot_would, registered_event, row, thing_cert_ids,
    Answers,
};
use support::aws::{clients, fake_bootstrap, jitpilot_command, json_of, Target};

const SERIAL: &str = "IUQWXALODJESC1";

/// Runs the binary on a blocking thread (the rules engine keeps running on
/// the runtime meanwhile) and returns its `--json` document.
async fn run(target: &Target, data: &Path, args: Vec<String>) -> Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = jitpilot_command(target, data, None, &args);
    let out = tokio::task::spawn_blocking(move || cmd.bounded_output().expect("jitpilot runs"))
        .await
        .expect("join");
    json_of(&out)
}

/// `--json` and `tail`; on moto also `--iot-endpoint` naming the broker
/// (on jitpilot the device dials what DescribeEndpoint answered).
fn device_args(broker: Option<&Mosquitto>, tail: &[&str]) -> Vec<String> {
    let mut args = vec!["--json".to_string()];
    if let Some(broker) = broker {
        args.extend(["--iot-endpoint".to_string(), broker.iot_endpoint()]);
    }
    args.extend(tail.iter().map(|s| s.to_string()));
    args
}

/// On moto, the data plane the test plays: mosquitto and the rules engine.
struct Played {
    broker: Mosquitto,
    engine: RulesEngine,
    vendor_usernames: Vec<String>,
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
async fn device_and_fleet_onboard_on_moto_through_a_broker_and_the_lambda() {
    device_and_fleet_onboard(Target::moto_with_aws_certificate_ids()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_and_fleet_onboard_on_jitpilot_with_real_jitp() {
    device_and_fleet_onboard(Target::jitpilot()).await;
}

async fn device_and_fleet_onboard(target: Target) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let package = fake_bootstrap(tmp.path());
    let sdk = clients(&target, &data).await;

    let deployed = json_of(
        &jitpilot_command(&target, &data, Some(&package), &["--json", "deploy"])
            .bounded_output()
            .expect("deploy"),
    );
    assert_eq!(deployed["status"], "CREATE_COMPLETE");
    let init = json_of(
        &jitpilot_command(&target, &data, None, &["--json", "init", "--devices", "2"])
            .bounded_output()
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
    let man_ca_pem = ca_pem(&sdk, &man_ca_id).await;
    let played = match &target {
        Target::Moto(_) => Some(
            play_the_data_plane(&sdk, &data, tmp.path(), &serials, &vendor_ca_id, &man_ca_id).await,
        ),
        Target::Jitpilot(_) => None,
    };
    let broker = played.as_ref().map(|p| &p.broker);
    let endpoint = match (&target, broker) {
        (Target::Jitpilot(local), _) => local.iot_endpoint(),
        (_, Some(broker)) => broker.iot_endpoint(),
        (Target::Moto(_), None) => unreachable!("moto is played"),
    };

    // 3a for the first device: played on moto, for real on jitpilot.
    let vendor_id = match &played {
        Some(_) => provision(&sdk, &data, SERIAL, &vendor_ca_id).await,
        None => {
            let jitp = run(
                &target,
                &data,
                device_args(None, &["device", SERIAL, "jitp"]),
            )
            .await;
            assert_eq!(jitp["crState"], "CR_THING_CREATED", "{jitp}");
            assert_eq!(jitp["endpoint"], endpoint);
            row(&sdk, SERIAL).await["VendorCertId"].clone()
        }
    };
    assert_eq!(row(&sdk, SERIAL).await["CrState"], "CR_THING_CREATED");
    assert_eq!(thing_cert_ids(&sdk, SERIAL).await, vec![vendor_id.clone()]);

    // 3b: `jitpilot --backend aws device SERIAL create-cert`.
    let created = run(
        &target,
        &data,
        device_args(broker, &["device", SERIAL, "create-cert"]),
    )
    .await;
    assert_eq!(created["crState"], "CR_MAN_CERT_CREATED", "{created}");
    assert_eq!(created["endpoint"], endpoint);
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
    if let Some(played) = &played {
        what_the_broker_saw_of_3b(played, &man_pem);
    }

    // 3c: `jitpilot --backend aws device SERIAL ack-cert`.
    let acked = run(
        &target,
        &data,
        device_args(broker, &["device", SERIAL, "ack-cert"]),
    )
    .await;
    assert_eq!(acked["crState"], "CR_CERT_ROTATION_COMPLETED", "{acked}");
    if let Some(played) = &played {
        what_the_broker_saw_of_3c(played, &man_id);
    }
    assert_vendor_cert_deleted(&sdk, SERIAL, &vendor_id, &man_id).await;

    // fleet: the first device is done, the second onboards end to end,
    // starts paced, the summary read back from DynamoDB.
    let second = serials[1].clone();
    if played.is_some() {
        provision(&sdk, &data, &second, &vendor_ca_id).await;
    }
    let fleet = run(
        &target,
        &data,
        device_args(broker, &["fleet", "--devices", "2", "--rate", "5"]),
    )
    .await;
    assert_eq!(fleet["devices"], 2, "{fleet}");
    assert_eq!(fleet["skipped"], 1, "{fleet}");
    assert_eq!(fleet["onboarded"], 1, "{fleet}");
    assert_eq!(fleet["failed"], 0, "{fleet}");
    assert_eq!(fleet["endpoint"], endpoint);
    assert_eq!(fleet["states"]["CR_CERT_ROTATION_COMPLETED"], 2, "{fleet}");
    assert_eq!(
        row(&sdk, &second).await["CrState"],
        "CR_CERT_ROTATION_COMPLETED"
    );
    assert!(device_dir(&data, &second)
        .join("manufacturer.cert.pem")
        .exists());
    if let Some(played) = &played {
        assert!(
            played
                .engine
                .answers()
                .iter()
                .all(|a| a["outcome"] != "refused" && a.get("error").is_none()),
            "{:?}",
            played.engine.answers()
        );
    }
}

/// moto's data plane, played: mosquitto trusting the fleet's two CAs, the
/// device folders trusting the broker's test CA instead of Amazon's roots,
/// and the rules engine calling the Lambda handler.
async fn play_the_data_plane(
    sdk: &Clients,
    data: &Path,
    dir: &Path,
    serials: &[String],
    vendor_ca_id: &str,
    man_ca_id: &str,
) -> Played {
    let vendor_ca_pem = ca_pem(sdk, vendor_ca_id).await;
    let man_ca_pem = ca_pem(sdk, man_ca_id).await;

    // The broker trusts exactly the fleet's two CAs for clients; devices
    // trust the broker's test CA instead of Amazon's roots.
    let vendor_usernames: Vec<String> = serials
        .iter()
        .map(|serial| username_of(&device_dir(data, serial).join("vendor.cert.pem")))
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
        &dir.join("broker"),
        &format!("{}\n{}", vendor_ca_pem.trim_end(), man_ca_pem),
        &acl,
    );
    for serial in serials {
        let root = device_dir(data, serial).join("root-ca.pem");
        assert!(
            std::fs::read_to_string(&root)
                .expect("init wrote root-ca.pem")
                .contains("BEGIN CERTIFICATE"),
            "init gives each device Amazon's roots"
        );
        std::fs::write(&root, &broker.root_ca_pem).expect("root CA");
    }
    let engine = RulesEngine::start(sdk, broker.rules_port).await;
    Played {
        broker,
        engine,
        vendor_usernames,
    }
}

/// True when the broker logged the device connecting as `SERIAL` with the
/// certificate whose subject is `username`.
fn connected_as(played: &Played, username: &str) -> bool {
    played.broker.log().lines().any(|l| {
        l.contains("New client connected")
            && l.contains(&format!(" as {SERIAL} ("))
            && l.contains(&format!("u'{username}'"))
    })
}

/// What the broker saw of 3b: the device connected with clientId = serial
/// and its vendor certificate (mosquitto's username is the subject), and
/// published a CSR for itself on its own request topic.
fn what_the_broker_saw_of_3b(played: &Played, man_pem: &str) {
    let log = played.broker.log();
    assert!(connected_as(played, &played.vendor_usernames[0]), "{log}");
    assert!(!connected_as(played, &format!("CN={SERIAL}")), "{log}");
    let seen = played.engine.seen();
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
        pki::parse_cert(man_pem).expect("cert").public_key_der
    );
}

/// What the broker saw of 3c: a connection over the manufacturer
/// certificate (subject CN = serial), the ack naming its id.
fn what_the_broker_saw_of_3c(played: &Played, man_id: &str) {
    assert!(
        connected_as(played, &format!("CN={SERIAL}")),
        "{}",
        played.broker.log()
    );
    let ack_topic = format!("/cert-rotation/ack-man-cert/{SERIAL}/rqst");
    let ack = played
        .engine
        .seen()
        .into_iter()
        .find(|r| r.topic == ack_topic)
        .expect("the ack reached the rules engine");
    assert_eq!(ack.payload["cert_id"], man_id);
}
