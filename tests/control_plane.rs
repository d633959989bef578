//! The local cloud's control plane, through the real `jitpilot` binary on a
//! fresh data dir: the cloud-side walkthrough (deploy, init, status, cleanup,
//! teardown) and what it does with bad input.

mod support;
use support::Bounded;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const SAMPLE_SERIAL: &str = "IUQWXALODJESC1";

/// Runs `jitpilot --data-dir <dir> <args>`.
fn jitpilot(dir: &Path, args: &[&str]) -> Output {
    support::jitpilot()
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .bounded_output()
        .expect("the jitpilot binary runs")
}

/// Runs a command that must succeed with `--json`; returns its document.
fn json(dir: &Path, args: &[&str]) -> Value {
    support::jitpilot_json(dir, args)
}

/// Runs a command that must fail; returns its stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = jitpilot(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "jitpilot {args:?} should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The logical ids of the template the binary deploys.
fn template_resources() -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("cfn/cert-rotation.json"),
    )
    .unwrap();
    let template: Value = serde_json::from_str(&text).unwrap();
    let mut ids: Vec<String> = template["Resources"]
        .as_object()
        .expect("the template has Resources")
        .keys()
        .cloned()
        .collect();
    ids.sort();
    ids
}

fn ca<'a>(report: &'a Value, label: &str) -> &'a Value {
    report["cas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == label)
        .unwrap_or_else(|| panic!("no {label} in {report}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Splits a device's `vendor.cert.pem` (device cert + Vendor CA) and asks
/// openssl whether the device cert verifies against the Vendor CA.
fn openssl_verify(device_dir: &Path, scratch: &Path) -> (bool, String) {
    let chain = std::fs::read_to_string(device_dir.join("vendor.cert.pem")).unwrap();
    let end = "-----END CERTIFICATE-----";
    let split = chain.find(end).expect("a certificate") + end.len();
    let (device, vendor_ca) = chain.split_at(split);
    let device_path = scratch.join("device.pem");
    let ca_path = scratch.join("vendor-ca.pem");
    std::fs::write(&device_path, device.trim()).unwrap();
    std::fs::write(&ca_path, vendor_ca.trim()).unwrap();
    assert!(
        vendor_ca.contains("BEGIN CERTIFICATE"),
        "the Vendor CA follows the device cert"
    );
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&ca_path)
        .arg(&device_path)
        .bounded_output()
        .expect("openssl is installed (scripts/test installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_cloud_side_walkthrough_runs_and_cleans_up_after_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    // deploy_cf.bash
    let deploy = json(&dir, &["deploy"]);
    assert_eq!(deploy["status"], "CREATE_COMPLETE", "{deploy}");
    let mut deployed: Vec<String> = deploy["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "CREATE_COMPLETE", "{r}");
            r["logicalId"].as_str().unwrap().to_string()
        })
        .collect();
    deployed.sort();
    assert_eq!(deployed, template_resources());

    // certs_etc.py --create
    let init = json(&dir, &["init", "--devices", "3"]);
    assert_eq!(init["created"], true);
    assert_eq!(init["cas"].as_array().unwrap().len(), 2);
    let vendor = ca(&init, "Vendor CA");
    let manufacturer = ca(&init, "Manufacturer CA");
    for ca in [vendor, manufacturer] {
        assert_eq!(ca["status"], "ACTIVE", "{ca}");
    }
    assert_eq!(vendor["autoRegistration"], true);
    let template = vendor["jitpTemplate"].as_str().expect("a JITP template");
    assert!(template.contains("CrInProgressCertPolicy"), "{template}");
    assert!(template.contains("arn:aws:iam::"), "{template}");
    let man_id = manufacturer["id"].as_str().unwrap();
    let key_parameter = format!("cr-ca-key-{man_id}");
    assert_eq!(init["caKeyParameter"], key_parameter.as_str());
    let serials: Vec<String> = init["whitelisted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    // --devices N means N devices, the sample's serial first.
    assert_eq!(serials.len(), 3);
    assert_eq!(serials[0], SAMPLE_SERIAL);

    // The factory's output: verifiable by openssl, keys private.
    for serial in &serials {
        let device_dir = dir.join("devices").join(serial);
        let scratch = tmp.path().join(format!("verify-{serial}"));
        std::fs::create_dir_all(&scratch).unwrap();
        let (ok, text) = openssl_verify(&device_dir, &scratch);
        assert!(ok, "openssl verify {serial}: {text}");
        for file in ["vendor.key.pem", "root-ca.pem", "manufacturer-ca.pem"] {
            assert!(device_dir.join(file).is_file(), "{serial}/{file}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(device_dir.join("vendor.key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{serial}/vendor.key.pem");
        }
    }
    assert!(dir.join("endpoint-ca.pem").is_file());
    // Logs went to the data dir's log file (stdout held only the JSON).
    let log = std::fs::read_to_string(dir.join("logs/jitpilot.log")).unwrap();
    assert!(log.contains("registered, ACTIVE"), "{log}");

    // No private key in plaintext in the database (or its WAL).
    for file in ["jitpilot.db", "jitpilot.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(file)) {
            assert!(
                !contains(&bytes, b"PRIVATE KEY"),
                "{file} holds a plaintext key"
            );
        }
    }

    // Everything read back.
    let status = json(&dir, &["status"]);
    assert_eq!(status["stack"]["status"], "CREATE_COMPLETE");
    assert_eq!(status["cas"].as_array().unwrap().len(), 2);
    assert_eq!(status["parameters"][&key_parameter], "SecureString");
    let rows = status["devices"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row["CrState"], "CR_WHITELISTED", "{row}");
        assert_eq!(row["ManufacturerCaCertId"], man_id, "{row}");
    }
    assert!(status["policies"]
        .as_object()
        .unwrap()
        .contains_key("CrInProgressCertPolicy"));

    // Human output names the same things.
    let human = jitpilot(&dir, &["status"]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    for needle in [
        "Vendor CA",
        "Manufacturer CA",
        SAMPLE_SERIAL,
        "CR_WHITELISTED",
        &key_parameter,
    ] {
        assert!(text.contains(needle), "status lacks {needle}:\n{text}");
    }

    // certs_etc.py --delete, then delete_cf.bash.
    let cleanup = json(&dir, &["cleanup"]);
    assert_eq!(cleanup["cas"], 2, "{cleanup}");
    assert_eq!(cleanup["parameters"], 2, "{cleanup}");
    assert_eq!(cleanup["tableRows"], 3, "{cleanup}");
    assert_eq!(cleanup["deviceFolders"], 3, "{cleanup}");
    let teardown = json(&dir, &["teardown"]);
    assert_eq!(teardown["existed"], true);
    assert_eq!(
        teardown["deleted"].as_array().unwrap().len(),
        template_resources().len()
    );

    let after = json(&dir, &["status"]);
    assert!(after["stack"].is_null(), "{after}");
    for list in ["cas", "certificates", "devices"] {
        assert!(
            after[list].as_array().unwrap().is_empty(),
            "{list}: {after}"
        );
    }
    for map in ["things", "policies"] {
        assert!(after[map].as_object().unwrap().is_empty(), "{map}: {after}");
    }
    // Only the local endpoint's own CA stays: it is the cloud's, not the fleet's.
    for name in after["parameters"].as_object().unwrap().keys() {
        assert!(
            name.starts_with("/jitpilot/endpoint-ca-"),
            "left behind: {name}"
        );
    }
    assert!(!dir.join("devices").exists());
}

#[test]
fn init_is_idempotent_grows_the_fleet_and_keeps_progressed_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    json(&dir, &["deploy"]);
    let first = json(&dir, &["init", "--devices", "1"]);
    let sample_cert = std::fs::read(
        dir.join("devices")
            .join(SAMPLE_SERIAL)
            .join("vendor.cert.pem"),
    )
    .unwrap();

    // A device that went through JITP: its row must survive a second init.
    {
        let store = jitpilot::store::Store::open(&dir).unwrap();
        let mut row = store
            .get_item("CertRotationDevices", SAMPLE_SERIAL)
            .unwrap()
            .unwrap();
        row.insert("CrState".into(), "CR_THING_CREATED".into());
        row.insert("VendorCertId".into(), "abc".into());
        store.put_item("CertRotationDevices", &row).unwrap();
    }

    let again = json(&dir, &["init", "--devices", "1"]);
    assert_eq!(again["created"], false, "{again}");
    let ids = |r: &Value| -> Vec<String> {
        r["cas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&first), ids(&again), "no second CA");

    let grown = json(&dir, &["init", "--devices", "3"]);
    assert_eq!(grown["created"], true);
    assert_eq!(ids(&grown), ids(&first));
    let serials = grown["whitelisted"].as_array().unwrap();
    assert_eq!(serials.len(), 3);
    assert_eq!(serials[..1], first["whitelisted"].as_array().unwrap()[..]);

    let status = json(&dir, &["status"]);
    assert_eq!(status["cas"].as_array().unwrap().len(), 2);
    let rows = status["devices"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let sample = rows
        .iter()
        .find(|r| r["SerialNumber"] == SAMPLE_SERIAL)
        .unwrap();
    assert_eq!(sample["CrState"], "CR_THING_CREATED");
    assert_eq!(sample["VendorCertId"], "abc");
    // The factory did not re-issue existing credentials.
    assert_eq!(
        std::fs::read(
            dir.join("devices")
                .join(SAMPLE_SERIAL)
                .join("vendor.cert.pem")
        )
        .unwrap(),
        sample_cert
    );
}

#[test]
fn init_before_deploy_says_to_deploy_first() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = fails(tmp.path(), &["init"]);
    assert!(stderr.contains("jitpilot deploy"), "{stderr}");
    let status = json(tmp.path(), &["status"]);
    assert!(
        status["cas"].as_array().unwrap().is_empty(),
        "nothing was created"
    );
}

#[test]
fn cleanup_and_teardown_on_nothing_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let cleanup = json(tmp.path(), &["cleanup"]);
    for (what, n) in cleanup.as_object().unwrap() {
        assert_eq!(n, 0, "{what}");
    }
    let teardown = json(tmp.path(), &["teardown"]);
    assert_eq!(teardown["existed"], false);
    let human = jitpilot(tmp.path(), &["cleanup"]);
    assert!(human.status.success());
    assert!(String::from_utf8_lossy(&human.stdout).contains("Nothing to clean up"));
}

#[test]
fn a_corrupt_database_is_refused_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("jitpilot.db");
    let garbage = b"not a database, just bytes left here by something else\n".repeat(100);
    std::fs::write(&db, &garbage).unwrap();
    for command in [&["status"][..], &["deploy"], &["init"]] {
        let stderr = fails(tmp.path(), command);
        assert!(
            stderr.contains("is not a jitpilot database"),
            "{command:?}: {stderr}"
        );
        assert!(stderr.contains("Move it aside"), "{stderr}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), garbage, "no silent reset");
}

#[test]
fn a_corrupt_master_key_is_refused_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    json(tmp.path(), &["deploy"]);
    json(tmp.path(), &["init"]);
    let key = tmp.path().join("master.key");

    // Truncated: refused before anything opens.
    std::fs::write(&key, b"oops").unwrap();
    let stderr = fails(tmp.path(), &["init"]);
    assert!(stderr.contains("master key"), "{stderr}");
    assert_eq!(std::fs::read(&key).unwrap(), b"oops");

    // Replaced by another key: the sealed CA keys do not open.
    std::fs::write(&key, [9u8; 32]).unwrap();
    let stderr = fails(tmp.path(), &["init"]);
    assert!(stderr.contains("master key"), "{stderr}");
    assert_eq!(std::fs::read(&key).unwrap(), [9u8; 32]);
}

#[test]
fn a_second_writer_is_refused_while_status_reads_beside_the_owner() {
    let tmp = tempfile::tempdir().unwrap();
    json(tmp.path(), &["deploy"]);
    // This test process plays the running owner (the TUI or `serve`).
    let owner = jitpilot::datadir::DataDir::new(tmp.path())
        .lock("jitpilot serve")
        .unwrap();
    let stderr = fails(tmp.path(), &["init"]);
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    assert!(stderr.contains("jitpilot serve"), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    let status = json(tmp.path(), &["status"]);
    assert_eq!(status["stack"]["status"], "CREATE_COMPLETE");
    drop(owner);
    json(tmp.path(), &["init"]);
}
