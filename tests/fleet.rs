//! `jitpilot fleet` and `jitpilot device` through the real binary, with real
//! TLS: whole fleets onboarded end to end, with simulated loss, killed and
//! rerun; and the cases where the cloud must refuse.

mod support;

use jitpilot::model::CertificateStatus;
use jitpilot::pki;
use jitpilot::store::Store;
use serde_json::Value;
use simulated_devices::{run_device, DeviceConfig, Goal, RetryPolicy};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use support::endpoint::{cr_state_reaches, serve, Server as Serve};
use support::process::{wait_within, Lines, COMMAND_DEADLINE};

#[path = "fleet/raw_client.rs"]
mod raw_client;
use raw_client::*;

const TABLE: &str = "CertRotationDevices";

/// Held by each 200-device fleet test: one such fleet at a time (the
/// others of this file still run beside it). Three at once on a busy
/// 2-core machine measure the machine, not the devices' retry budget.
static BIG_FLEET: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_big_fleet_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    // A poisoned lock only means another fleet test failed.
    BIG_FLEET.lock().unwrap_or_else(|e| e.into_inner())
}

fn jitpilot(dir: &Path, args: &[&str]) -> Output {
    support::jitpilot_on(dir, args)
}

fn ok_json(dir: &Path, args: &[&str]) -> Value {
    support::jitpilot_json(dir, args)
}

/// A deployed data dir.
fn deployed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok_json(dir.path(), &["deploy"]);
    dir
}

fn device_dir(dir: &Path, serial: &str) -> PathBuf {
    dir.join("devices").join(serial)
}

fn public_key_of(cert_pem: &str) -> Vec<u8> {
    pki::parse_cert(cert_pem).unwrap().public_key_der
}

/// Everything DESIGN §1 promises after a completed rotation, for every
/// serial the fleet summary counted.
fn assert_fleet_rotated(dir: &Path, devices: usize) {
    let store = Store::open_read_only(dir).unwrap();
    let rows = store.scan(TABLE).unwrap();
    let completed: Vec<&serde_json::Map<String, Value>> = rows
        .iter()
        .filter(|r| r["CrState"] == "CR_CERT_ROTATION_COMPLETED")
        .collect();
    assert_eq!(completed.len(), devices, "every device completed");

    let cas = store.list_cas().unwrap();
    let manufacturer_ca = cas
        .iter()
        .find(|c| c.label == "Manufacturer CA")
        .expect("a Manufacturer CA");
    let vendor_ca = cas
        .iter()
        .find(|c| c.label == "Vendor CA")
        .expect("a Vendor CA");

    let certs = store.list_certificates().unwrap();
    let mut per_serial: HashMap<String, Vec<_>> = HashMap::new();
    for cert in &certs {
        assert_ne!(
            cert.ca_id.as_deref(),
            Some(vendor_ca.id.as_str()),
            "no vendor certificate is left in the registry"
        );
        let cn = pki::parse_cert(&cert.pem)
            .unwrap()
            .subject
            .common_name
            .unwrap_or_default();
        per_serial.entry(cn).or_default().push(cert);
    }
    for row in completed {
        let serial = row["SerialNumber"].as_str().unwrap();
        let certs = per_serial.get(serial).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(certs.len(), 1, "{serial} has exactly one certificate");
        let cert = certs[0];
        assert_eq!(cert.status, CertificateStatus::Active);
        assert_eq!(row["ManufacturerCertId"].as_str(), Some(cert.id.as_str()));
        assert!(
            row.get("VendorCertId").is_none(),
            "{serial}: VendorCertId dropped"
        );
        assert!(pki::verify_signed_by(&cert.pem, &manufacturer_ca.pem).unwrap());
        let folder = device_dir(dir, serial);
        let vendor = std::fs::read_to_string(folder.join("vendor.cert.pem")).unwrap();
        assert_ne!(
            public_key_of(&cert.pem),
            public_key_of(&vendor),
            "{serial}: a new key"
        );
        let on_disk = std::fs::read_to_string(folder.join("manufacturer.cert.pem")).unwrap();
        assert_eq!(pki::certificate_id_from_pem(&on_disk).unwrap(), cert.id);
    }
}

