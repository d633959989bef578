//! The control plane in-process: ownership, endpoint discovery, events, and
//! repairing damaged factory credentials.

use super::*;
use crate::fleet::SAMPLE_SERIAL;
use crate::pki;

fn deployed(dir: &Path, bus: EventBus) -> LocalCloud {
    let cloud = LocalCloud::open(dir, bus).unwrap();
    cloud.deploy_sync().unwrap();
    cloud
}

#[test]
fn a_read_only_cloud_reads_but_refuses_to_write_naming_the_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let owner = deployed(tmp.path(), EventBus::default());
    assert!(owner.is_writable());
    let reader = LocalCloud::open_read_only(tmp.path()).unwrap();
    assert!(!reader.is_writable());
    let status = reader.status_sync().unwrap();
    assert_eq!(status.stack.unwrap().status, "CREATE_COMPLETE");
    let err = reader.init_sync(1).err().unwrap().to_string();
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(reader.cleanup_sync().is_err());
    assert!(reader.teardown_sync().is_err());
    // Nothing was written by the reader.
    assert!(owner.store().list_cas().unwrap().is_empty());
}

#[test]
fn the_device_endpoint_comes_from_this_process_or_the_address_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cloud = LocalCloud::open(tmp.path(), EventBus::default()).unwrap();
    assert!(cloud.device_endpoint().is_none());
    let file = cloud
        .data_dir()
        .write_endpoint_addr("127.0.0.1:18883")
        .unwrap();
    let endpoint = cloud.device_endpoint().unwrap();
    assert_eq!(endpoint.addr, "127.0.0.1:18883");
    assert_eq!(endpoint.server_name, "localhost");
    assert_eq!(endpoint.root_ca_path, tmp.path().join("endpoint-ca.pem"));
    assert!(endpoint.local_addr.is_none());
    let local: SocketAddr = "127.0.0.1:28883".parse().unwrap();
    cloud.set_local_endpoint(Some(local));
    assert_eq!(cloud.device_endpoint().unwrap().local_addr, Some(local));
    cloud.set_local_endpoint(None);
    drop(file);
    assert!(cloud.device_endpoint().is_none());
}

#[test]
fn init_reports_each_step_on_the_stream_and_in_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let bus = EventBus::default();
    let cloud = deployed(tmp.path(), bus.clone());
    let mut events = cloud.events();
    let report = cloud.init_sync(2).unwrap();
    let mut summaries = Vec::new();
    while let Some(event) = events.try_recv() {
        assert_eq!(event.kind, EventKind::Registry);
        summaries.push(event.summary.clone());
    }
    let has = |needle: &str| summaries.iter().any(|s| s.contains(needle));
    assert!(has("Vendor CA"), "{summaries:?}");
    assert!(has("auto-registration ENABLE"), "{summaries:?}");
    assert!(has(&report.ca_key_parameter), "{summaries:?}");
    assert!(
        has(&format!("{SAMPLE_SERIAL} CR_WHITELISTED")),
        "{summaries:?}"
    );
    let timeline = cloud.store().list_events_for(SAMPLE_SERIAL, 10).unwrap();
    assert_eq!(timeline[0].kind, "table.whitelisted");
}

#[test]
fn torn_factory_credentials_are_issued_again_and_intact_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let cloud = deployed(tmp.path(), EventBus::default());
    let report = cloud.init_sync(2).unwrap();
    let sample = cloud.data_dir().device_dir(SAMPLE_SERIAL);
    let other = cloud.data_dir().device_dir(&report.whitelisted[1]);
    let other_key = std::fs::read(other.join("vendor.key.pem")).unwrap();
    // A power cut left the sample device's key empty.
    std::fs::write(sample.join("vendor.key.pem"), b"").unwrap();

    let again = cloud.init_sync(2).unwrap();
    assert!(again.created);
    let key = std::fs::read_to_string(sample.join("vendor.key.pem")).unwrap();
    let cert = std::fs::read_to_string(sample.join("vendor.cert.pem")).unwrap();
    assert_eq!(
        pki::public_key_der_of_key(&key).unwrap(),
        pki::parse_cert(&cert).unwrap().public_key_der
    );
    assert_eq!(
        std::fs::read(other.join("vendor.key.pem")).unwrap(),
        other_key
    );
}

#[test]
fn cleanup_undoes_what_jitp_and_rotation_left_and_teardown_follows() {
    use crate::model::{Certificate, CertificateStatus};
    let tmp = tempfile::tempdir().unwrap();
    let cloud = deployed(tmp.path(), EventBus::default());
    let report = cloud.init_sync(1).unwrap();
    let store = cloud.store();
    let vendor_id = &report.cas[0].id;
    // What 3a leaves behind for the sample's device: its vendor cert ACTIVE,
    // a thing named by the serial, the in-progress policy attached.
    let pem = std::fs::read_to_string(
        cloud
            .data_dir()
            .device_dir(SAMPLE_SERIAL)
            .join("vendor.cert.pem"),
    )
    .unwrap();
    let cert_id = pki::certificate_id_from_pem(&pem).unwrap();
    store
        .register_certificate(&Certificate {
            id: cert_id.clone(),
            ca_id: Some(vendor_id.clone()),
            pem,
            status: CertificateStatus::Active,
            created_at: 1,
        })
        .unwrap();
    store
        .create_thing(SAMPLE_SERIAL, &serde_json::Map::new())
        .unwrap();
    store
        .attach_thing_principal(SAMPLE_SERIAL, &cert_id)
        .unwrap();
    store
        .attach_policy("CrInProgressCertPolicy", &cert_id)
        .unwrap();

    let status = cloud.status_sync().unwrap();
    assert_eq!(status.certificates[0].things, [SAMPLE_SERIAL]);
    assert_eq!(
        status.certificates[0].common_name.as_deref(),
        Some(SAMPLE_SERIAL)
    );
    // The Vendor CA by its id: CAs made in the same millisecond may list
    // in either order.
    let vendor = status
        .cas
        .iter()
        .find(|ca| &ca.id == vendor_id)
        .expect("the Vendor CA in status");
    assert_eq!(
        vendor.certificates.get("ACTIVE").copied(),
        Some(1),
        "the CA pane counts its certificates"
    );

    let cleaned = cloud.cleanup_sync().unwrap();
    assert_eq!(
        (cleaned.things, cleaned.certificates, cleaned.cas),
        (1, 1, 2)
    );
    assert!(store.list_certificates().unwrap().is_empty());
    assert!(store
        .list_policy_targets("CrInProgressCertPolicy")
        .unwrap()
        .is_empty());
    let teardown = cloud.teardown_sync().unwrap();
    assert!(teardown.existed);
    assert!(store.list_policies().unwrap().is_empty());
    // And again: nothing left, still a success.
    let again = cloud.cleanup_sync().unwrap();
    assert_eq!(again.things + again.certificates + again.cas, 0);
    assert!(!cloud.teardown_sync().unwrap().existed);
}

#[cfg(unix)]
#[test]
fn init_shares_the_ca_files_by_hard_link_and_cleanup_removes_them() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let cloud = deployed(tmp.path(), EventBus::default());
    let report = cloud.init_sync(3).unwrap();
    assert_eq!(report.whitelisted.len(), 3);
    let devices = cloud.data_dir().devices_dir();
    let endpoint_ca = std::fs::read_to_string(cloud.data_dir().endpoint_ca_path()).unwrap();
    let shared_dir = tmp.path().join(crate::vocabulary::SHARED_DIR);
    for file in [
        crate::vocabulary::ROOT_CA_FILE,
        crate::vocabulary::MANUFACTURER_CA_FILE,
    ] {
        let shared = std::fs::metadata(shared_dir.join(file)).unwrap();
        for serial in &report.whitelisted {
            let path = cloud.data_dir().device_dir(serial).join(file);
            // One inode for the whole fleet: a link, not a copy.
            assert_eq!(
                std::fs::metadata(&path).unwrap().ino(),
                shared.ino(),
                "{path:?}"
            );
        }
    }
    let root_ca = cloud
        .data_dir()
        .device_dir(SAMPLE_SERIAL)
        .join(crate::vocabulary::ROOT_CA_FILE);
    assert_eq!(std::fs::read_to_string(&root_ca).unwrap(), endpoint_ca);
    // A device's copy that was changed is put back (and linked again).
    std::fs::write(&root_ca, "tampered").unwrap();
    cloud.init_sync(3).unwrap();
    assert_eq!(std::fs::read_to_string(&root_ca).unwrap(), endpoint_ca);
    cloud.cleanup_sync().unwrap();
    assert!(!devices.exists());
    assert!(!shared_dir.exists());
}