/// A device config for `serial` against a running `serve`, giving up fast.
fn quick_device(dir: &Path, serve: &Serve, serial: &str) -> DeviceConfig {
    let mut config = DeviceConfig::new(serial, device_dir(dir, serial), serve.addr.clone());
    config.server_name = Some("localhost".into());
    config.retry = RetryPolicy {
        max_connect_attempts: 3,
        max_request_attempts: 2,
        ..RetryPolicy::default()
    };
    config.response_timeout = Duration::from_secs(2);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The guard is held on purpose for the whole test: each test has its own
// runtime, so the lock only makes the other big fleets' threads wait.
#[allow(clippy::await_holding_lock)]
async fn fleet_of_200_rotates_every_device_and_retires_vendor_certs() {
    let _one = one_big_fleet_at_a_time();
    let dir = deployed();
    let summary = ok_json(dir.path(), &["fleet", "--devices", "200"]);
    assert_eq!(summary["failed"], 0, "{summary:#}");
    assert_eq!(summary["onboarded"], 200);
    assert_eq!(summary["states"]["CR_CERT_ROTATION_COMPLETED"], 200);
    assert!(summary["latencyMs"]["3b"]["p99"].as_f64().unwrap() > 0.0);
    assert_fleet_rotated(dir.path(), 200);

    // A rerun finds everything done and changes nothing.
    let again = ok_json(dir.path(), &["fleet", "--devices", "200"]);
    assert_eq!(again["skipped"], 200);
    assert_eq!(again["onboarded"], 0);
    assert_fleet_rotated(dir.path(), 200);

    // The old vendor cert does not get its place back. Its connect makes
    // JITP register it again (as AWS's JITP does for a deleted cert), and
    // the rotation function retires it (`vendor_cert_retired`: inactive,
    // detached, deleted). The device retries at once after JITP's refusal,
    // so that retry may slip in before the function ran (on AWS too); if it
    // is refused, it is refused at connect.
    let server = serve(dir.path());
    let serial = "IUQWXALODJESC1";
    let vendor = run_device(quick_device(dir.path(), &server, serial), Goal::Jitp, None).await;
    if let Err(err) = &vendor {
        assert!(
            matches!(
                err.failure(),
                Some(simulated_devices::DeviceFailure::ConnectRefused { .. })
            ),
            "{err}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let store = Store::open_read_only(dir.path()).unwrap();
        let vendor_ca = store
            .list_cas()
            .unwrap()
            .into_iter()
            .find(|c| c.label == "Vendor CA")
            .expect("a Vendor CA");
        let left = store
            .list_certificates()
            .unwrap()
            .into_iter()
            .filter(|c| c.ca_id.as_deref() == Some(vendor_ca.id.as_str()))
            .count();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the re-registered vendor cert was not retired ({left} left; device: {vendor:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // `device ... ack-cert` against the running serve: already done, repeatable.
    let doc = ok_json(dir.path(), &["device", serial, "onboard"]);
    assert_eq!(doc["inProcess"], false);
    assert_eq!(doc["crState"], "CR_CERT_ROTATION_COMPLETED");
}

/// The seed of the loss test: the first seed with which no device of the
/// fleet draws more than half its `max_request_attempts` drops in a row
/// within its first 16 responses (a device needs 2 answers, and a few more
/// arrive as repeats), so simulated loss alone never costs a request more
/// than 3 of its 6 attempts; the rest — with the device's growing waits,
/// 36 s — is left for a busy machine's late answers. A failure of this
/// test is a bug, not bad luck. Deterministic: the same serials always
/// give the same seed.
fn loss_seed(serials: &[String], loss: f64) -> u64 {
    let max_run = RetryPolicy::default().max_request_attempts as usize / 2;
    let survives = |seed: u64| {
        serials.iter().all(|serial| {
            let mut draws = simulated_devices::backoff::loss_draws(
                simulated_devices::backoff::device_seed(seed, serial),
            );
            let mut run = 0;
            (0..16).all(|_| {
                run = if draws.next_f64() < loss { run + 1 } else { 0 };
                run <= max_run
            })
        })
    };
    (1..100_000)
        .find(|&seed| survives(seed))
        .expect("a seed below 100000 survives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_with_20_percent_loss_completes_by_retrying() {
    let _one = one_big_fleet_at_a_time();
    let serials = jitpilot::fleet::Fleet::builtin().unwrap().serials(199);
    let seed = loss_seed(&serials, 0.2);
    let dir = deployed();
    let seed_arg = seed.to_string();
    let summary = ok_json(
        dir.path(),
        &[
            "fleet",
            "--devices",
            "200",
            "--loss",
            "0.2",
            "--seed",
            &seed_arg,
        ],
    );
    println!("fleet with loss 0.2, seed {}", summary["seed"]);
    assert_eq!(summary["seed"], seed, "the summary reports the seed used");
    assert_eq!(summary["failed"], 0, "{summary:#}");
    assert_eq!(summary["states"]["CR_CERT_ROTATION_COMPLETED"], 200);
    assert!(
        summary["retries"].as_u64().unwrap() > 0,
        "loss caused retries"
    );
    assert_fleet_rotated(dir.path(), 200);
}

/// `--rate` paces device starts on the local cloud too: 4 devices at 2/s
/// start over at least 1.5 s — a lower bound, which a busy machine only
/// lengthens; unpaced, 4 devices onboard in a fraction of that.
#[test]
fn fleet_rate_paces_starts_locally() {
    let dir = deployed();
    let summary = ok_json(dir.path(), &["fleet", "--devices", "4", "--rate", "2"]);
    assert_eq!(summary["failed"], 0, "{summary:#}");
    assert_eq!(summary["onboarded"], 4);
    assert_eq!(summary["rate"], 2.0, "{summary:#}");
    let elapsed = summary["elapsedMs"].as_f64().expect("elapsedMs");
    assert!(
        elapsed >= 1490.0,
        "4 devices at 2/s were all started within {elapsed} ms"
    );
    // A seed is reported even when none was given.
    assert!(summary["seed"].is_u64(), "{summary:#}");
}

#[test]
fn sigkilled_fleet_rerun_completes_with_nothing_lost_or_duplicated() {
    let _one = one_big_fleet_at_a_time();
    let dir = deployed();
    let mut child = support::jitpilot()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["fleet", "--devices", "200", "--concurrency", "16"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Lines::of(child.stderr.take().unwrap());
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let mut killed_at = None;
    while let Some(line) = stderr
        .next_before(deadline)
        .unwrap_or_else(|why| panic!("the fleet's progress: {why}"))
    {
        // "progress: 24/200 onboarded, 0 failed"
        if let Some(rest) = line.strip_prefix("progress: ") {
            let done: usize = rest.split('/').next().unwrap().parse().unwrap();
            if done >= 20 {
                child.kill().unwrap(); // SIGKILL on Unix
                killed_at = Some(done);
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = wait_within(&mut child, COMMAND_DEADLINE);
    let killed_at = killed_at.expect("progress was reported before the end");
    assert!(killed_at < 200, "killed mid-run");

    let summary = ok_json(
        dir.path(),
        &["fleet", "--devices", "200", "--concurrency", "16"],
    );
    assert_eq!(summary["failed"], 0, "{summary:#}");
    assert!(summary["skipped"].as_u64().unwrap() >= 20);
    assert_eq!(summary["states"]["CR_CERT_ROTATION_COMPLETED"], 200);
    assert_fleet_rotated(dir.path(), 200);
}

#[test]
fn non_whitelisted_serial_ends_with_an_inactive_cert_and_nothing_issued() {
    let dir = deployed();
    let init = ok_json(dir.path(), &["init", "--devices", "2"]);
    let serial = init["whitelisted"][1].as_str().unwrap().to_string();
    // Un-whitelist it, as if it were never on the list.
    Store::open(dir.path())
        .unwrap()
        .delete_item(TABLE, &serial)
        .unwrap();

    let out = jitpilot(dir.path(), &["device", &serial, "onboard", "--json"]);
    assert!(!out.status.success(), "the device must not complete");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["error"].is_string());

    let store = Store::open_read_only(dir.path()).unwrap();
    let certs: Vec<_> = store
        .list_certificates()
        .unwrap()
        .into_iter()
        .filter(|c| {
            pki::parse_cert(&c.pem)
                .unwrap()
                .subject
                .common_name
                .as_deref()
                == Some(&serial)
        })
        .collect();
    assert_eq!(certs.len(), 1, "only the JITP-registered vendor cert");
    assert_eq!(certs[0].status, CertificateStatus::Inactive);
    assert!(!device_dir(dir.path(), &serial)
        .join("manufacturer.cert.pem")
        .exists());
    let logged = store.list_events_for(&serial, 100).unwrap();
    assert!(
        logged
            .iter()
            .any(|e| e.kind == "rotation.refused" && e.detail["code"] == "not_whitelisted"),
        "a logged reason: {logged:#?}"
    );
}

#[test]
fn device_command_runs_the_three_steps_one_by_one() {
    let dir = deployed();
    ok_json(dir.path(), &["init"]);
    let serial = "IUQWXALODJESC1";
    let jitp = ok_json(dir.path(), &["device", serial, "jitp"]);
    assert_eq!(jitp["inProcess"], true);
    assert_eq!(jitp["crState"], "CR_THING_CREATED");
    let create = ok_json(dir.path(), &["device", serial, "create-cert"]);
    assert_eq!(create["crState"], "CR_MAN_CERT_CREATED");
    let id = create["outcome"]["manufacturer_cert_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A second create-cert finds the cert on disk and sends nothing.
    let again = ok_json(dir.path(), &["device", serial, "create-cert"]);
    assert_eq!(again["outcome"]["manufacturer_cert_id"], id.as_str());
    let ack = ok_json(dir.path(), &["device", serial, "ack-cert"]);
    assert_eq!(ack["crState"], "CR_CERT_ROTATION_COMPLETED");
    assert_fleet_rotated(dir.path(), 1);
}

#[test]
fn a_serial_rotated_by_another_folder_is_explained_not_retried() {
    let dir = deployed();
    ok_json(dir.path(), &["init"]);
    let serial = "IUQWXALODJESC1";
    let folder = device_dir(dir.path(), serial);
    let factory = dir.path().join("factory-copy");
    std::fs::create_dir_all(&factory).unwrap();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), factory.join(entry.file_name())).unwrap();
    }
    ok_json(dir.path(), &["device", serial, "onboard"]);
    // The factory's folder again, as another machine would hold it.
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::rename(&factory, &folder).unwrap();

    let out = jitpilot(dir.path(), &["device", serial, "onboard"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("completed its rotation") && stderr.contains("no manufacturer certificate"),
        "{stderr}"
    );
    assert!(!stderr.contains("connect refused"), "{stderr}");

    let out = jitpilot(dir.path(), &["fleet", "--devices", "1", "--json"]);
    assert!(!out.status.success());
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["failed"], 1, "{summary}");
    assert_eq!(summary["skipped"], 0, "{summary}");
    let reason = summary["failures"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("completed its rotation"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_reasons_and_repeats_answered_identically() {
    use simulated_devices::machine::Identity;
    let dir = deployed();
    let init = ok_json(dir.path(), &["init", "--devices", "2"]);
    let serial = init["whitelisted"][0].as_str().unwrap().to_string();
    let other = init["whitelisted"][1].as_str().unwrap().to_string();
    let server = serve(dir.path());
    let folder = device_dir(dir.path(), &serial);
    run_device(quick_device(dir.path(), &server, &serial), Goal::Jitp, None)
        .await
        .expect("3a");
    cr_state_reaches(dir.path(), &serial, "CR_THING_CREATED").await;

    let mut vendor = RawClient::connect(&server, &folder, Identity::Vendor, &serial).await;
    let rqst = format!("/cert-rotation/create-man-cert/{serial}/rqst");
    vendor
        .subscribe(&format!("/cert-rotation/create-man-cert/{serial}/rspn"))
        .await;

    // A CSR naming another serial.
    let new_key = rcgen::KeyPair::generate().unwrap();
    vendor
        .publish(&rqst, serde_json::json!({"csr": csr(&other, &new_key)}))
        .await;
    refusal_logged(dir.path(), &serial, "csr_wrong_serial").await;
    answered_with(&mut vendor, "csr_wrong_serial").await;

    // A CSR reusing the vendor key (what the original sample does).
    let vendor_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(folder.join("vendor.key.pem")).unwrap())
            .unwrap();
    vendor
        .publish(&rqst, serde_json::json!({"csr": csr(&serial, &vendor_key)}))
        .await;
    refusal_logged(dir.path(), &serial, "csr_reuses_vendor_key").await;
    answered_with(&mut vendor, "csr_reuses_vendor_key").await;

    // A good CSR, sent twice: the same answer twice.
    let good = csr(&serial, &new_key);
    vendor
        .publish(&rqst, serde_json::json!({"csr": good}))
        .await;
    let (_, first) = vendor.response().await;
    vendor
        .publish(&rqst, serde_json::json!({"csr": good}))
        .await;
    let (_, second) = vendor.response().await;
    assert_eq!(first, second, "a repeated CSR gets the identical response");
    let issued: Value = serde_json::from_slice(&first).unwrap();
    let pem = issued["pem"].as_str().unwrap();
    let cert_id = issued["cert_id"].as_str().unwrap().to_string();
    assert_eq!(
        public_key_of(pem),
        public_key_of(
            &rcgen::CertificateParams::default()
                .self_signed(&new_key)
                .unwrap()
                .pem()
        ),
        "the cert is for the CSR's key"
    );

    // Ack with the new identity: a wrong id is refused, the right one
    // answered, and answered again when repeated.
    let man = tempfile::tempdir().unwrap();
    std::fs::copy(folder.join("root-ca.pem"), man.path().join("root-ca.pem")).unwrap();
    std::fs::write(man.path().join("manufacturer.cert.pem"), pem).unwrap();
    std::fs::write(
        man.path().join("manufacturer.key.pem"),
        new_key.serialize_pem(),
    )
    .unwrap();
    let mut manufacturer =
        RawClient::connect(&server, man.path(), Identity::Manufacturer, &serial).await;
    let ack = format!("/cert-rotation/ack-man-cert/{serial}/rqst");
    manufacturer
        .subscribe(&format!("/cert-rotation/ack-man-cert/{serial}/rspn"))
        .await;
    manufacturer
        .publish(&ack, serde_json::json!({"cert_id": "0".repeat(64)}))
        .await;
    refusal_logged(dir.path(), &serial, "wrong_cert_id").await;
    answered_with(&mut manufacturer, "wrong_cert_id").await;
    manufacturer
        .publish(&ack, serde_json::json!({"cert_id": cert_id}))
        .await;
    let (_, first) = manufacturer.response().await;
    manufacturer
        .publish(&ack, serde_json::json!({"cert_id": cert_id}))
        .await;
    let (_, second) = manufacturer.response().await;
    assert_eq!(first, second, "a repeated ack is answered identically");
    let acked: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(acked["cert_id"], cert_id.as_str());
    let row = Store::open_read_only(dir.path())
        .unwrap()
        .get_item(TABLE, &serial)
        .unwrap()
        .unwrap();
    assert_eq!(row["CrState"], "CR_CERT_ROTATION_COMPLETED");
    drop(vendor);
}

/// A device written for the sample (Python, paho-mqtt) onboards against
/// `jitpilot serve` with only its factory files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_device_from_python_performs_the_three_steps() {
    let dir = deployed();
    ok_json(dir.path(), &["init"]);
    let serial = "IUQWXALODJESC1";
    let server = serve(dir.path());
    let result = support::json_line_of(
        support::python_script("paho_device.py")
            .args(["--addr", &server.addr, "--serial", serial, "--creds"])
            .arg(device_dir(dir.path(), serial)),
        Duration::from_secs(120),
        "paho device",
        "install paho-mqtt and cryptography with pip",
    )
    .await;
    assert_eq!(result["acked"], true);
    assert!(
        result["jitp_attempts"].as_u64().unwrap() >= 2,
        "JITP refused the first connect"
    );
    let row = Store::open_read_only(dir.path())
        .unwrap()
        .get_item(TABLE, serial)
        .unwrap()
        .unwrap();
    assert_eq!(row["CrState"], "CR_CERT_ROTATION_COMPLETED");
    assert_eq!(row["ManufacturerCertId"], result["cert_id"]);
}
